//! The trainer thread's side of the protocol between steps: reads the
//! commands that arrived, applies parameter changes to the live
//! parameters, records pauses, resumes and changes in the audit log and
//! judgments in the preference store, and holds the stage while paused.
//! Commands that need the models (samples, checkpoints) are queued for the
//! worker, which serves them where it holds the models.

use crossbeam_channel::{Receiver, Sender};
use serde_json::json;

use super::audit::AuditLog;
use super::protocol::{Choice, Command, Event, KlMode, Param, SamplePair, Stage, StageState};
use crate::prefs::store::{PrefStore, Source};
use crate::rlhf::ppo::kl_control::KlControl;
use crate::rlhf::ppo::live::LiveParams;
use crate::run::RunConfig;

/// What the worker should do after a poll.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    /// Take the next step.
    Go,
    /// Serve the queued commands (the stage is paused), then poll again.
    Serve,
    /// End the stage (or the thread): see `Control::stop`.
    Stop,
}

/// Why a stage is ending early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Stop,
    Shutdown { checkpoint: bool },
}

pub struct Control {
    pub commands: Receiver<Command>,
    pub events: Sender<Event>,
    audit: AuditLog,
    prefs: PrefStore,
    /// The config future stages start from: parameter changes land here too.
    pub config: RunConfig,
    pub paused: bool,
    step_once: bool,
    pub stop: Option<StopReason>,
    /// Commands that need the models, in arrival order.
    pub queued: Vec<Command>,
    /// The running stage and its step, for the audit log.
    pub stage: Option<Stage>,
    pub step: usize,
    /// Pairs shown recently, by id, so a judgment can be stored with its texts.
    pairs: Vec<SamplePair>,
}

/// Pairs kept for labeling: more than the workbench's queue holds.
const PAIRS_KEPT: usize = 64;

impl Control {
    pub fn new(
        commands: Receiver<Command>,
        events: Sender<Event>,
        audit: AuditLog,
        prefs: PrefStore,
        config: RunConfig,
    ) -> Self {
        Self {
            commands,
            events,
            audit,
            prefs,
            config,
            paused: false,
            step_once: false,
            stop: None,
            queued: Vec::new(),
            stage: None,
            step: 0,
            pairs: Vec::new(),
        }
    }

    pub fn send(&self, event: Event) {
        // The workbench has gone only when it is shutting down; nothing to tell.
        let _ = self.events.send(event);
    }

    /// A pair about to be shown, remembered for its judgment.
    pub fn offer(&mut self, pair: SamplePair) {
        if self.pairs.len() == PAIRS_KEPT {
            self.pairs.remove(0);
        }
        self.pairs.push(pair.clone());
        self.send(Event::Samples(pair));
    }

    /// Reads the commands waiting; while paused, waits for more. With
    /// `serving`, returns `Serve` when a queued command can be served while
    /// paused; without it (inside a PPO iteration) queued commands wait.
    pub fn poll(&mut self, params: &mut LiveParams, serving: bool) -> Poll {
        loop {
            while let Ok(command) = self.commands.try_recv() {
                self.handle(command, params);
            }
            if self.stop.is_some() {
                return Poll::Stop;
            }
            if !self.paused {
                return Poll::Go;
            }
            if self.step_once {
                self.step_once = false;
                return Poll::Go;
            }
            if serving && !self.queued.is_empty() {
                return Poll::Serve;
            }
            match self.commands.recv() {
                Ok(command) => self.handle(command, params),
                // The workbench is gone: keep what was trained.
                Err(_) => self.stop = Some(StopReason::Shutdown { checkpoint: true }),
            }
        }
    }

    /// Applies one command; those needing the models are queued.
    pub fn handle(&mut self, command: Command, params: &mut LiveParams) {
        match command {
            Command::Pause | Command::Resume => {
                let pause = command == Command::Pause;
                if self.stage.is_none() || self.paused == pause {
                    return;
                }
                self.paused = pause;
                self.audit_record(if pause { "pause" } else { "resume" }, json!({}));
                let state = if pause { StageState::Paused } else { StageState::Running };
                self.send_state(state);
            }
            Command::StepOnce => self.step_once = self.paused,
            Command::Stop => {
                if self.stage.is_some() {
                    self.stop = Some(StopReason::Stop);
                }
            }
            Command::Shutdown { checkpoint } => self.stop = Some(StopReason::Shutdown { checkpoint }),
            Command::Set(param) => self.set(param, params),
            Command::Label { pair, choice } => self.label(pair, choice),
            Command::Undo { pair } => match self.prefs.retract(pair) {
                Ok(()) => self.send(Event::Retracted { pair }),
                Err(e) => self.send(Event::Error(format!("prefs.jsonl: {e}"))),
            },
            Command::Start(_) | Command::RequestSamples | Command::Checkpoint => self.queued.push(command),
        }
    }

    pub fn send_state(&self, state: StageState) {
        if let Some(stage) = self.stage {
            let total = match stage {
                Stage::Sft => self.config.sft.steps,
                Stage::Rm => self.config.rm.steps,
                Stage::Ppo => self.config.ppo.iterations,
            };
            self.send(Event::Stage {
                stage,
                state,
                step: self.step,
                total,
            });
        }
    }

    pub fn audit_record(&mut self, event: &str, details: serde_json::Value) {
        let stage = self.stage.map(Stage::name);
        if let Err(e) = self.audit.record(stage, self.step, event, details) {
            self.send(Event::Error(format!("audit.jsonl: {e}")));
        }
    }

    /// Changes a live parameter and the config later stages start from.
    fn set(&mut self, param: Param, params: &mut LiveParams) {
        if let Err(why) = param.check() {
            self.send(Event::Error(why));
            return;
        }
        let old = match param {
            Param::Beta(v) => {
                let old = params.kl.beta();
                params.kl.set_beta(v);
                self.config.ppo.beta = v;
                old
            }
            Param::LearningRate(v) => {
                let old = params.lr;
                params.lr = v;
                match self.stage {
                    Some(Stage::Sft) => self.config.sft.lr = v,
                    Some(Stage::Rm) => self.config.rm.lr = v,
                    Some(Stage::Ppo) | None => self.config.ppo.lr = v,
                }
                old
            }
            Param::Temperature(v) => {
                let old = params.temperature as f64;
                params.temperature = v as f32;
                self.config.ppo.temperature = v as f32;
                old
            }
            Param::KlMode(mode) => {
                let old = Param::KlMode(KlMode::of(&params.kl)).value();
                let beta = params.kl.beta();
                params.kl = match mode {
                    KlMode::Fixed => KlControl::Fixed { beta },
                    KlMode::Adaptive => KlControl::Adaptive {
                        beta,
                        target: self.config.ppo.kl_target,
                        horizon: self.config.ppo.kl_horizon,
                    },
                };
                self.config.ppo.adaptive_kl = mode == KlMode::Adaptive;
                old
            }
        };
        self.audit_record(
            "set",
            json!({ "param": param.name(), "old": old, "new": param.value() }),
        );
        self.send(Event::ParamChanged {
            param,
            old,
            step: self.step,
        });
    }

    fn label(&mut self, id: u64, choice: Choice) {
        let Some(pair) = self.pairs.iter().find(|p| p.id == id) else {
            self.send(Event::Error(format!("no pair {id} to label")));
            return;
        };
        match self.prefs.record(pair, choice, Source::Human) {
            Ok(()) => self.send(Event::LabelSaved { pair: id, choice }),
            Err(e) => self.send(Event::Error(format!("prefs.jsonl: {e}"))),
        }
    }
}
