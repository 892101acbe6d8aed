//! Judging a model on the built-in world: sample responses to prompts and
//! report how many parse as world sentences and their mean judge score.

use serde::Serialize;

use super::corpus::held_out_prompts;
use super::generator::prompt_text;
use super::inventory::Prompt;
use super::judge::judge;
use super::tokenizer_training::EOS;
use crate::model::sampling::SamplingParams;
use crate::model::{CausalLm, GenerateConfig, Tokenizer, generate};

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub responses: usize,
    /// Fraction of responses made only of sentences the world knows.
    pub parse_rate: f32,
    pub mean_score: f32,
}

/// The answer in generated tokens: up to EOS, decoded, cut where the model
/// starts a new turn, trimmed.
pub fn decode_response(tokenizer: &Tokenizer, tokens: &[u32], eos: Option<u32>) -> String {
    let end = tokens.iter().position(|&t| Some(t) == eos).unwrap_or(tokens.len());
    response_part(&tokenizer.decode(&tokens[..end])).to_string()
}

/// The part of a sampled text that answers: up to a new "Human" turn the
/// model may have started, trimmed.
pub fn response_part(text: &str) -> &str {
    text.split("\n\nHuman").next().unwrap_or("").trim()
}

/// Samples one response per prompt (T = 1, no truncation, EOS stop).
pub fn sample_responses(
    model: &CausalLm,
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
        .map(|tokens| decode_response(tokenizer, tokens, eos))
        .collect()
}

/// Responses sampled per held-out prompt when `train` reports the judge's view.
pub const HELD_OUT_SAMPLES: u64 = 4;

/// The judge's view of a model on the held-out prompts: `samples` responses
/// to each (seeds 1, 2, …), as `train` reports it after SFT and around PPO.
pub fn held_out_report(model: &CausalLm, tokenizer: &Tokenizer, samples: u64) -> EvalReport {
    let prompts = held_out_prompts();
    let (mut asked, mut responses) = (Vec::new(), Vec::new());
    for seed in 1..=samples {
        responses.extend(sample_responses(model, tokenizer, &prompts, 64, seed));
        asked.extend(prompts.iter().copied());
    }
    evaluate(&asked, &responses)
}

/// The judge's parse rate and mean score over responses to `prompts`.
pub fn evaluate(prompts: &[&Prompt], responses: &[String]) -> EvalReport {
    let judgments: Vec<_> = prompts.iter().zip(responses).map(|(p, r)| judge(&p.text, r)).collect();
    let n = judgments.len().max(1) as f32;
    EvalReport {
        responses: judgments.len(),
        parse_rate: judgments.iter().filter(|j| j.parsed).count() as f32 / n,
        mean_score: judgments.iter().map(|j| j.score).sum::<f32>() / n,
    }
}
