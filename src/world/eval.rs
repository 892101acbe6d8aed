//! Judging a model on the built-in world: sample responses to prompts and
//! report how many parse as world sentences and their mean judge score.

use serde::Serialize;

use super::generator::prompt_text;
use super::inventory::Prompt;
use super::judge::judge;
use super::tokenizer_training::EOS;
use crate::model::sampling::SamplingParams;
use crate::model::{GenerateConfig, Gpt2, Tokenizer, generate};

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub responses: usize,
    /// Fraction of responses made only of sentences the world knows.
    pub parse_rate: f32,
    pub mean_score: f32,
}

/// The response part of generated text: up to EOS (already excluded) or
/// the start of a new turn, trimmed.
pub fn response_text(generated: &str) -> &str {
    generated.split("\n\nHuman").next().unwrap_or("").trim()
}

/// Samples one response per prompt (T = 1, no truncation, EOS stop).
pub fn sample_responses(
    model: &Gpt2,
    tokenizer: &Tokenizer,
    prompts: &[&Prompt],
    max_new_tokens: usize,
    seed: u64,
) -> Vec<String> {
    let eos = tokenizer.token_id(EOS);
    let inputs: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| tokenizer.encode(&prompt_text(&p.text)))
        .collect();
    let config = GenerateConfig {
        max_new_tokens,
        sampling: SamplingParams::default(),
        eos_token_id: eos,
        pad_token_id: eos.unwrap_or(0),
        seed,
    };
    let out = generate(model, &inputs, &config);
    out.tokens
        .iter()
        .map(|tokens| {
            let body: Vec<u32> = tokens.iter().copied().filter(|t| Some(*t) != eos).collect();
            response_text(&tokenizer.decode(&body)).to_string()
        })
        .collect()
}

pub fn evaluate(prompts: &[&Prompt], responses: &[String]) -> EvalReport {
    let judgments: Vec<_> = prompts.iter().zip(responses).map(|(p, r)| judge(&p.text, r)).collect();
    let n = judgments.len().max(1) as f32;
    EvalReport {
        responses: judgments.len(),
        parse_rate: judgments.iter().filter(|j| j.parsed).count() as f32 / n,
        mean_score: judgments.iter().map(|j| j.score).sum::<f32>() / n,
    }
}
