//! `rlhf-tui score`: the log-probability of each token of a text under a
//! language model, or a reward model's score of the whole text.

use std::path::PathBuf;

use anyhow::Context;

use crate::device::{self, DeviceChoice};
use crate::model::{hf, logprobs::sequence_logprobs};
use crate::rlhf::reward::score_sequences;

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// A Hugging Face GPT-2, Llama or Qwen2 directory: a language model, or a reward model
    /// (`GPT2ForSequenceClassification`), whose score of the text is printed.
    #[arg(long)]
    pub model: PathBuf,
    /// The text to score.
    #[arg(long)]
    pub text: String,
    /// Print `{"tokens": [...], "logprobs": [...]}` (a reward model:
    /// `{"tokens": [...], "reward": r}`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ScoreArgs, choice: DeviceChoice) -> anyhow::Result<()> {
    let selected = device::select(choice)?;
    if hf::is_scalar_model(&args.model)? {
        return reward(&args, &selected.device);
    }
    let (model, tokenizer) = hf::load_language_model(&args.model, &selected.device)
        .with_context(|| format!("cannot open model {}", args.model.display()))?;
    let tokens = tokenizer
        .try_encode(&args.text)
        .map_err(|e| anyhow::anyhow!("--text cannot be tokenized: {e}"))?;
    anyhow::ensure!(
        tokens.len() <= model.context(),
        "--text is {} tokens; this model's context is {} (n_positions)",
        tokens.len(),
        model.context()
    );
    let logprobs = sequence_logprobs(&model, &tokens);
    if args.json {
        println!("{}", serde_json::json!({ "tokens": tokens, "logprobs": logprobs }));
    } else {
        let texts = tokenizer.token_texts(&tokens);
        println!("{:>6}  {:>10}  token", "id", "logprob");
        for (i, (id, text)) in tokens.iter().zip(&texts).enumerate() {
            let lp = if i == 0 {
                "-".to_string()
            } else {
                format!("{:.4}", logprobs[i - 1])
            };
            println!("{id:>6}  {lp:>10}  {text:?}");
        }
        println!("total log-probability: {:.4}", logprobs.iter().sum::<f32>());
    }
    Ok(())
}

/// A reward model's score of the whole text, pooled at its last token as
/// the reward model is trained and transformers scores.
fn reward(args: &ScoreArgs, device: &burn::tensor::Device) -> anyhow::Result<()> {
    let (model, tokenizer) = hf::load_scalar_model(&args.model, device, None)
        .with_context(|| format!("cannot open model {}", args.model.display()))?;
    let tokens = tokenizer
        .try_encode(&args.text)
        .map_err(|e| anyhow::anyhow!("--text cannot be tokenized: {e}"))?;
    let pad = tokenizer.pad_id().unwrap_or(0);
    let reward: f32 = score_sequences(&model, std::slice::from_ref(&tokens), &[0], pad).into_scalar();
    if args.json {
        println!("{}", serde_json::json!({ "tokens": tokens, "reward": reward }));
    } else {
        println!("reward: {reward:.6} ({} tokens)", tokens.len());
    }
    Ok(())
}
