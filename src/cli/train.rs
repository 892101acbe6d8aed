//! `rlhf-tui train`: runs a stage without the workbench, writing the run
//! directory, with a progress bar on a terminal and plain lines otherwise.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::device::{self, DeviceChoice};
use crate::model::hf;
use crate::rlhf::reward::RmTrainer;
use crate::rlhf::sft::SftTrainer;
use crate::run::{MetricsLog, RunConfig, RunDir};
use crate::world::corpus::held_out_prompts;
use crate::world::eval::{evaluate, sample_responses};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Stage {
    /// Supervised fine-tuning on the built-in world's demonstrations.
    Sft,
    /// Reward model from the run's SFT checkpoint, on judge-labelled pairs.
    Rm,
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
        }
    }
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let selected = device::select(choice)?;
    let run = RunDir::create(&args.runs_dir, &args.run)?;
    run.save_config(&config.to_ron())?;
    let mut log = MetricsLog::open(&run.metrics_path())?;
    match args.stage {
        Stage::Sft => train_sft(&config, &run, &mut log, &selected),
        Stage::Rm => train_rm(&config, &run, &mut log, &selected),
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
    let mut progress = Progress::new("sft", steps);
    eprintln!(
        "sft on {} from {}: {steps} steps → {}",
        selected.label,
        config.sft.init.display(),
        run.root.display()
    );
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
    let prompts = held_out_prompts();
    let mut all = Vec::new();
    let mut responses = Vec::new();
    for seed in 1..=2 {
        responses.extend(sample_responses(&model, tokenizer, &prompts, 64, seed));
        all.extend(prompts.iter().copied());
    }
    let report = evaluate(&all, &responses);
    log.append(
        "sft",
        steps,
        &[
            ("judge/score_mean", report.mean_score as f64),
            ("judge/parse_rate", report.parse_rate as f64),
        ],
    )?;
    println!(
        "{}",
        json!({ "stage": "sft", "steps": steps, "checkpoint": path, "judge/score_mean": report.mean_score, "judge/parse_rate": report.parse_rate })
    );
    Ok(())
}

fn train_rm(config: &RunConfig, run: &RunDir, log: &mut MetricsLog, selected: &device::Selected) -> anyhow::Result<()> {
    let init = match &config.rm.init {
        Some(path) => path.clone(),
        None => run.latest_checkpoint("sft").ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no SFT checkpoint to start the reward model from; run `rlhf-tui train --stage sft --run {}` first, or set rm.init in the config",
                run.root.display(),
                run.root.file_name().unwrap_or_default().to_string_lossy()
            )
        })?,
    };
    let mut trainer = RmTrainer::new(&config.rm, &init, &selected.device)?;
    let steps = config.rm.steps;
    let mut progress = Progress::new("rm", steps);
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
    total: usize,
    start: Instant,
    terminal: bool,
}

impl Progress {
    fn new(stage: &'static str, total: usize) -> Self {
        Self {
            stage,
            total,
            start: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, step: usize, loss: f64) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let eta = elapsed / step as f64 * (self.total - step) as f64;
        if self.terminal {
            let width = 30;
            let filled = width * step / self.total;
            eprint!(
                "\r{} [{}{}] {step}/{} loss {loss:.4} eta {eta:.0}s ",
                self.stage,
                "#".repeat(filled),
                " ".repeat(width - filled),
                self.total
            );
            let _ = std::io::stderr().flush();
        } else if step.is_multiple_of((self.total / 10).max(1)) || step == self.total {
            eprintln!(
                "{} step {step}/{} loss {loss:.4} ({elapsed:.0}s, eta {eta:.0}s)",
                self.stage, self.total
            );
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
