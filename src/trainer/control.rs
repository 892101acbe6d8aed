//! The trainer thread's side of the protocol between steps: reads the
//! commands that arrived, applies parameter changes to the live
//! parameters, records pauses, resumes and changes in the audit log and
//! judgments in the preference store, and holds the stage while paused.
//! Commands that need the models (samples, checkpoints) are queued for the
//! worker, which serves them where it holds the models.

use crossbeam_channel::{Receiver, Sender};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::audit::{AuditLog, unix_seconds};
use super::eval_session::EvalSession;
use super::protocol::{Choice, Command, Criterion, Event, KlMode, Param, SampleSet, Stage, StageState, Verdict};
use super::run_data::RunData;
use crate::fsutil::AppendLog;
use crate::prefs::rank::is_ranking_of;
use crate::prefs::record::{Judgment, Source};
use crate::prefs::stats::agreement;
use crate::prefs::store::{self, PrefStore};
use crate::prefs::throughput::throughput;
use crate::rlhf::ppo::kl_control::KlControl;
use crate::rlhf::ppo::live::LiveParams;
use crate::run::RunConfig;

/// Which queued commands a poll may hand back to be served while paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    /// Between steps, where the worker holds the whole stage.
    All,
    /// Inside a PPO iteration, where only the policy is at hand: pairs.
    Samples,
}

/// What the worker should do after a poll.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    /// Take the next step.
    Go,
    /// Take one step and pause again (`.` while paused).
    Once,
    /// Serve the queued commands (the stage is paused), then poll again.
    Serve,
    /// End the stage (or the thread): see `Control::stop`.
    Stop,
}

/// Work that needs the models, queued until the worker holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// A set of responses for the pair pane (its size is `Control::k`).
    Samples,
    Checkpoint,
    Start(Stage),
    NewRound,
    Eval,
}

/// Why a stage is ending early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Stop,
    Shutdown { checkpoint: bool },
}

pub struct Control {
    commands: Receiver<Command>,
    events: Sender<Event>,
    logs: RunLogs,
    /// The config future stages start from: parameter changes land here too.
    config: RunConfig,
    paused: bool,
    step_once: bool,
    /// Whether the person was told that a queued checkpoint waits for the
    /// iteration's end.
    told_waiting: bool,
    stop: Option<StopReason>,
    /// Work that needs the models, in arrival order.
    queued: Vec<Queued>,
    /// The blind evaluation being judged, if one is open.
    eval: Option<EvalSession>,
    /// The running stage, its step and where it ends, for the audit log
    /// and the stage events.
    stage: Option<Stage>,
    step: usize,
    total: usize,
    /// Sets shown recently, by id, so a judgment can be stored with its texts.
    sets: Vec<SampleSet>,
    /// The size of the sets asked for last; PPO streams sets of this size.
    k: usize,
    /// Who labels at this keyboard; with attached workbenches, the one
    /// that sent the last command (`Command::Client`).
    annotator: String,
    /// Whether commands come from attached workbenches, whose names the
    /// audit log records with each line.
    attached: bool,
    /// The labeling prompts and the evaluator that judges a share of sets.
    data: RunData,
    /// The run's live judgments, for agreement.
    judgments: Vec<Judgment>,
}

/// The run's append-only logs the trainer writes between steps.
pub struct RunLogs {
    pub audit: AuditLog,
    pub prefs: PrefStore,
    /// Every set of responses shown, `samples.jsonl`.
    pub samples: AppendLog,
}

/// Sets kept for labeling: more than the workbench's queue holds.
const SETS_KEPT: usize = 64;

impl Control {
    pub fn new(
        commands: Receiver<Command>,
        events: Sender<Event>,
        logs: RunLogs,
        config: RunConfig,
        annotator: String,
        judgments: Vec<Judgment>,
        data: RunData,
    ) -> Self {
        Self {
            commands,
            events,
            logs,
            config,
            paused: false,
            step_once: false,
            told_waiting: false,
            stop: None,
            queued: Vec::new(),
            eval: None,
            stage: None,
            step: 0,
            total: 0,
            sets: Vec::new(),
            k: 2,
            annotator,
            attached: false,
            judgments,
            data,
        }
    }

    /// The config future stages start from.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The size of the sets asked for last.
    pub fn set_size(&self) -> usize {
        self.k
    }

    pub fn has_judgments(&self) -> bool {
        !self.judgments.is_empty()
    }

    /// The running stage's step (the last one finished).
    pub fn step(&self) -> usize {
        self.step
    }

    /// A stage begins: it is the one the audit log and events name.
    pub fn begin(&mut self, stage: Stage) {
        (self.stage, self.step, self.total, self.paused) = (Some(stage), 0, 0, false);
        self.send_state(StageState::Starting);
    }

    /// The running stage's step and where it ends.
    pub fn progress(&mut self, step: usize, total: usize) {
        (self.step, self.total) = (step, total);
    }

    /// No stage runs any more.
    pub fn end(&mut self) {
        (self.stage, self.paused) = (None, false);
    }

    /// Waits for the next command while no stage runs and applies it;
    /// false once the workbench has gone.
    pub fn wait(&mut self, params: &mut LiveParams) -> bool {
        match self.commands.recv() {
            Ok(command) => {
                self.handle(command, params);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether a stop or a shutdown was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.is_some()
    }

    /// Why the stage is ending early, if it is; it is not asked again.
    pub fn take_stop(&mut self) -> Option<StopReason> {
        self.stop.take()
    }

    /// Keeps a shutdown for the thread to see once the stage has ended.
    pub fn keep_shutdown(&mut self, stop: Option<StopReason>) {
        self.stop = stop.filter(|r| *r != StopReason::Stop);
    }

    /// The queued work, in arrival order, taken off the queue.
    pub fn take_queued(&mut self) -> Vec<Queued> {
        self.told_waiting = false;
        std::mem::take(&mut self.queued)
    }

    /// How many sets were asked for, taken off the queue (the rest stays).
    pub fn take_samples(&mut self) -> usize {
        let asked = self.queued.len();
        self.queued.retain(|q| *q != Queued::Samples);
        asked - self.queued.len()
    }

    pub fn send(&self, event: Event) {
        // The workbench has gone only when it is shutting down; nothing to tell.
        let _ = self.events.send(event);
    }

    /// The labeling prompts and the evaluator.
    pub fn data(&self) -> &RunData {
        &self.data
    }

    /// A set about to be shown, remembered for its judgment. The run's
    /// evaluator, if it has one, labels a seeded share of sets first
    /// (`prefs.judge_fraction`).
    pub fn offer(&mut self, mut set: SampleSet) {
        // The evaluator reads each response as it is shown and stored.
        let texts: Vec<String> = set.responses.iter().map(|r| r.text()).collect();
        if let Some(evaluator) = self.data.evaluator.clone() {
            match evaluator.scores(&vec![set.asked.clone(); texts.len()], &texts) {
                Ok(scores) => {
                    for (response, score) in set.responses.iter_mut().zip(scores) {
                        response.judge = Some(score);
                    }
                }
                Err(why) => self.failed(format!("{} on set {}: {why}", evaluator.name(), set.id)),
            }
        }
        let fraction = self.config.prefs.judge_fraction;
        let judged = ChaCha8Rng::seed_from_u64(set.id ^ 0x71d6e).random_bool(fraction);
        if let Some(evaluator) = self.data.evaluator.clone().filter(|_| judged) {
            // A judge that failed labels nothing, and says why.
            let verdicts = match evaluator.verdicts(&set.asked, &texts) {
                Ok(verdicts) => verdicts,
                Err(why) => {
                    self.failed(format!("{} on set {}: {why}", evaluator.name(), set.id));
                    Vec::new()
                }
            };
            for (criterion, verdict) in &verdicts {
                let judgment = judgment(&set, verdict.clone(), *criterion, evaluator.name(), Source::Judge);
                if let Err(e) = self.logs.prefs.record(judgment.clone()) {
                    return self.send(Event::Error(format!("prefs.jsonl: {e}")));
                }
                self.judgments.push(judgment);
            }
            set.judge = verdicts;
        }
        if let Err(e) = self.logs.samples.append(&sample_record(&set)) {
            self.send(Event::Error(format!("samples.jsonl: {e}")));
        }
        if self.sets.len() == SETS_KEPT {
            self.sets.remove(0);
        }
        self.sets.push(set.clone());
        self.send(Event::Samples(set));
    }

    /// Reads the commands waiting; while paused, waits for more, and
    /// returns `Serve` when a queued command `serving` allows is waiting
    /// (the others wait for the next point where the worker can serve them).
    pub fn poll(&mut self, params: &mut LiveParams, serving: Serving) -> Poll {
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
                return Poll::Once;
            }
            let servable = |q: &Queued| serving == Serving::All || *q == Queued::Samples;
            if self.queued.iter().any(servable) {
                return Poll::Serve;
            }
            if !self.told_waiting && self.queued.contains(&Queued::Checkpoint) {
                // Paused inside an iteration: say when the checkpoint comes.
                self.told_waiting = true;
                self.send(Event::Note(
                    "paused inside a PPO iteration: the checkpoint is written when it ends (space resumes, . steps)"
                        .into(),
                ));
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
            Command::Pause | Command::Resume => self.set_paused(command == Command::Pause),
            Command::StepOnce => self.step_once = self.paused,
            Command::Stop => {
                if self.stage.is_some() {
                    self.stop = Some(StopReason::Stop);
                }
            }
            Command::Shutdown { checkpoint } => self.stop = Some(StopReason::Shutdown { checkpoint }),
            Command::Set(param) => self.set(param, params),
            Command::Label {
                set,
                verdict,
                criterion,
            } => self.label(set, verdict, criterion),
            Command::Undo { set } => self.undo(set),
            Command::RequestSamples { k } => {
                self.k = k.clamp(2, 9);
                self.queued.push(Queued::Samples);
            }
            Command::Start(stage) => self.queued.push(Queued::Start(stage)),
            Command::Checkpoint => self.queued.push(Queued::Checkpoint),
            Command::NewRound => self.queued.push(Queued::NewRound),
            Command::StartEval => self.queued.push(Queued::Eval),
            Command::EvalVerdict { item, choice } => self.eval_verdict(item, choice),
            Command::Client { name } => (self.annotator, self.attached) = (name, true),
            Command::Detach => {}
        }
    }

    /// Holds or releases the running stage, telling the workbench and the
    /// audit log; nothing happens when no stage runs or it is already so.
    pub fn set_paused(&mut self, pause: bool) {
        if self.stage.is_none() || self.paused == pause {
            return;
        }
        self.paused = pause;
        self.audit_record(if pause { "pause" } else { "resume" }, json!({}));
        self.send_state(if pause { StageState::Paused } else { StageState::Running });
    }

    pub fn send_state(&self, state: StageState) {
        if let Some(stage) = self.stage {
            self.send(Event::Stage {
                stage,
                state,
                step: self.step,
                total: self.total,
            });
        }
    }

    /// Something that failed and must be seen: on the status bar and in
    /// the audit log.
    pub fn failed(&mut self, what: String) {
        self.audit_record("failure", json!({ "what": what }));
        self.send(Event::Warning(what));
    }

    pub fn audit_record(&mut self, event: &str, mut details: serde_json::Value) {
        let stage = self.stage.map(Stage::name);
        if let (true, Some(details)) = (self.attached, details.as_object_mut()) {
            details.insert("by".into(), self.annotator.clone().into());
        }
        if let Err(e) = self.logs.audit.record(stage, self.step, event, details) {
            self.send(Event::Error(format!("audit.jsonl: {e}")));
        }
    }

    /// Changes a live parameter and the config later stages start from.
    fn set(&mut self, param: Param, params: &mut LiveParams) {
        if let Err(why) = param.check() {
            self.send(Event::Error(why));
            return;
        }
        if matches!(param, Param::GroupSize(_)) && !matches!(self.stage, Some(Stage::Grpo | Stage::Rloo)) {
            self.send(Event::Error(
                "K, the responses per prompt, is GRPO's and RLOO's: start one of them first".into(),
            ));
            return;
        }
        let old = match param {
            Param::Beta(v) => {
                let old = params.kl.beta();
                params.kl.set_beta(v);
                match self.stage {
                    Some(Stage::Dpo) => self.config.dpo.beta = v,
                    Some(Stage::Grpo) => self.config.grpo.beta = Some(v),
                    Some(Stage::Rloo) => self.config.rloo.beta = Some(v),
                    _ => self.config.ppo.beta = v,
                }
                old
            }
            Param::LearningRate(v) => {
                let old = params.lr;
                params.lr = v;
                match self.stage {
                    Some(Stage::Sft) => self.config.sft.lr = v,
                    Some(Stage::Cai) => self.config.cai.lr = v,
                    Some(Stage::Rm) => self.config.rm.lr = v,
                    Some(Stage::Dpo) => self.config.dpo.lr = v,
                    Some(Stage::Grpo) => self.config.grpo.lr = v,
                    Some(Stage::Rloo) => self.config.rloo.lr = v,
                    Some(Stage::Ppo) | None => self.config.ppo.lr = v,
                }
                old
            }
            Param::Temperature(v) => {
                let old = params.temperature as f64;
                params.temperature = v as f32;
                match self.stage {
                    Some(Stage::Grpo) => self.config.grpo.temperature = v as f32,
                    Some(Stage::Rloo) => self.config.rloo.temperature = v as f32,
                    _ => self.config.ppo.temperature = v as f32,
                }
                old
            }
            Param::GroupSize(k) => {
                let old = params.group_size.unwrap_or(0) as f64;
                params.group_size = Some(k);
                match self.stage {
                    Some(Stage::Rloo) => self.config.rloo.group_size = k,
                    _ => self.config.grpo.group_size = k,
                }
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

    fn label(&mut self, id: u64, verdict: Verdict, criterion: Criterion) {
        let Some(set) = self.sets.iter().find(|p| p.id == id) else {
            self.send(Event::Error(format!("no set {id} to label")));
            return;
        };
        if let Verdict::Ranking(order) = &verdict
            && !is_ranking_of(order, set.responses.len())
        {
            let error = format!(
                "a ranking of set {id} must order each of its {} responses once",
                set.responses.len()
            );
            return self.send(Event::Error(error));
        }
        let judgment = judgment(set, verdict.clone(), criterion, &self.annotator, Source::Human);
        match self.logs.prefs.record(judgment.clone()) {
            Ok(()) => {
                self.judgments.push(judgment);
                self.send(Event::LabelSaved { set: id, verdict });
                self.send_agreement();
            }
            Err(e) => self.send(Event::Error(format!("prefs.jsonl: {e}"))),
        }
    }

    /// Starts serving a blind evaluation's verdicts.
    pub fn begin_eval(&mut self, session: EvalSession) {
        self.send(Event::EvalStarted {
            a: session.a.display().to_string(),
            b: session.b.display().to_string(),
            items: session.shown(),
        });
        self.audit_record("eval", json!({ "a": session.a, "b": session.b }));
        self.eval = Some(session);
    }

    fn eval_verdict(&mut self, item: usize, choice: Choice) {
        let Some(session) = self.eval.as_mut() else {
            return self.send(Event::Error("no evaluation is open: E starts one".into()));
        };
        match session.record(item, choice) {
            Ok(tally) => self.send(Event::EvalSaved { item, choice, tally }),
            Err(e) => self.send(Event::Error(format!("eval.jsonl: {e:#}"))),
        }
    }

    fn undo(&mut self, id: u64) {
        match self.logs.prefs.retract(id, &self.annotator) {
            Ok(()) => {
                store::remove_latest(&mut self.judgments, id, &self.annotator);
                self.send(Event::Retracted { set: id });
                self.send_agreement();
            }
            Err(e) => self.send(Event::Error(format!("prefs.jsonl: {e}"))),
        }
    }

    pub fn send_agreement(&self) {
        self.send(Event::Agreement(agreement(&self.judgments)));
        let mine = throughput(&self.judgments)
            .into_iter()
            .find(|t| t.annotator == self.annotator);
        if let Some(mine) = mine {
            self.send(Event::Throughput(mine));
        }
    }
}

/// A set as `samples.jsonl` keeps it: the texts and their scores.
fn sample_record(set: &SampleSet) -> serde_json::Value {
    let responses: Vec<serde_json::Value> = set
        .responses
        .iter()
        .map(|r| json!({ "text": r.text(), "temperature": r.temperature, "reward": r.reward, "judge": r.judge }))
        .collect();
    json!({ "id": set.id, "time": unix_seconds(), "policy": set.policy, "prompt": set.prompt, "responses": responses })
}

/// A judgment of `set` as the store keeps it.
fn judgment(set: &SampleSet, verdict: Verdict, criterion: Criterion, annotator: &str, source: Source) -> Judgment {
    Judgment {
        pair: set.id,
        time: unix_seconds(),
        prompt: set.prompt.clone(),
        responses: set.responses.iter().map(|r| r.text()).collect(),
        verdict,
        criteria: if criterion == Criterion::Overall {
            Vec::new()
        } else {
            vec![criterion]
        },
        annotator: annotator.to_string(),
        source,
        policy: set.policy.clone(),
        temperatures: set.responses.iter().map(|r| r.temperature).collect(),
        chosen: None,
        rejected: None,
    }
}
