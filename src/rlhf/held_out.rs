//! A policy on the held-out prompts: responses sampled as the model reads
//! its prompts (its own chat format) and the evaluator's report on them,
//! after SFT and before and after PPO; and on the probe prompts at every
//! PPO iteration.

use super::data::{Evaluator, Prompt, Sources, Split};
use crate::model::sampling::SamplingParams;
use crate::model::{CausalLm, GenerateConfig, Tokenizer, generate};
use crate::rlhf::ppo::rollout::{QueryResponse, response_logprobs};
use crate::run::names;

/// Responses sampled per held-out prompt for the report.
pub const HELD_OUT_SAMPLES: u64 = 4;

/// Tokens a held-out answer may run to (here and in blind evaluations).
pub const ANSWER_TOKENS: usize = 64;

/// One answer per prompt (T = 1, no truncation, stopping at the end of the
/// turn), as its text up to where the model would start a new turn.
pub fn sample_answers(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    prompts: &[Prompt],
    max_new_tokens: usize,
    seed: u64,
) -> Result<Vec<String>, String> {
    let inputs = prompts
        .iter()
        .map(|p| tokenizer.encode_prompt(p))
        .collect::<Result<Vec<_>, _>>()?;
    let config = GenerateConfig {
        max_new_tokens,
        sampling: SamplingParams::default(),
        eos_token_id: tokenizer.eos_id(),
        pad_token_id: tokenizer.pad_id().unwrap_or(0),
        seed,
    };
    let out = generate(model, &inputs, &config);
    Ok(out.tokens.iter().map(|tokens| tokenizer.answer(tokens)).collect())
}

/// The evaluator's report on `samples` answers (seeds 1, 2, …) to each of
/// the sources' held-out prompts.
pub fn held_out_report(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    sources: &dyn Sources,
    evaluator: &dyn Evaluator,
    samples: u64,
) -> Result<Vec<(&'static str, f64)>, String> {
    let prompts = sources.prompts(Split::HeldOut);
    let (mut asked, mut answers) = (Vec::new(), Vec::new());
    for seed in 1..=samples {
        answers.extend(sample_answers(model, tokenizer, &prompts, ANSWER_TOKENS, seed)?);
        asked.extend(prompts.iter().cloned());
    }
    evaluator.report(&asked, &answers)
}

/// KL(π ‖ π_ref) per response on the held-out prompts, estimated from
/// `HELD_OUT_SAMPLES` answers the policy samples to each (T = 1, seeds 1,
/// 2, …): the mean over answers of Σ (log π − log π_ref) over its tokens.
pub fn sampled_kl(
    policy: &CausalLm,
    reference: &CausalLm,
    tokenizer: &Tokenizer,
    prompts: &[Prompt],
) -> Result<f64, String> {
    let queries = prompts
        .iter()
        .map(|p| tokenizer.encode_prompt(p))
        .collect::<Result<Vec<_>, _>>()?;
    let pad = tokenizer.pad_id().or(tokenizer.eos_id()).unwrap_or(0);
    let (mut total, mut n) = (0.0f64, 0usize);
    for seed in 1..=HELD_OUT_SAMPLES {
        let config = GenerateConfig {
            max_new_tokens: ANSWER_TOKENS,
            sampling: SamplingParams::default(),
            eos_token_id: tokenizer.eos_id(),
            pad_token_id: pad,
            seed,
        };
        let out = generate(policy, &queries, &config);
        let qr = QueryResponse::new(&queries, &out.tokens, pad);
        let reference = response_logprobs(reference, &qr, 1.0)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        for (row, logps) in out.logprobs.iter().enumerate() {
            let theirs = &reference[row * qr.r..row * qr.r + logps.len()];
            total += logps.iter().zip(theirs).map(|(a, b)| (a - b) as f64).sum::<f64>();
            n += 1;
        }
    }
    Ok(total / n.max(1) as f64)
}

/// Answers sampled per probe prompt at each iteration.
pub const PROBE_SAMPLES: usize = 4;

/// The report's figures a probe follows, and the names they are followed
/// under per iteration.
const PROBED: [(&str, &str); 1] = [(names::EVAL_SYCOPHANCY, names::PROBE_SYCOPHANCY)];

/// The policy on the probe prompts (`Sources::probe_prompts`) at one
/// iteration: `PROBE_SAMPLES` answers to each, sampled with `seed` (so the
/// training's own draws are untouched), through the evaluator's report.
pub fn probe_report(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    prompts: &[Prompt],
    evaluator: &dyn Evaluator,
    seed: u64,
) -> Result<Vec<(&'static str, f64)>, String> {
    let asked: Vec<Prompt> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), PROBE_SAMPLES))
        .collect();
    let answers = sample_answers(model, tokenizer, &asked, ANSWER_TOKENS, seed)?;
    let report = evaluator.report(&asked, &answers)?;
    Ok(PROBED
        .iter()
        .filter_map(|(figure, name)| Some((*name, report.iter().find(|(k, _)| k == figure)?.1)))
        .collect())
}
