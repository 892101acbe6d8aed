//! `rlhf-tui generate`: sample continuations of one prompt.

use std::path::PathBuf;

use anyhow::Context;

use crate::device::{self, DeviceChoice};
use crate::model::sampling::SamplingParams;
use crate::model::{GenerateConfig, generate, hf};
use crate::rlhf::data::Prompt;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// A Hugging Face GPT-2, Llama or Qwen2 directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// The text to continue.
    #[arg(long)]
    pub prompt: String,
    #[arg(long, default_value_t = 48)]
    pub max_new_tokens: usize,
    /// 0 decodes greedily.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Nucleus sampling: keep the most likely tokens up to this mass (1 = all).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How many continuations to sample (one batch).
    #[arg(long, default_value_t = 1)]
    pub num: usize,
    /// Treat the prompt as a user's turn: lay it out as the model reads a
    /// conversation (its chat template, else `\n\nHuman: PROMPT\n\nAssistant:`)
    /// and print the answer, up to the end of the turn.
    #[arg(long)]
    pub chat: bool,
}

pub fn run(args: GenerateArgs, choice: DeviceChoice) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.temperature >= 0.0,
        "--temperature must be 0 (greedy) or positive, got {}",
        args.temperature
    );
    anyhow::ensure!(
        args.top_p > 0.0 && args.top_p <= 1.0,
        "--top-p must be in (0, 1], got {}",
        args.top_p
    );
    anyhow::ensure!(args.num >= 1, "--num must be at least 1");
    let selected = device::select(choice)?;
    let (model, tokenizer) = hf::load_language_model(&args.model, &selected.device)
        .with_context(|| format!("cannot open model {}", args.model.display()))?;
    // With --chat the prompt is a user's turn, laid out as the model reads one.
    let prompt = match args.chat {
        true => Prompt::question(&args.prompt),
        false => Prompt::Text(args.prompt.clone()),
    };
    let prompt = tokenizer
        .encode_prompt(&prompt)
        .map_err(|e| anyhow::anyhow!("--prompt cannot be laid out or tokenized: {e}"))?;
    anyhow::ensure!(
        !prompt.is_empty(),
        "--prompt is empty after tokenization; give some text"
    );
    anyhow::ensure!(
        prompt.len() < model.context(),
        "--prompt is {} tokens; this model's context is {} (n_positions)",
        prompt.len(),
        model.context()
    );
    let eos = tokenizer.eos_id();
    let config = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
        },
        eos_token_id: eos,
        pad_token_id: tokenizer.pad_id().unwrap_or(0),
        seed: args.seed,
    };
    let out = generate(&model, &vec![prompt; args.num], &config);
    for (i, tokens) in out.tokens.iter().enumerate() {
        if args.num > 1 {
            println!("--- sample {} ---", i + 1);
        }
        if args.chat {
            println!("Human: {}\nAssistant: {}", args.prompt, tokenizer.answer(tokens));
        } else {
            // EOS ends a row's tokens; it is not text.
            let end = tokens.iter().position(|&t| Some(t) == eos).unwrap_or(tokens.len());
            println!("{}{}", args.prompt, tokenizer.decode(&tokens[..end]));
        }
    }
    Ok(())
}
