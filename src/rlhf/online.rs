//! What the online methods (PPO, GRPO, RLOO) share around their rollouts:
//! where prompts come from and how they are drawn, and what a batch of
//! sampled responses reports beside each method's own figures (diversity,
//! length, the evaluator's score and the behaviour probe).

use std::sync::Arc;

use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;

use crate::model::sampling::SamplingParams;
use crate::model::{CausalLm, GenerateConfig, Generated, Tokenizer, generate};
use crate::rlhf::data::{Evaluator, Prompt, Sources, Split};
use crate::rlhf::held_out::{encode_prompts, probe_report};
use crate::rlhf::monitors::distinct_n;
use crate::run::names;

/// Mixed into the run's seed for the probe's samples, so they are drawn
/// apart from the rollouts'.
const PROBE_SEED: u64 = 0x5eed_0fc1_a1a1;

/// Where a trainer's prompts come from.
pub enum Prompts {
    /// The sources' training prompts, drawn at random; the evaluator, when
    /// there is one, scores every response (`judge/score_mean`).
    Text {
        evaluator: Option<Arc<dyn Evaluator>>,
        /// Each prompt with its tokens as the policy reads it.
        prompts: Vec<(Prompt, Vec<u32>)>,
        /// Held-out prompts a behaviour is measured on every iteration,
        /// each with its tokens.
        probe: Vec<(Prompt, Vec<u32>)>,
        tokenizer: Box<Tokenizer>,
    },
    /// Fixed token prompts taken in turn (the benchmarks).
    Tokens(Vec<Vec<u32>>),
}

impl Prompts {
    /// The sources' training and probe prompts, laid out once as the
    /// policy reads them; `method` names the trainer in errors.
    pub fn text(
        (sources, evaluator): (Arc<dyn Sources>, Option<Arc<dyn Evaluator>>),
        tokenizer: Tokenizer,
        method: &str,
    ) -> anyhow::Result<Self> {
        let prompts = sources
            .prompts(Split::Train)
            .into_iter()
            .enumerate()
            .map(|(i, prompt)| {
                let tokens = tokenizer
                    .encode_prompt(&prompt)
                    .map_err(|why| anyhow::anyhow!("{method}'s training prompt {}: {why}", i + 1))?;
                Ok((prompt, tokens))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if prompts.is_empty() {
            anyhow::bail!("{method} has no training prompts");
        }
        let probe = sources.probe_prompts();
        let probe_tokens =
            encode_prompts(&tokenizer, &probe).map_err(|why| anyhow::anyhow!("a probe prompt: {why}"))?;
        Ok(Prompts::Text {
            prompts,
            probe: probe.into_iter().zip(probe_tokens).collect(),
            tokenizer: Box::new(tokenizer),
            evaluator,
        })
    }

    /// The prompts' tokenizer (`None` on token prompts).
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        match self {
            Prompts::Text { tokenizer, .. } => Some(tokenizer),
            Prompts::Tokens(_) => None,
        }
    }

    /// `n` queries, and on text prompts the prompts they ask: text prompts
    /// drawn at random, token prompts in turn from `cursor` (moved on).
    pub fn draw(&self, n: usize, rng: &mut ChaCha8Rng, cursor: &mut usize) -> (Vec<Vec<u32>>, Vec<Prompt>) {
        match self {
            Prompts::Text { prompts, .. } => (0..n)
                .map(|_| {
                    let (prompt, tokens) = prompts.choose(rng).expect("checked when made");
                    (tokens.clone(), prompt.clone())
                })
                .unzip(),
            Prompts::Tokens(all) => {
                let queries = (0..n).map(|i| all[(*cursor + i) % all.len()].clone()).collect();
                *cursor = (*cursor + n) % all.len();
                (queries, Vec::new())
            }
        }
    }

    /// What a batch of responses (`shown`: without EOS) reports beside the
    /// method's own figures: distinct n-grams and mean length (what the
    /// monitors read for mode collapse), and with an evaluator its mean
    /// score of the responses to `asked` and its probe report from
    /// `policy`. A judge that fails gives no figure for the iteration and
    /// says why in `failures`.
    pub fn report(
        &self,
        policy: &CausalLm,
        asked: &[Prompt],
        shown: &[Vec<u32>],
        (seed, iteration): (u64, usize),
        failures: &mut Vec<String>,
    ) -> Vec<(&'static str, f64)> {
        let lengths: Vec<f64> = shown.iter().map(|r| r.len() as f64).collect();
        let mut metrics = vec![
            (names::DISTINCT_1, distinct_n(shown, 1)),
            (names::DISTINCT_2, distinct_n(shown, 2)),
            (names::LENGTH_MEAN, mean(&lengths)),
        ];
        let Prompts::Text {
            tokenizer,
            evaluator: Some(evaluator),
            probe,
            ..
        } = self
        else {
            return metrics;
        };
        let decoded: Vec<String> = shown.iter().map(|r| tokenizer.answer(r)).collect();
        let probed = (!probe.is_empty()).then(|| {
            let seed = (seed ^ PROBE_SEED).wrapping_add(iteration as u64);
            probe_report(policy, tokenizer, probe, evaluator.as_ref(), seed)
        });
        let scored = evaluator.scores(asked, &decoded).map(|scores| {
            let scores: Vec<f64> = scores.iter().map(|&s| s as f64).collect();
            vec![(names::JUDGE_SCORE, mean(&scores))]
        });
        for result in std::iter::once(scored).chain(probed) {
            match result {
                Ok(figures) => metrics.extend(figures),
                Err(why) => failures.push(format!("{} on iteration {}: {why}", evaluator.name(), iteration + 1)),
            }
        }
        metrics
    }
}

/// A rollout's responses to `queries` from `policy` at `temperature`
/// (no top-k or top-p: the log-probs are the policy's own), up to
/// `max_new_tokens` or `eos`.
pub fn sample(
    policy: &CausalLm,
    queries: &[Vec<u32>],
    (max_new_tokens, temperature): (usize, f32),
    (eos, pad): (Option<u32>, u32),
    seed: u64,
) -> Generated {
    let config = GenerateConfig {
        max_new_tokens,
        sampling: SamplingParams {
            temperature,
            top_k: 0,
            top_p: 1.0,
        },
        eos_token_id: eos,
        pad_token_id: pad,
        seed,
    };
    generate(policy, queries, &config)
}

/// An iteration's minibatches, in the order they are stepped: `epochs`
/// passes over `n` episodes, each pass a fresh shuffle of the last,
/// cut into chunks of `size` (at most `n`). Drawn up front, so the
/// generator moves the same whether or not steering stops the iteration.
pub fn minibatches(n: usize, epochs: usize, size: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut chunks = Vec::new();
    for _ in 0..epochs {
        order.shuffle(rng);
        chunks.extend(order.chunks(size.clamp(1, n.max(1))).map(<[usize]>::to_vec));
    }
    chunks
}

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// Each response up to (not including) `eos`.
pub fn without_eos(responses: &[Vec<u32>], eos: Option<u32>) -> Vec<Vec<u32>> {
    responses
        .iter()
        .map(|r| r.iter().copied().take_while(|&t| Some(t) != eos).collect())
        .collect()
}
