//! `rlhf-tui eval`: a blind comparison of two models by a judge. Each
//! model answers the same held-out prompts (same seeds); the judge scores
//! every answer without knowing which model gave it; A's win rate over B
//! (ties half a win each) is printed with its 95% Wilson interval.

use std::path::PathBuf;

use anyhow::Context;

use crate::data::files::read_prompts;
use crate::device::{self, DeviceChoice};
use crate::judge::JudgeKind;
use crate::model::hf;
use crate::rlhf::data::{Prompt, Split};
use crate::rlhf::held_out::{ANSWER_TOKENS, sample_answers};
use crate::rlhf::win_rate::{WinRate, judged_outcomes};
use crate::run::RunConfig;
use crate::trainer::run_data::RunData;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Model A: a Hugging Face language-model directory (a run's
    /// checkpoint, or a base model).
    #[arg(long)]
    pub a: PathBuf,
    /// Model B, compared with A.
    #[arg(long)]
    pub b: PathBuf,
    /// The prompts (JSON Lines or one question a line); default: the
    /// held-out prompts of the config's data (the built-in world's
    /// without a config).
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// A run config: its data's held-out prompts and its judge.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `world` (the built-in world's rule judge), `config` (the config's
    /// judge section: an endpoint or a command) or the name of one of your
    /// judges (`rlhf-tui config` lists them). Without a config, `config`
    /// is the world's judge on the world's prompts.
    #[arg(long, default_value = "config")]
    pub judge: String,
    /// How many comparisons: the prompts in turn, each answered again with
    /// a new seed once all have been.
    #[arg(long, default_value_t = 200)]
    pub n: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs, choice: DeviceChoice) -> anyhow::Result<()> {
    anyhow::ensure!(args.n >= 1, "--n must be at least 1");
    let mut config = match &args.config {
        Some(path) => RunConfig::from_file(path)?,
        None => RunConfig::default(),
    };
    config.judge.kind = match args.judge.as_str() {
        "config" => config.judge.kind,
        "world" => JudgeKind::Rule,
        name => JudgeKind::Named(name.to_string()),
    };
    let data = RunData::of(&config)?;
    let judge = data.evaluator.clone().context(
        "no judge to compare with: pass --judge world on the built-in world's prompts, or a config whose judge section names an endpoint or a command",
    )?;
    let prompts = match &args.prompts {
        Some(path) => {
            let read = read_prompts(path)?;
            for error in &read.errors {
                eprintln!("{}", error.skipped(path));
            }
            read.items
        }
        None => data.sources.prompts(Split::HeldOut),
    };
    anyhow::ensure!(!prompts.is_empty(), "no prompts to compare on");

    let selected = device::select(choice)?;
    let open = |dir: &PathBuf| {
        hf::load_language_model(dir, &selected.device).with_context(|| format!("cannot open model {}", dir.display()))
    };
    let (model_a, tokenizer_a) = open(&args.a)?;
    let (model_b, tokenizer_b) = open(&args.b)?;
    let (mut asked, mut answers_a, mut answers_b) = (Vec::<Prompt>::new(), Vec::new(), Vec::new());
    // Each round answers every prompt (or what is left of n) with its own seed.
    for round in 0.. {
        let left = args.n - asked.len();
        if left == 0 {
            break;
        }
        let batch = &prompts[..left.min(prompts.len())];
        let seed = args.seed + round;
        let answer = |m, t| sample_answers(m, t, batch, ANSWER_TOKENS, seed).map_err(anyhow::Error::msg);
        answers_a.extend(answer(&model_a, &tokenizer_a)?);
        answers_b.extend(answer(&model_b, &tokenizer_b)?);
        asked.extend(batch.iter().cloned());
    }
    let outcomes = judged_outcomes(judge.as_ref(), &asked, &answers_a, &answers_b).map_err(anyhow::Error::msg)?;
    let rate = WinRate::of(&outcomes);
    if args.json {
        let mut line = serde_json::to_value(rate)?;
        let object = line.as_object_mut().expect("a win rate is an object");
        object.insert("judge".into(), judge.name().into());
        object.insert("a".into(), args.a.display().to_string().into());
        object.insert("b".into(), args.b.display().to_string().into());
        println!("{line}");
    } else {
        let judge_name = match judge.name() {
            crate::prefs::stats::JUDGE => "the built-in world's rule judge",
            name => name,
        };
        println!("A: {}\nB: {}\njudge: {judge_name}", args.a.display(), args.b.display());
        println!(
            "{} comparisons: A won {}, B won {}, {} ties",
            rate.n, rate.wins_a, rate.wins_b, rate.ties
        );
        println!(
            "A's win rate {:.3} (95% interval {:.3}–{:.3}, ties half a win)",
            rate.win_rate_a, rate.ci_low, rate.ci_high
        );
    }
    Ok(())
}
