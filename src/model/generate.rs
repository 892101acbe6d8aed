//! Batched autoregressive generation with the KV cache: the prompts are run
//! once (left-padded, so every row's next token is in the last column), then
//! each step feeds one token per row and reads one row of logits per row.
//!
//! Each row draws from its own random stream (the seed, stream = row index),
//! so a row's sample does not depend on which other rows share its batch.
//! That lets the CPU backend split a batch across cores: decoding a small
//! batch is too little work per matrix product to keep two cores busy, but
//! shards side by side do. Where the model's weights are too large for the
//! caches, the shards decode as a team (`kernels::team`) that meets at
//! each product of a weight, so that it streams from memory once for all
//! of them.

use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::batch::{PaddedBatch, attention_mask};
use super::causal_lm::CausalLm;
use super::sampling::{SamplingParams, sample_token};

/// What to generate and when to stop.
#[derive(Clone, Debug)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    /// A row stops after producing this token (which is kept).
    pub eos_token_id: Option<u32>,
    /// Fills the left of short prompts; never attended to.
    pub pad_token_id: u32,
    pub seed: u64,
}

/// The generated part of each row (prompt excluded) and each sampled
/// token's log-probability (see `sampling` for which distribution).
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    pub tokens: Vec<Vec<u32>>,
    pub logprobs: Vec<Vec<f32>>,
}

/// Model weights from which the CPU's shards decode as a team: above the
/// largest L3 caches (96 MiB on some parts), the weights stream from
/// memory at every step, once per shard unless the shards meet; below,
/// the cache shares them anyway, and meetings would only cost.
const TEAM_FROM_BYTES: usize = 128 << 20;

/// Generates a continuation of every prompt. The number of new tokens is
/// capped so prompt plus response fits the model's context.
pub fn generate(model: &CausalLm, prompts: &[Vec<u32>], config: &GenerateConfig) -> Generated {
    let team = crate::kernels::team::can_meet() && model.num_params() * size_of::<f32>() >= TEAM_FROM_BYTES;
    generate_sharded(model, prompts, config, team)
}

/// `generate`, the batch split into one shard per core on the CPU, the
/// shards decoding as a team when `team`.
fn generate_sharded(model: &CausalLm, prompts: &[Vec<u32>], config: &GenerateConfig, team: bool) -> Generated {
    let chunks = crate::device::shards(&model.device(), prompts.len());
    if chunks == 1 {
        return generate_rows(model, prompts, 0, config);
    }
    let size = prompts.len().div_ceil(chunks);
    let shards: Vec<&[Vec<u32>]> = prompts.chunks(size).collect();
    let shard = |i: usize| generate_rows(model, shards[i], i * size, config);
    let parts: Vec<Generated> = if team {
        crate::kernels::team::run(shards.len(), shard)
    } else {
        use rayon::prelude::*;
        (0..shards.len()).into_par_iter().map(shard).collect()
    };
    let mut out = Generated {
        tokens: Vec::with_capacity(prompts.len()),
        logprobs: Vec::with_capacity(prompts.len()),
    };
    for part in parts {
        out.tokens.extend(part.tokens);
        out.logprobs.extend(part.logprobs);
    }
    out
}

/// Generates for `prompts`, which are rows `first_row..` of the whole batch.
fn generate_rows(model: &CausalLm, prompts: &[Vec<u32>], first_row: usize, config: &GenerateConfig) -> Generated {
    let device = model.device();
    let b = prompts.len();
    let mut out = Generated {
        tokens: vec![Vec::new(); b],
        logprobs: vec![Vec::new(); b],
    };
    if b == 0 {
        return out;
    }
    let batch = PaddedBatch::left_padded(prompts, config.pad_token_id);
    let max_new = config.max_new_tokens.min(model.context().saturating_sub(batch.cols));
    if max_new == 0 || batch.cols == 0 {
        return out;
    }
    let mut rngs: Vec<ChaCha8Rng> = (0..b)
        .map(|row| {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            rng.set_stream((first_row + row) as u64);
            rng
        })
        .collect();
    let mut cache = model.new_cache();
    let mut valid: Vec<Vec<bool>> = batch.valid.chunks(batch.cols).map(<[bool]>::to_vec).collect();
    let mut next_pos: Vec<i64> = prompts.iter().map(|p| p.len() as i64).collect();
    let mut done = vec![false; b];

    // A decoding team meets at its steps' products, not at a prompt pass's.
    let mut logits = crate::kernels::team::apart(|| {
        let hidden = model.forward(
            batch.ids_tensor(&device),
            batch.positions_tensor(&device),
            batch.mask_tensor(&device),
            Some(&mut cache),
        );
        last_position_logits(model, hidden)
    });
    let vocab = model.vocab_size();

    for step in 0..max_new {
        let mut fed = Vec::with_capacity(b);
        for row in 0..b {
            if done[row] {
                fed.push(config.pad_token_id as i64);
                continue;
            }
            let (token, logprob) = sample_token(
                &logits[row * vocab..(row + 1) * vocab],
                &config.sampling,
                &mut rngs[row],
            );
            out.tokens[row].push(token);
            out.logprobs[row].push(logprob);
            done[row] = config.eos_token_id == Some(token);
            fed.push(token as i64);
        }
        if step + 1 == max_new || done.iter().all(|&d| d) {
            break;
        }
        // Finished rows keep being fed padding so the batch stays
        // rectangular; attention never crosses rows, so they affect nothing.
        for row in valid.iter_mut() {
            row.push(true);
        }
        let k = cache.len() + 1;
        let flat: Vec<bool> = valid.iter().flatten().copied().collect();
        let mask = attention_mask(&flat, b, 1, k);
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(fed, [b, 1]), &device);
        let positions = Tensor::<2, Int>::from_data(TensorData::new(next_pos.clone(), [b, 1]), &device);
        let mask = Tensor::from_data(TensorData::new(mask, [b, 1, 1, k]), &device);
        next_pos.iter_mut().for_each(|p| *p += 1);
        let hidden = model.forward(tokens, positions, mask, Some(&mut cache));
        logits = last_position_logits(model, hidden);
    }
    out
}

/// Logits at each row's last column, on the host: `[b · V]` row-major.
/// Only the last position goes through the LM head (the V-wide matmul is
/// the largest in a small model; prompt positions do not need it).
fn last_position_logits(model: &CausalLm, hidden: burn::tensor::Tensor<3>) -> Vec<f32> {
    let q = hidden.dims()[1];
    let last = hidden.narrow(1, q - 1, 1); // [b, 1, d]
    model
        .lm_logits(last)
        .into_data()
        // Into, not to: the logits' own allocation where it can be, rather
        // than a copy of a vocabulary per row at every step.
        .try_into_vec::<f32>()
        .expect("logits are f32")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::megabyte_llama;

    /// Three shards decoding as a team, meeting at every projection and LM
    /// head of their steps (this model's MLP weights and head are a
    /// megabyte each), generate what each shard generates alone, bit for
    /// bit. The shards' prompt passes differ in shape, and the last shard,
    /// whose prompt nearly fills the context, stops 24 steps before the
    /// others and leaves the team.
    #[test]
    fn shards_decoding_as_a_team_generate_what_each_generates_alone() {
        let model = CausalLm::from(megabyte_llama(5).1);
        let lengths = [3, 9, 5, 2, 7, 4, 240];
        let prompts: Vec<Vec<u32>> = lengths
            .iter()
            .enumerate()
            .map(|(r, &len)| (0..len).map(|i| ((r * 389 + i * 71) % 4096) as u32).collect())
            .collect();
        let config = GenerateConfig {
            max_new_tokens: 40,
            // Sampling at T = 1 over the whole vocabulary.
            sampling: SamplingParams::default(),
            eos_token_id: None,
            pad_token_id: 0,
            seed: 11,
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let together = pool.install(|| generate_sharded(&model, &prompts, &config, true));
        let mut alone = Generated {
            tokens: Vec::new(),
            logprobs: Vec::new(),
        };
        for (i, shard) in prompts.chunks(3).enumerate() {
            let part = generate_rows(&model, shard, i * 3, &config);
            alone.tokens.extend(part.tokens);
            alone.logprobs.extend(part.logprobs);
        }
        assert_eq!(together.tokens[6].len(), 16);
        assert_eq!(together.tokens[0].len(), 40);
        assert_eq!(together, alone);
    }
}
