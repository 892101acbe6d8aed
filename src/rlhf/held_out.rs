//! A policy on the held-out prompts: responses sampled as the model reads
//! its prompts (its own chat format) and the evaluator's report on them,
//! after SFT and before and after PPO; and on the probe prompts at every
//! PPO iteration.

use super::data::{Evaluator, Prompt, Sources, Split};
use crate::model::sampling::SamplingParams;
use crate::model::{CausalLm, GenerateConfig, Generated, Tokenizer, generate};
use crate::rlhf::ppo::rollout::{QueryResponse, response_logprobs};
use crate::run::names;

/// Responses sampled per held-out prompt for the report.
pub const HELD_OUT_SAMPLES: u64 = 4;

/// Tokens a held-out answer may run to (here and in blind evaluations).
pub const ANSWER_TOKENS: usize = 64;

/// Each prompt as the model reads it (its chat format).
pub fn encode_prompts(tokenizer: &Tokenizer, prompts: &[Prompt]) -> Result<Vec<Vec<u32>>, String> {
    prompts.iter().map(|p| tokenizer.encode_prompt(p)).collect()
}

/// One answer per query (T = 1, no truncation, stopping at the end of the
/// turn): its tokens and their log-probabilities.
fn sample(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    queries: &[Vec<u32>],
    max_new_tokens: usize,
    seed: u64,
) -> Generated {
    let config = GenerateConfig {
        max_new_tokens,
        sampling: SamplingParams::default(),
        eos_token_id: tokenizer.eos_id(),
        pad_token_id: pad(tokenizer),
        seed,
    };
    generate(model, queries, &config)
}

fn pad(tokenizer: &Tokenizer) -> u32 {
    tokenizer.pad_id().unwrap_or(0)
}

/// The answers' texts, each up to where the model would start a new turn.
fn texts(tokenizer: &Tokenizer, out: &Generated) -> Vec<String> {
    out.tokens.iter().map(|tokens| tokenizer.answer(tokens)).collect()
}

/// One answer per prompt (see `sample`), as its text.
pub fn sample_answers(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    prompts: &[Prompt],
    max_new_tokens: usize,
    seed: u64,
) -> Result<Vec<String>, String> {
    let queries = encode_prompts(tokenizer, prompts)?;
    Ok(texts(
        tokenizer,
        &sample(model, tokenizer, &queries, max_new_tokens, seed),
    ))
}

/// A policy's held-out figures, from `samples` answers (seeds 1, 2, …) to
/// each of the sources' held-out prompts: the evaluator's report on them,
/// where there is an evaluator, and with a `reference`, `eval/kl` on the
/// same answers: the mean over answers of Σ (log π − log π_ref) over their
/// tokens, an unbiased estimate of KL(π ‖ π_ref) per response.
pub fn held_out_report(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    sources: &dyn Sources,
    evaluator: Option<&dyn Evaluator>,
    reference: Option<&CausalLm>,
    samples: u64,
) -> Result<Vec<(&'static str, f64)>, String> {
    let prompts = sources.prompts(Split::HeldOut);
    let queries = encode_prompts(tokenizer, &prompts)?;
    let (mut asked, mut answers) = (Vec::new(), Vec::new());
    let (mut kl, mut n) = (0.0f64, 0usize);
    for seed in 1..=samples {
        let out = sample(model, tokenizer, &queries, ANSWER_TOKENS, seed);
        if let Some(reference) = reference {
            let qr = QueryResponse::new(&queries, &out.tokens, pad(tokenizer));
            let theirs = qr.per_response(response_logprobs(reference, &qr, 1.0));
            for (ours, theirs) in out.logprobs.iter().zip(&theirs) {
                kl += ours.iter().zip(theirs).map(|(a, b)| (a - b) as f64).sum::<f64>();
                n += 1;
            }
        }
        answers.extend(texts(tokenizer, &out));
        asked.extend(prompts.iter().cloned());
    }
    let mut metrics = match evaluator {
        Some(evaluator) => evaluator.report(&asked, &answers)?,
        None => Vec::new(),
    };
    if reference.is_some() {
        metrics.push((names::EVAL_KL, kl / n.max(1) as f64));
    }
    Ok(metrics)
}

/// Answers sampled per probe prompt at each iteration.
pub const PROBE_SAMPLES: usize = 4;

/// The report's figures a probe follows, and the names they are followed
/// under per iteration.
const PROBED: [(&str, &str); 1] = [(names::EVAL_SYCOPHANCY, names::PROBE_SYCOPHANCY)];

/// The policy on the probe prompts (`Sources::probe_prompts`, each with
/// its tokens) at one iteration: `PROBE_SAMPLES` answers to each, sampled
/// with `seed` (so the training's own draws are untouched), through the
/// evaluator's report.
pub fn probe_report(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    probe: &[(Prompt, Vec<u32>)],
    evaluator: &dyn Evaluator,
    seed: u64,
) -> Result<Vec<(&'static str, f64)>, String> {
    let (asked, queries): (Vec<Prompt>, Vec<Vec<u32>>) = probe
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), PROBE_SAMPLES))
        .unzip();
    let answers = texts(tokenizer, &sample(model, tokenizer, &queries, ANSWER_TOKENS, seed));
    let report = evaluator.report(&asked, &answers)?;
    Ok(PROBED
        .iter()
        .filter_map(|(figure, name)| Some((*name, report.iter().find(|(k, _)| k == figure)?.1)))
        .collect())
}
