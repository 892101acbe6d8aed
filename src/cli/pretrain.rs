//! `rlhf-tui pretrain`: trains the built-in world's base model.

use std::path::PathBuf;

use crate::device::{self, DeviceChoice};
use crate::world::pretrain::{PretrainConfig, pretrain};

#[derive(Debug, clap::Args)]
pub struct PretrainArgs {
    /// Where to write the Hugging Face directory.
    #[arg(long, default_value = "assets/base")]
    pub out: PathBuf,
    /// Where to write a copy of the trained tokenizer (the world's shared one).
    #[arg(long, default_value = "assets/tokenizer.json")]
    pub tokenizer_out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Corpus documents generated (the tokenizer learns from all of them).
    #[arg(long, default_value_t = 60_000)]
    pub documents: usize,
    /// Largest vocabulary the tokenizer may learn.
    #[arg(long, default_value_t = 2048)]
    pub vocab_size: usize,
    #[arg(long, default_value_t = 128)]
    pub d_model: usize,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Context length, also the packed training sequence length.
    #[arg(long, default_value_t = 128)]
    pub context: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 3000)]
    pub steps: usize,
    /// Stop early after this many minutes.
    #[arg(long, default_value_t = 20.0)]
    pub max_minutes: f64,
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
}

pub fn run(args: PretrainArgs, choice: DeviceChoice) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.steps >= 1 && args.batch_size >= 1,
        "--steps and --batch-size must be at least 1"
    );
    anyhow::ensure!(
        args.d_model.is_multiple_of(args.heads),
        "--heads ({}) must divide --d-model ({})",
        args.heads,
        args.d_model
    );
    let selected = device::select(choice)?;
    let config = PretrainConfig {
        out: args.out,
        tokenizer_out: args.tokenizer_out,
        seed: args.seed,
        documents: args.documents,
        vocab_size: args.vocab_size,
        n_embd: args.d_model,
        n_layer: args.layers,
        n_head: args.heads,
        n_positions: args.context,
        batch_size: args.batch_size,
        steps: args.steps,
        max_minutes: args.max_minutes,
        lr: args.lr,
        warmup_steps: (args.steps / 20).max(1),
        weight_decay: 0.01,
    };
    eprintln!(
        "pretraining on {} ({} steps at most, {} minutes at most)",
        selected.label, config.steps, config.max_minutes
    );
    let report = pretrain(&config, &selected.device, |step, loss| {
        eprintln!("step {step:>5}  loss {loss:.4}")
    })?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
