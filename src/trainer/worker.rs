//! The trainer thread: owns every tensor, runs one stage at a time step by
//! step, reads commands between optimizer steps (`control.rs`) and reports
//! back in plain-data events. A panic or an error inside it reaches the
//! workbench as an `Event::Error`, followed by `Event::ShutDown`.

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::thread::JoinHandle;

use burn::module::Module;
use burn::tensor::Device;
use crossbeam_channel::{Receiver, Sender, unbounded};
use serde_json::json;

use super::audit::{AuditLog, past_changes};
use super::control::{Control, Poll, Queued, RunLogs, Serving, StopReason};
use super::driver::{self, Flow, Hooks, Stepped};
use super::eval_session::EvalSession;
use super::protocol::{CaiView, Command, Event, KlMode, Param, Stage, StageState};
use super::run_data::RunData;
use super::samples::{DiskModels, PairModels, sample_set};
use super::stage::{Metrics, Saved, StageRun};
use super::watch::{guard, watch};
use crate::fsutil::AppendLog;
use crate::prefs::record::Source;
use crate::prefs::store::{self, PrefStore};
use crate::rlhf::cai::constitution::Constitution;
use crate::rlhf::cai::critic::{Revised, summary};
use crate::rlhf::ppo::live::{LiveParams, Models, StepPoint};
use crate::rlhf::reward_math::Calibration;
use crate::run::metrics::read_log;
use crate::run::{MetricsLog, Rounds, RunConfig, RunDir};

/// What the thread needs to start.
pub struct WorkerSetup {
    pub config: RunConfig,
    pub run: RunDir,
    pub device: Device,
    /// The device in words, for the status bar.
    pub device_label: String,
    /// Who labels at this keyboard, as the judgments name them.
    pub annotator: String,
    /// The run's data and evaluator (read before the workbench opens, so a
    /// bad file is refused there).
    pub data: RunData,
    /// Fault injection for tests of the crash path: panic on the trainer
    /// thread once a stage reaches this step (`RLHF_TUI_PANIC_AT_STEP`).
    pub panic_at_step: Option<usize>,
}

/// The variable that sets `WorkerSetup::panic_at_step`.
pub const PANIC_AT_STEP_VAR: &str = "RLHF_TUI_PANIC_AT_STEP";

/// The workbench's ends of the channels.
pub struct TrainerHandle {
    pub commands: Sender<Command>,
    pub events: Receiver<Event>,
    pub thread: JoinHandle<()>,
}

/// The name of the thread, which the panic hook recognises.
pub const THREAD_NAME: &str = "trainer";

/// Where the panic hook leaves a trainer panic's message and location.
pub static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// A panic's message, when it is text (as `panic!` and `expect` make it).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

pub fn spawn(setup: WorkerSetup) -> std::io::Result<TrainerHandle> {
    let (command_tx, command_rx) = unbounded();
    let (event_tx, event_rx) = unbounded();
    let thread = std::thread::Builder::new().name(THREAD_NAME.into()).spawn(move || {
        let events = event_tx.clone();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| run(setup, command_rx, event_tx)));
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(payload) => Some(
                LAST_PANIC
                    .lock()
                    .ok()
                    .and_then(|mut p| p.take())
                    .unwrap_or_else(|| format!("the trainer panicked: {}", panic_text(payload.as_ref()))),
            ),
        };
        if let Some(error) = error {
            let _ = events.send(Event::Error(error));
        }
        let _ = events.send(Event::ShutDown);
    })?;
    Ok(TrainerHandle {
        commands: command_tx,
        events: event_rx,
        thread,
    })
}

struct Worker {
    control: Control,
    run: RunDir,
    device: Device,
    log: MetricsLog,
    /// The parameters while no stage runs; a stage starts from the config.
    idle: LiveParams,
    /// Models on disk for pairs while no stage trains a policy; dropped when
    /// a checkpoint is written.
    disk: Option<DiskModels>,
    next_set: u64,
    panic_at_step: Option<usize>,
}

fn run(setup: WorkerSetup, commands: Receiver<Command>, events: Sender<Event>) -> anyhow::Result<()> {
    let run = setup.run;
    let audit = AuditLog::open(&run.audit_path())?;
    // Read before the store is opened for appending, which ends a torn last line.
    let contents = store::load(&run.prefs_path())?;
    let prefs = PrefStore::open(&run.prefs_path())?;
    let logs = RunLogs {
        audit,
        prefs,
        samples: AppendLog::open(&run.samples_path())?,
    };
    let rounds = Rounds::load(&run)?;
    let log = MetricsLog::open(&run.metrics_path())?;
    let config = setup.config;
    let stages = Stage::ALL
        .iter()
        .map(|&s| {
            let unfinished = Saved::unfinished(&run, s).ok().flatten();
            let state = match (run.latest_checkpoint(s.name()), unfinished) {
                (Some(path), Some(_)) => StageState::Stopped {
                    checkpoint: path.display().to_string(),
                },
                (Some(path), None) => StageState::Done {
                    checkpoint: path.display().to_string(),
                },
                (None, _) => StageState::NotStarted,
            };
            (s, state)
        })
        .collect();
    let idle = last_ppo_params(&run).unwrap_or_else(|| LiveParams::from_config(&config.ppo));
    let _ = events.send(Event::Ready {
        device: setup.device_label,
        run: run.root.display().to_string(),
        base: config.sft.init.display().to_string(),
        stages,
        beta: idle.kl.beta(),
        lr: idle.lr,
        temperature: idle.temperature as f64,
        kl_mode: KlMode::of(&idle.kl),
        rank_k: config.prefs.rank_k,
        judged: contents
            .judgments
            .iter()
            .filter(|j| j.annotator == setup.annotator && j.source == Source::Human)
            .filter(|j| !j.verdict.is_skip())
            .count(),
    });
    // A reopened run's charts start from its history.
    let (logged, skipped) = read_log(&run.metrics_path());
    for (name, step, values) in logged {
        if let Some(&stage) = Stage::ALL.iter().find(|s| s.name() == name) {
            let _ = events.send(Event::Metrics { stage, step, values });
        }
    }
    // ... and their markers from the audit log.
    for change in past_changes(&run.audit_path()) {
        let _ = events.send(change);
    }
    if skipped > 0 {
        let warning = format!(
            "{}: {skipped} unreadable lines left off the charts",
            run.metrics_path().display()
        );
        let _ = events.send(Event::Warning(warning));
    }
    for warning in contents.warnings.into_iter().chain(setup.data.warnings.clone()) {
        let _ = events.send(Event::Warning(warning));
    }
    let next_set = store::last_id(&contents.judgments);
    let mut worker = Worker {
        control: Control::new(
            commands,
            events,
            logs,
            config,
            setup.annotator,
            contents.judgments,
            setup.data,
        ),
        run,
        device: setup.device,
        log,
        idle,
        disk: None,
        next_set,
        panic_at_step: setup.panic_at_step,
    };
    worker.send_round(&rounds);
    if worker.control.has_judgments() {
        worker.control.send_agreement();
    }
    worker.send_calibration();
    worker.send_revisions();
    worker.idle_loop()
}

impl Worker {
    /// Waits for commands while no stage runs.
    fn idle_loop(&mut self) -> anyhow::Result<()> {
        while self.control.wait(&mut self.idle) {
            // Only a shutdown stops the thread while no stage runs.
            if self.control.stopping() {
                return Ok(());
            }
            for queued in self.control.take_queued() {
                match queued {
                    Queued::Start(stage) => self.run_stage(stage)?,
                    Queued::Samples => self.serve_samples(None),
                    Queued::Checkpoint => self.control.send(Event::Error("no stage is running".into())),
                    Queued::NewRound => self.new_round()?,
                    Queued::Eval => self.start_eval(),
                }
                if self.control.stopping() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Opens a blind evaluation of the run's newest policy against the one
    /// it started from; drawn anew each time (the seed counts the verdicts
    /// already in `eval.jsonl`).
    fn start_eval(&mut self) {
        let seed = std::fs::read_to_string(self.run.eval_path()).map_or(0, |t| t.lines().count() as u64);
        let started = EvalSession::start(
            &self.run,
            self.control.config(),
            self.control.data(),
            &self.device,
            seed,
        );
        match started {
            Ok(session) => self.control.begin_eval(session),
            Err(e) => self.control.send(Event::Error(format!("eval: {e:#}"))),
        }
    }

    /// Runs a stage to its end, a stop or a shutdown (a shutdown is kept for the thread).
    fn run_stage(&mut self, stage: Stage) -> anyhow::Result<()> {
        let control = &mut self.control;
        control.begin(stage);
        // A stage stopped before its end continues from its checkpoint.
        let started = Saved::unfinished(&self.run, stage).and_then(|from| {
            control.audit_record("start", json!({ "resumed_from": from }));
            match &from {
                Some(dir) => {
                    let s = StageRun::resume_with(
                        control.config(),
                        &self.run,
                        dir,
                        None,
                        &self.device,
                        control.data().clone(),
                    )?;
                    self.log.drop_after(stage.name(), s.step)?;
                    Ok((s, true))
                }
                None => {
                    let data = control.data().clone();
                    let s = StageRun::start_with(stage, control.config(), &self.run, &self.device, data)?;
                    let baseline = driver::log_baseline(&s, &mut self.log)?;
                    if !baseline.is_empty() {
                        send_metrics(control, stage, 0, &baseline);
                    }
                    Ok((s, false))
                }
            }
        });
        let (mut active, resumed) = match started {
            Ok(started) => started,
            Err(e) => {
                control.send_state(StageState::Failed(format!("{e:#}")));
                control.end();
                return Ok(());
            }
        };
        control.progress(active.step, active.total);
        for warning in active.warnings() {
            control.send(Event::Warning(warning.clone()));
        }
        if let Some(view) = active.cai_view() {
            control.send(Event::Revisions(view));
        }
        if resumed && stage == Stage::Ppo {
            announce_resumed_params(control, &self.idle, active.params());
        }
        // The status bar shows the running stage's β (DPO's is its own),
        // and the idle one's again after it.
        let live = |params: &LiveParams| Event::Live {
            beta: params.kl.beta(),
            kl_mode: KlMode::of(&params.kl),
            group_size: params.group_size,
        };
        control.send(live(active.params()));
        control.send_state(StageState::Running);
        let mut monitor = driver::monitor(stage, self.control.config());
        let run = self.run.clone();
        driver::run_steps(&mut active, &run, &mut monitor, self)?;
        let stop = self.control.take_stop();
        self.finish(&active, stop)?;
        drop(active);
        crate::memory::release_freed_memory();
        self.control.send(live(&self.idle));
        self.control.keep_shutdown(stop);
        Ok(())
    }

    /// Writes the stage's checkpoint (and, unless shutting down, its
    /// held-out evaluation) and reports it done.
    fn finish(&mut self, active: &StageRun, stop: Option<StopReason>) -> anyhow::Result<()> {
        let stage = active.stage;
        let path = match stop {
            Some(StopReason::Shutdown { checkpoint: false }) => None,
            Some(StopReason::Shutdown { checkpoint: true }) => Some(active.checkpoint(&self.run)?),
            Some(StopReason::Stop) | None => {
                let (path, eval) = driver::finish(active, &self.run, &mut self.log)?;
                send_metrics(&self.control, stage, active.step, &eval);
                Some(path)
            }
        };
        let what = if stop.is_some() { "stop" } else { "done" };
        self.control.audit_record(what, json!({ "checkpoint": path }));
        if let Some(path) = &path {
            self.checkpoint_written(active, path);
            // `finish` recorded the reward model's version.
            if stage == Stage::Rm && !matches!(stop, Some(StopReason::Shutdown { .. })) {
                let rounds = Rounds::load(&self.run)?;
                if let Some(v) = rounds.rm_versions.last() {
                    let details = json!({ "version": v.version, "pairs": v.pairs, "run_pairs": v.run_pairs });
                    self.control.audit_record("rm_version", details);
                }
                self.send_round(&rounds);
                self.send_calibration();
            }
        }
        let checkpoint = path.map(|p| p.display().to_string());
        let state = match checkpoint {
            Some(checkpoint) if active.is_done() => StageState::Done { checkpoint },
            Some(checkpoint) => StageState::Stopped { checkpoint },
            None => StageState::NotStarted,
        };
        self.control.send_state(state);
        self.control.end();
        Ok(())
    }

    /// The next round: sets now come from the newest policy on disk; the
    /// reward model trained next is a new version on every pair so far,
    /// and PPO continues from its last policy.
    fn new_round(&mut self) -> anyhow::Result<()> {
        let mut rounds = Rounds::load(&self.run)?;
        if self.run.latest_checkpoint(Stage::Ppo.name()).is_none() {
            let error = format!(
                "round {} ends with PPO against the reward model: run PPO before starting round {}",
                rounds.round,
                rounds.round + 1
            );
            self.control.send(Event::Error(error));
            return Ok(());
        }
        rounds.round += 1;
        rounds.save(&self.run)?;
        self.control.audit_record("round", json!({ "round": rounds.round }));
        self.disk = None;
        self.send_round(&rounds);
        Ok(())
    }

    /// The newest reward model's reliability table, when there is one.
    fn send_calibration(&self) {
        let path = self.run.rm_calibration_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => return self.control.send(Event::Warning(format!("{}: {e}", path.display()))),
        };
        match serde_json::from_str::<Calibration>(&text) {
            Ok(calibration) => self.control.send(Event::Calibration(calibration.bins)),
            Err(e) => self.control.send(Event::Warning(format!("{}: {e}", path.display()))),
        }
    }

    /// A reopened run's CAI revisions, for the constitution pane: what its
    /// `cai_revisions.jsonl` holds, counted by the run's constitution.
    fn send_revisions(&self) {
        let path = self.run.cai_revisions_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => return self.control.send(Event::Warning(format!("{}: {e}", path.display()))),
        };
        let read = || -> anyhow::Result<CaiView> {
            let constitution = Constitution::load(self.control.config().cai.constitution.as_deref())?;
            let revised = text
                .lines()
                .map(serde_json::from_str)
                .collect::<Result<Vec<Revised>, _>>()?;
            let judged = revised.iter().any(|r| !r.scores.is_empty());
            Ok(summary(&constitution, &revised, judged))
        };
        match read() {
            Ok(view) => self.control.send(Event::Revisions(view)),
            Err(e) => self.control.send(Event::Warning(format!("{}: {e:#}", path.display()))),
        }
    }

    fn send_round(&self, rounds: &Rounds) {
        self.control.send(Event::Round {
            round: rounds.round,
            rm_version: rounds.rm_version(),
        });
    }

    /// Pairs from disk must now come from the new checkpoint; the UI shows it.
    fn checkpoint_written(&mut self, active: &StageRun, path: &std::path::Path) {
        self.disk = None;
        self.control.send(Event::Checkpoint {
            stage: active.stage,
            step: active.step,
            path: path.display().to_string(),
        });
    }

    /// Serves queued samples and checkpoint requests while a stage runs.
    fn serve_queued(&mut self, active: &StageRun) {
        for queued in self.control.take_queued() {
            match queued {
                Queued::Samples => self.serve_samples(Some(active)),
                Queued::Checkpoint => match active.checkpoint(&self.run) {
                    Ok(path) => {
                        self.control.audit_record("checkpoint", json!({ "checkpoint": path }));
                        self.checkpoint_written(active, &path);
                    }
                    Err(e) => self.control.send(Event::Error(format!("checkpoint: {e:#}"))),
                },
                Queued::Start(_) | Queued::NewRound | Queued::Eval => self.control.send(Event::Error(format!(
                    "{} is running: stop it (S) first",
                    active.stage.name().to_uppercase()
                ))),
            }
        }
    }

    /// Sends a set of responses from the running stage's policy, or from
    /// the run's newest checkpoints.
    fn serve_samples(&mut self, active: Option<&StageRun>) {
        let temperature = active.map_or(self.idle.temperature, |a| a.params().temperature);
        // PPO holds its own reference and reward model; otherwise they come from disk.
        let ppo = active.and_then(StageRun::ppo_reference_and_reward);
        if ppo.is_none() && self.disk.is_none() {
            match DiskModels::load(&self.run, self.control.config(), &self.device) {
                Ok(models) => self.disk = Some(models),
                Err(e) => return self.control.send(Event::Error(format!("samples: {e}"))),
            }
        }
        let disk = self.disk.as_ref();
        let (control, next_set) = (&mut self.control, &mut self.next_set);
        match active.and_then(|a| a.policy().map(|policy| (policy, a))) {
            Some((policy, active)) => {
                let (reference, reward) = match ppo {
                    Some((reference, reward)) => (reference, Some(reward)),
                    None => {
                        let disk = disk.expect("loaded above");
                        (&disk.reference, disk.reward.as_ref())
                    }
                };
                let models = PairModels {
                    policy: &policy,
                    reference,
                    reward,
                    tokenizer: active.tokenizer(),
                    version: format!("{}-{}", active.stage.name(), active.step),
                };
                offer_set(control, next_set, &models, temperature);
            }
            None => offer_set(
                control,
                next_set,
                &disk.expect("loaded above").pair_models(),
                temperature,
            ),
        }
    }
}

/// The workbench around the shared loop: commands polled and queued work
/// served between steps and inside PPO's iterations, every step told to
/// the screen, alerts and the NaN guard, and fresh pairs after each PPO
/// iteration.
impl Hooks for Worker {
    fn log(&mut self) -> &mut MetricsLog {
        &mut self.log
    }

    fn before_step(&mut self, active: &mut StageRun) -> Flow {
        loop {
            match self.control.poll(active.params_mut(), Serving::All) {
                Poll::Stop => return Flow::Stop,
                Poll::Serve => self.serve_queued(active),
                Poll::Go => return Flow::Go,
                Poll::Once => {
                    let next = active.step + 1;
                    self.control.send(Event::Note(match active.stage {
                        stage if stage.is_online() => {
                            format!("one step: the rollout of iteration {next}, paused before its first optimizer step")
                        }
                        stage => format!("one step: {} step {next}", stage.name().to_uppercase()),
                    }));
                    return Flow::Go;
                }
            }
        }
    }

    fn checkpointed(&mut self, active: &StageRun, path: &std::path::Path) {
        self.checkpoint_written(active, path);
    }

    fn step(&mut self, active: &mut StageRun) -> Option<Metrics> {
        let (control, next_set) = (&mut self.control, &mut self.next_set);
        active.step(&mut |params, point, models| match point {
            // The worker polled just before the step.
            StepPoint::Rollout { .. } => ControlFlow::Continue(()),
            StepPoint::Optimizer { iteration, step } => loop {
                match control.poll(params, Serving::Samples) {
                    Poll::Stop => break ControlFlow::Break(()),
                    Poll::Go => break ControlFlow::Continue(()),
                    Poll::Once => {
                        let per_iteration = models.steps_per_iteration;
                        control.send(Event::Note(format!(
                            "one optimizer step: {} of {per_iteration} in iteration {}",
                            step % per_iteration + 1,
                            iteration + 1
                        )));
                        break ControlFlow::Continue(());
                    }
                    // Paused part way through an iteration: pairs come
                    // from the policy as it stands.
                    Poll::Serve => serve_mid_iteration(control, next_set, models, params.temperature),
                }
            },
        })
    }

    fn after_step(&mut self, active: &mut StageRun, stepped: Stepped) -> anyhow::Result<Flow> {
        let (stage, step) = (active.stage, active.step);
        self.control.progress(step, active.total);
        if self.panic_at_step == Some(step) {
            panic!("injected at step {step} by {PANIC_AT_STEP_VAR}");
        }
        send_metrics(&self.control, stage, step, stepped.metrics);
        for failure in active.take_failures() {
            self.control.failed(failure);
        }
        watch(&mut self.control, stepped.alerts, step);
        guard(&mut self.control, stage, step, stepped.non_finite);
        if stage.is_online() {
            // Fresh responses from the updated policy stream into the pane.
            self.serve_samples(Some(active));
        }
        self.serve_queued(active);
        Ok(Flow::Go)
    }
}

/// The live parameters the run's newest PPO checkpoint ended at (an
/// adaptive β has moved from the config's), if it has one.
fn last_ppo_params(run: &RunDir) -> Option<LiveParams> {
    let dir = run.latest_checkpoint(Stage::Ppo.name())?;
    Saved::read(&dir).ok()?.ppo.map(|ppo| ppo.params)
}

/// A resumed PPO stage runs at the β, temperature and KL mode it stopped
/// with, which may not be the config's that the workbench was told.
fn announce_resumed_params(control: &Control, told: &LiveParams, resumed: &LiveParams) {
    let changes = [
        (Param::Beta(resumed.kl.beta()), told.kl.beta()),
        (Param::Temperature(resumed.temperature as f64), told.temperature as f64),
        (
            Param::KlMode(KlMode::of(&resumed.kl)),
            Param::KlMode(KlMode::of(&told.kl)).value(),
        ),
    ];
    for (param, old) in changes.into_iter().filter(|(param, old)| param.value() != *old) {
        control.send(Event::ParamChanged {
            param,
            old,
            step: control.step(),
        });
    }
}

/// Draws a set of the size last asked for from `models`, at temperatures
/// spread around `temperature`, and offers it under the next id.
fn offer_set(control: &mut Control, next_set: &mut u64, models: &PairModels, temperature: f32) {
    *next_set += 1;
    let config = control.config();
    let temperatures = config.prefs.temperatures(control.set_size(), temperature);
    match sample_set(
        models,
        control.data(),
        *next_set,
        &temperatures,
        config.ppo.max_new_tokens,
    ) {
        Ok(set) => control.offer(set),
        Err(why) => control.send(Event::Error(format!("samples: {why}"))),
    }
}

/// Serves the pairs asked for while PPO is paused inside an iteration,
/// from the policy as it stands; other queued commands wait for the
/// iteration's end.
fn serve_mid_iteration(control: &mut Control, next_set: &mut u64, models: &Models, temperature: f32) {
    let asked = control.take_samples();
    let Some(tokenizer) = models.tokenizer else {
        return control.send(Event::Error("samples: this run's prompts have no tokenizer".into()));
    };
    let policy = models.policy.valid();
    let models = PairModels {
        policy: &policy,
        reference: models.reference,
        reward: Some(models.reward),
        tokenizer,
        version: format!("ppo-{}, mid-iteration", control.step()),
    };
    for _ in 0..asked {
        offer_set(control, next_set, &models, temperature);
    }
}

fn send_metrics(control: &Control, stage: Stage, step: usize, metrics: &[(&str, f64)]) {
    control.send(Event::Metrics {
        stage,
        step,
        values: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    });
}
