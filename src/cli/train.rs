//! `rlhf-tui train`: runs a stage without the workbench, writing the run
//! directory, with a progress bar on a terminal and plain lines otherwise.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::device::{self, DeviceChoice};
use crate::run::names;
use crate::run::{MetricsLog, RunConfig, RunDir, metric};
use crate::trainer::driver::{self, Flow, Hooks, Stepped};
use crate::trainer::protocol::Stage;
use crate::trainer::stage::{Metrics, StageRun};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[arg(long, value_enum)]
    pub stage: Stage,
    /// A RON run config; fields left out take their defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The run's name: its files go to runs/NAME/.
    #[arg(long, default_value = "default")]
    pub run: String,
    /// Continues runs/NAME's stage from its newest checkpoint, exactly where
    /// it stopped (with its saved config unless --config is given);
    /// --steps moves the stage's end.
    #[arg(long, value_name = "NAME", conflicts_with = "run")]
    pub resume: Option<String>,
    /// Overrides the number of steps of the stage being run.
    #[arg(long)]
    pub steps: Option<usize>,
    /// With `--stage rm`: a preference file to train on (TRL or HH-RLHF JSON
    /// Lines, plain or .gz) instead of the built-in world's pairs.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where run directories live.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
}

pub fn run(args: TrainArgs, choice: DeviceChoice) -> anyhow::Result<()> {
    let name = args.resume.as_ref().unwrap_or(&args.run);
    let saved = RunDir::saved_config(&args.runs_dir, name);
    let mut config = match (&args.config, args.resume.is_some()) {
        (Some(path), _) => RunConfig::from_file(path)?,
        (None, true) => RunConfig::from_file(&saved)?,
        (None, false) => RunConfig::default(),
    };
    if let Some(steps) = args.steps {
        match args.stage {
            Stage::Sft => config.sft.steps = steps,
            Stage::Cai => config.cai.steps = steps,
            Stage::Rm => config.rm.steps = steps,
            Stage::Ppo => config.ppo.iterations = steps,
            Stage::Grpo => config.grpo.iterations = steps,
            Stage::Rloo => config.rloo.iterations = steps,
            Stage::Dpo => config.dpo.steps = steps,
        }
    }
    if let Some(data) = args.data.clone() {
        anyhow::ensure!(matches!(args.stage, Stage::Rm), "--data is for --stage rm");
        config.rm.data = Some(data);
    }
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let saved_config = config.to_ron();
    crate::world::assets::locate_base(&mut config)?;
    let selected = device::select(choice)?;
    // A run this command creates and then cannot start is not left behind.
    let fresh = !args.runs_dir.join(name).exists();
    let run = RunDir::create(&args.runs_dir, name)?;
    let started = start(&args, &config, &run, &selected.device);
    let mut stage = match started {
        Ok(stage) => stage,
        Err(e) => {
            if fresh {
                let _ = std::fs::remove_dir_all(&run.root);
            }
            return Err(e);
        }
    };
    run.save_config(&saved_config)?;
    let mut log = MetricsLog::open(&run.metrics_path())?;
    if args.resume.is_some() {
        let dropped = log.drop_after(args.stage.name(), stage.step)?;
        if dropped > 0 {
            eprintln!(
                "metrics.jsonl: {dropped} lines past the checkpoint's step {} taken out",
                stage.step
            );
        }
    }
    let name = args.stage.name();
    eprintln!(
        "{name} on {} from {}: {} steps → {}",
        selected.label,
        stage.init.display(),
        stage.total,
        run.root.display()
    );
    // The files' skipped lines, then what the stage itself skipped.
    for warning in stage.data().warnings.iter().chain(stage.warnings()) {
        eprintln!("warning: {warning}");
    }
    // A resumed stage's curves already have their start.
    let baseline = match args.resume {
        Some(_) => Vec::new(),
        None => driver::log_baseline(&stage, &mut log)?,
    };
    let shown = match args.stage {
        Stage::Ppo => names::SCORES,
        Stage::Grpo | Stage::Rloo => names::REWARD,
        Stage::Sft | Stage::Cai | Stage::Rm | Stage::Dpo => names::LOSS,
    };
    let mut hooks = Terminal {
        log,
        progress: Progress::new(name, shown, stage.total),
        last: Vec::new(),
    };
    driver::run_steps(&mut stage, &run, &mut driver::monitor(args.stage, &config), &mut hooks)?;
    hooks.progress.finish();
    let (path, eval) = driver::finish(&stage, &run, &mut hooks.log)?;
    let last = hooks.last;

    // One summary line: the last step's metrics, the held-out evaluation,
    // and the baseline it is compared with.
    let mut summary = serde_json::Map::new();
    summary.insert("stage".into(), json!(name));
    summary.insert("steps".into(), json!(stage.step));
    summary.insert("checkpoint".into(), json!(path));
    for (key, value) in last.iter().chain(&eval) {
        summary.insert((*key).into(), json!(value));
    }
    for (key, value) in &baseline {
        summary.insert(format!("{key}_before"), json!(value));
    }
    println!("{}", serde_json::Value::Object(summary));
    Ok(())
}

/// The stage started afresh, or continued from the run's newest
/// checkpoint with `--resume`.
fn start(
    args: &TrainArgs,
    config: &RunConfig,
    run: &RunDir,
    device: &burn::tensor::Device,
) -> anyhow::Result<StageRun> {
    let name = args.stage.name();
    match &args.resume {
        Some(run_name) => {
            let dir = run.latest_checkpoint(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no {name} checkpoint to resume; start it with `train --stage {name} --run {run_name}`",
                    run.root.display()
                )
            })?;
            StageRun::resume(config, run, &dir, args.steps, device)
        }
        None => StageRun::start(args.stage, config, run, device),
    }
}

/// The command line around the shared loop: progress, alerts as lines, and
/// an error at a step that was not finite.
struct Terminal {
    log: MetricsLog,
    progress: Progress,
    /// The last step's metrics, for the summary.
    last: Metrics,
}

impl Hooks for Terminal {
    fn log(&mut self) -> &mut MetricsLog {
        &mut self.log
    }

    fn checkpointed(&mut self, _: &StageRun, path: &std::path::Path) {
        self.progress.finish();
        eprintln!("checkpoint {}", path.display());
    }

    fn after_step(&mut self, active: &mut StageRun, stepped: Stepped) -> anyhow::Result<Flow> {
        let name = active.stage.name();
        if let Some((key, value)) = stepped.non_finite {
            self.progress.finish();
            anyhow::bail!(
                "{name} step {}: {key} is {value}; that update was not applied and no checkpoint was written; lower {name}.lr in the config and run again",
                active.step
            );
        }
        for failure in active.take_failures() {
            self.progress.finish();
            eprintln!("warning: {failure}");
        }
        for alert in stepped.alerts.raised {
            self.progress.finish();
            eprintln!(
                "alert: {} at step {}: {}",
                alert.kind.title(),
                alert.step,
                alert.message
            );
        }
        let shown = metric(stepped.metrics, self.progress.metric).unwrap_or(f64::NAN);
        self.progress.update(active.step, shown);
        self.last = stepped.metrics.clone();
        Ok(Flow::Go)
    }
}

/// A progress bar on a terminal; a plain line every tenth of the run otherwise.
struct Progress {
    stage: &'static str,
    /// The metric shown beside the step.
    metric: &'static str,
    total: usize,
    start: Instant,
    terminal: bool,
}

impl Progress {
    fn new(stage: &'static str, metric: &'static str, total: usize) -> Self {
        Self {
            stage,
            metric,
            total,
            start: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, step: usize, value: f64) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let eta = elapsed / step as f64 * (self.total - step) as f64;
        if self.terminal {
            let width = 30;
            let filled = width * step / self.total;
            eprint!(
                "\r{} [{}{}] {step}/{} {} {value:.4} eta {eta:.0}s ",
                self.stage,
                "#".repeat(filled),
                " ".repeat(width - filled),
                self.total,
                self.metric
            );
            let _ = std::io::stderr().flush();
        } else if step.is_multiple_of((self.total / 10).max(1)) || step == self.total {
            eprintln!(
                "{} step {step}/{} {} {value:.4} ({elapsed:.0}s, eta {eta:.0}s)",
                self.stage, self.total, self.metric
            );
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
