//! `rlhf-tui train`: runs a stage without the workbench, writing the run
//! directory, with a progress bar on a terminal and plain lines otherwise.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::device::{self, DeviceChoice};
use crate::model::hf;
use crate::rlhf::ppo::trainer::PpoTrainer;
use crate::rlhf::reward::RmTrainer;
use crate::rlhf::sft::SftTrainer;
use crate::run::{MetricsLog, RunConfig, RunDir, metric};
use crate::world::eval::{EvalReport, HELD_OUT_SAMPLES, held_out_report};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Stage {
    /// Supervised fine-tuning on the built-in world's demonstrations.
    Sft,
    /// Reward model from the run's SFT checkpoint, on judge-labelled pairs.
    Rm,
    /// PPO from the run's SFT policy against its reward model.
    Ppo,
}

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
    let mut config = match &args.config {
        Some(path) => RunConfig::from_file(path)?,
        None => RunConfig::default(),
    };
    if let Some(steps) = args.steps {
        match args.stage {
            Stage::Sft => config.sft.steps = steps,
            Stage::Rm => config.rm.steps = steps,
            Stage::Ppo => config.ppo.iterations = steps,
        }
    }
    if let Some(data) = args.data {
        anyhow::ensure!(matches!(args.stage, Stage::Rm), "--data is for --stage rm");
        config.rm.data = Some(data);
    }
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let selected = device::select(choice)?;
    let run = RunDir::create(&args.runs_dir, &args.run)?;
    run.save_config(&config.to_ron())?;
    let mut log = MetricsLog::open(&run.metrics_path())?;
    match args.stage {
        Stage::Sft => train_sft(&config, &run, &mut log, &selected),
        Stage::Rm => train_rm(&config, &run, &mut log, &selected),
        Stage::Ppo => train_ppo(&config, &run, &mut log, &selected),
    }
}

fn train_sft(
    config: &RunConfig,
    run: &RunDir,
    log: &mut MetricsLog,
    selected: &device::Selected,
) -> anyhow::Result<()> {
    let mut trainer = SftTrainer::new(&config.sft, &selected.device)?;
    let steps = config.sft.steps;
    let mut progress = Progress::new("sft", "loss", steps);
    eprintln!(
        "sft on {} from {}: {steps} steps → {}",
        selected.label,
        config.sft.init.display(),
        run.root.display()
    );
    // The held-out loss before any step, for the curve to start from.
    log.append("sft", 0, &[("eval/loss", trainer.eval_loss())])?;
    for step in 0..steps {
        let mut metrics = trainer.step(config.sft.lr_at(step));
        if (step + 1) % config.sft.eval_every == 0 || step + 1 == steps {
            metrics.push(("eval/loss", trainer.eval_loss()));
        }
        log.append("sft", step + 1, &metrics)?;
        progress.update(step + 1, metrics[0].1);
    }
    progress.finish();

    let model = trainer.inference_model();
    let tokenizer = &trainer.tokenizer;
    let path = run.write_checkpoint("sft", steps, |dir| hf::save_language_model(dir, &model, tokenizer))?;
    // How the fine-tuned model answers prompts it never saw, by the judge.
    let report = held_out_report(&model, tokenizer, HELD_OUT_SAMPLES);
    log.append("sft", steps, &held_out_metrics(&report))?;
    println!(
        "{}",
        json!({ "stage": "sft", "steps": steps, "checkpoint": path, "eval/judge_score_mean": report.mean_score, "eval/judge_parse_rate": report.parse_rate })
    );
    Ok(())
}

fn held_out_metrics(report: &EvalReport) -> [(&'static str, f64); 2] {
    [
        ("eval/judge_score_mean", report.mean_score as f64),
        ("eval/judge_parse_rate", report.parse_rate as f64),
    ]
}

/// The path in the config, or the run's latest checkpoint of `stage`.
fn init_path(configured: &Option<PathBuf>, run: &RunDir, stage: &str, for_stage: &str) -> anyhow::Result<PathBuf> {
    match configured {
        Some(path) => Ok(path.clone()),
        None => run.latest_checkpoint(stage).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no {} checkpoint to start {for_stage} from; run `rlhf-tui train --stage {stage} --run {}` first, or set the path in the config",
                run.root.display(),
                stage.to_uppercase(),
                run.root.file_name().unwrap_or_default().to_string_lossy()
            )
        }),
    }
}

fn train_ppo(
    config: &RunConfig,
    run: &RunDir,
    log: &mut MetricsLog,
    selected: &device::Selected,
) -> anyhow::Result<()> {
    let policy = init_path(&config.ppo.policy_init, run, "sft", "PPO")?;
    let reward = init_path(&config.ppo.reward_init, run, "rm", "PPO")?;
    let mut trainer = PpoTrainer::new(&config.ppo, &policy, &reward, &selected.device)?;
    let iterations = config.ppo.iterations;
    let mut progress = Progress::new("ppo", "objective/scores", iterations);
    eprintln!(
        "ppo on {}: policy {}, reward {}: {iterations} iterations → {}",
        selected.label,
        policy.display(),
        reward.display(),
        run.root.display()
    );
    // The starting policy's held-out judge score, to compare the end with.
    let tokenizer = trainer
        .tokenizer()
        .expect("the world's trainer has a tokenizer")
        .clone();
    let before = held_out_report(&trainer.inference_policy(), &tokenizer, HELD_OUT_SAMPLES);
    log.append("ppo", 0, &held_out_metrics(&before))?;
    let mut last = Vec::new();
    for it in 0..iterations {
        let metrics = trainer.step(&mut |_, _| {});
        log.append("ppo", it + 1, &metrics)?;
        progress.update(it + 1, metric(&metrics, "objective/scores").unwrap_or(f64::NAN));
        last = metrics;
    }
    progress.finish();
    let model = trainer.inference_policy();
    let path = run.write_checkpoint("ppo", iterations, |dir| {
        hf::save_language_model(dir, &model, &tokenizer)
    })?;
    let after = held_out_report(&model, &tokenizer, HELD_OUT_SAMPLES);
    log.append("ppo", iterations, &held_out_metrics(&after))?;
    let get = |key: &str| metric(&last, key).unwrap_or(f64::NAN);
    println!(
        "{}",
        json!({
            "stage": "ppo", "iterations": iterations, "checkpoint": path,
            "judge/score_mean": get("judge/score_mean"), "objective/kl": get("objective/kl"), "objective/scores": get("objective/scores"),
            "eval/judge_score_mean_before": before.mean_score, "eval/judge_score_mean": after.mean_score, "eval/judge_parse_rate": after.parse_rate,
        })
    );
    Ok(())
}

fn train_rm(config: &RunConfig, run: &RunDir, log: &mut MetricsLog, selected: &device::Selected) -> anyhow::Result<()> {
    let init = init_path(&config.rm.init, run, "sft", "the reward model")?;
    let mut trainer = RmTrainer::new(&config.rm, &init, &selected.device)?;
    let steps = config.rm.steps;
    let mut progress = Progress::new("rm", "loss", steps);
    eprintln!(
        "rm on {} from {}: {steps} steps → {}",
        selected.label,
        init.display(),
        run.root.display()
    );
    for step in 0..steps {
        let metrics = trainer.step(config.rm.lr_at(step));
        log.append("rm", step + 1, &metrics)?;
        progress.update(step + 1, metrics[0].1);
    }
    progress.finish();
    let eval = trainer.evaluate();
    log.append(
        "rm",
        steps,
        &[
            ("eval/accuracy", eval.accuracy as f64),
            ("eval/ece", eval.calibration.ece as f64),
        ],
    )?;
    let model = trainer.inference_model();
    let tokenizer = &trainer.tokenizer;
    let path = run.write_checkpoint("rm", steps, |dir| hf::save_scalar_model(dir, &model, tokenizer))?;
    crate::fsutil::write_atomic(
        &run.root.join("rm_calibration.json"),
        serde_json::to_string_pretty(&eval.calibration)?.as_bytes(),
    )?;
    println!(
        "{}",
        json!({ "stage": "rm", "steps": steps, "checkpoint": path, "eval/accuracy": eval.accuracy, "eval/ece": eval.calibration.ece })
    );
    Ok(())
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
