//! Judging a model on the built-in world: sample responses to prompts and
//! report how many parse as world sentences and their mean judge score.

use serde::Serialize;

use super::inventory::Prompt;
use super::judge::judge;
use super::source::{Judge, World};
use crate::model::{CausalLm, Tokenizer};
use crate::rlhf::data;
pub use crate::rlhf::held_out::HELD_OUT_SAMPLES;
use crate::rlhf::held_out::sample_answers;
use crate::run::names;

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Fraction of responses made only of sentences the world knows.
    pub parse_rate: f32,
    pub mean_score: f32,
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
    let asked: Vec<data::Prompt> = prompts.iter().map(|p| data::Prompt::question(&p.text)).collect();
    sample_answers(model, tokenizer, &asked, max_new_tokens, seed).expect("the world's questions tokenize")
}

/// The judge's view of a model on the held-out prompts: `samples` responses
/// to each (seeds 1, 2, …), as `train` reports it after SFT and around PPO.
pub fn held_out_report(model: &CausalLm, tokenizer: &Tokenizer, samples: u64) -> EvalReport {
    let metrics = crate::rlhf::held_out::held_out_report(model, tokenizer, &World, &Judge, samples)
        .expect("the world's questions tokenize and its judge does not fail");
    let figure = |key| {
        metrics
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(f32::NAN, |(_, v)| *v as f32)
    };
    EvalReport {
        parse_rate: figure(names::EVAL_JUDGE_PARSE_RATE),
        mean_score: figure(names::EVAL_JUDGE_SCORE),
    }
}

/// The judge's parse rate and mean score over answers to questions.
pub fn evaluate(questions: &[&str], answers: &[&str]) -> EvalReport {
    let judgments: Vec<_> = questions.iter().zip(answers).map(|(q, a)| judge(q, a)).collect();
    let n = judgments.len().max(1) as f32;
    EvalReport {
        parse_rate: judgments.iter().filter(|j| j.parsed).count() as f32 / n,
        mean_score: judgments.iter().map(|j| j.score).sum::<f32>() / n,
    }
}
