//! Choosing the next token from one row of logits: temperature, top-k and
//! top-p filtering, greedy decoding at temperature 0, all seeded. Pure
//! functions over host slices, so they are tested without a model.
//!
//! The log-probability returned with each token is the token's under the
//! temperature-scaled distribution before top-k/top-p filtering,
//! `log softmax(logits / T)`: the quantity PPO's ratio is built from, so a
//! rollout's sampler log-probs equal what a forward pass recomputes.

use rand::Rng;

use crate::kernels::simd::{exp, widest};

/// How the next token is drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax); otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = no limit).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose mass reaches p (1 = all).
    pub top_p: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        }
    }
}

/// Values per block of a vocabulary's weights: a draw adds up the blocks'
/// sums until it passes its target, then only its block's values.
const BLOCK: usize = 256;

/// The weights `exp(x/t − m)` of one row of logits, m = max(x/t), with the
/// sum of each block of `BLOCK` of them and of all (in f64).
struct Weights {
    values: Vec<f32>,
    blocks: Vec<f64>,
    max: f32,
    total: f64,
}

impl Weights {
    /// A vocabulary's worth per token: the max, the exponentials and the
    /// block sums each run in vector lanes rather than one running value.
    fn of(logits: &[f32], inv_t: f32) -> Self {
        widest(
            #[inline(always)]
            || {
                let max = max_of(logits) * inv_t;
                let values: Vec<f32> = logits
                    .iter()
                    .map(|&x| {
                        let z = x * inv_t - max;
                        // `exp` clamps where eᶻ underflows; a weight there is 0.
                        if z < -87.0 { 0.0 } else { exp(z) }
                    })
                    .collect();
                let blocks: Vec<f64> = values.chunks(BLOCK).map(sum_f64).collect();
                let total = blocks.iter().sum();
                Self {
                    values,
                    blocks,
                    max,
                    total,
                }
            },
        )
    }

    /// `log softmax(x/t)` of logit `x`.
    fn log_prob(&self, x: f32, inv_t: f32) -> f32 {
        x * inv_t - self.max - self.total.ln() as f32
    }

    /// Inverse-CDF draw: the first index whose running sum passes u·total.
    /// `None` only when rounding leaves the target past the last block.
    fn draw<R: Rng>(&self, rng: &mut R) -> Option<usize> {
        let target = rng.random::<f64>() * self.total;
        let mut before = 0.0;
        for (b, &sum) in self.blocks.iter().enumerate() {
            if target < before + sum {
                let start = b * BLOCK;
                let block = &self.values[start..(start + BLOCK).min(self.values.len())];
                let weights = block.iter().enumerate().map(|(i, &v)| (start + i, v as f64));
                // Where the block's values added one by one fall short of
                // its sum added in lanes, by rounding: its last weighted one.
                return first_past(weights, before, target)
                    .or_else(|| block.iter().rposition(|&v| v > 0.0).map(|i| start + i));
            }
            before += sum;
        }
        None
    }
}

/// The largest value, in 16 lanes.
#[inline(always)]
fn max_of(values: &[f32]) -> f32 {
    let chunks = values.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let mut lanes = [f32::NEG_INFINITY; 16];
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &x)| *l = l.max(x));
    }
    lanes.into_iter().fold(tail, f32::max)
}

/// Σ values in f64, in 8 lanes.
#[inline(always)]
fn sum_f64(values: &[f32]) -> f64 {
    let chunks = values.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    let mut lanes = [0.0f64; 8];
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &v)| *l += v as f64);
    }
    lanes.iter().sum::<f64>() + tail
}

/// `log softmax(logits / t)`, computed stably (max subtracted first).
pub fn log_softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let inv_t = if temperature > 0.0 { 1.0 / temperature } else { 1.0 };
    let weights = Weights::of(logits, inv_t);
    logits.iter().map(|&x| weights.log_prob(x, inv_t)).collect()
}

/// Index of the largest value; the first one on ties, as `torch.argmax`.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// The candidate tokens and their renormalised probabilities after top-k
/// and top-p, most likely first. `logp` is `log_softmax(logits / T)`.
pub fn candidates(logp: &[f32], top_k: usize, top_p: f32) -> Vec<(usize, f32)> {
    let mut order: Vec<usize> = (0..logp.len()).collect();
    let k = if top_k == 0 { logp.len() } else { top_k.min(logp.len()) };
    if k < order.len() {
        // Partial selection first: sorting 4096 entries per token is waste.
        order.select_nth_unstable_by(k - 1, |&a, &b| logp[b].total_cmp(&logp[a]));
        order.truncate(k);
    }
    order.sort_unstable_by(|&a, &b| logp[b].total_cmp(&logp[a]).then(a.cmp(&b)));
    let mut kept = Vec::with_capacity(order.len());
    let mut mass = 0.0f32;
    for i in order {
        let p = logp[i].exp();
        kept.push((i, p));
        mass += p;
        // The token that crosses p is kept, as in transformers.
        if top_p < 1.0 && mass >= top_p {
            break;
        }
    }
    let total: f32 = kept.iter().map(|&(_, p)| p).sum();
    kept.iter_mut().for_each(|(_, p)| *p /= total);
    kept
}

/// Draws one token. Returns the token and its log-probability under
/// `log_softmax(logits / T)` (see the module note).
pub fn sample_token<R: Rng>(logits: &[f32], params: &SamplingParams, rng: &mut R) -> (u32, f32) {
    if params.temperature <= 0.0 {
        let token = argmax(logits);
        return (token as u32, Weights::of(logits, 1.0).log_prob(logits[token], 1.0));
    }
    if params.top_k == 0 && params.top_p >= 1.0 {
        // The common PPO case: one exponential per logit, then a draw over
        // the unnormalised weights; no sort.
        let inv_t = 1.0 / params.temperature;
        let weights = Weights::of(logits, inv_t);
        let chosen = weights.draw(rng).unwrap_or_else(|| argmax(logits));
        return (chosen as u32, weights.log_prob(logits[chosen], inv_t));
    }
    let logp = log_softmax(logits, params.temperature);
    let kept = candidates(&logp, params.top_k, params.top_p);
    let chosen = draw(kept.iter().map(|&(i, p)| (i, p as f64)), 1.0, rng).unwrap_or(kept[0].0);
    (chosen as u32, logp[chosen])
}

/// Inverse-CDF draw from `(index, weight)` pairs whose weights sum to
/// `total`; `None` only when rounding leaves the target past the last
/// weight, and the caller falls back to the most likely token.
fn draw<R: Rng>(weights: impl Iterator<Item = (usize, f64)>, total: f64, rng: &mut R) -> Option<usize> {
    first_past(weights, 0.0, rng.random::<f64>() * total)
}

/// The first index at which `before` plus the running sum of the weights
/// passes `target`.
fn first_past(weights: impl Iterator<Item = (usize, f64)>, before: f64, target: f64) -> Option<usize> {
    let mut acc = before;
    for (i, w) in weights {
        acc += w;
        if target < acc {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn log_softmax_matches_hand_values() {
        // softmax([0, ln 3]) = [1/4, 3/4]
        let lp = log_softmax(&[0.0, 3f32.ln()], 1.0);
        assert!((lp[0] - 0.25f32.ln()).abs() < 1e-6);
        assert!((lp[1] - 0.75f32.ln()).abs() < 1e-6);
        // At T = 2 the logits halve: softmax([0, ln 3 / 2]) = [1/(1+√3), √3/(1+√3)]
        let lp = log_softmax(&[0.0, 3f32.ln()], 2.0);
        let s3 = 3f32.sqrt();
        assert!((lp[0] - (1.0 / (1.0 + s3)).ln()).abs() < 1e-6);
    }

    #[test]
    fn greedy_takes_first_max_and_reports_its_logprob() {
        let logits = [1.0, 5.0, 5.0, 2.0];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let params = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        let (tok, lp) = sample_token(&logits, &params, &mut rng);
        assert_eq!(tok, 1);
        assert!((lp - log_softmax(&logits, 1.0)[1]).abs() < 1e-7);
    }

    #[test]
    fn top_k_and_top_p_keep_the_right_tokens() {
        // probabilities 0.5, 0.3, 0.15, 0.05
        let logp: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
        let k2 = candidates(&logp, 2, 1.0);
        assert_eq!(k2.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!((k2[0].1 - 0.625).abs() < 1e-6); // 0.5 / 0.8
        // p = 0.7: 0.5 is not enough, 0.5 + 0.3 crosses it, so two tokens stay.
        let p7 = candidates(&logp, 0, 0.7);
        assert_eq!(p7.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1]);
        // p = 0.5 is reached by the first token alone.
        assert_eq!(candidates(&logp, 0, 0.5).len(), 1);
    }

    #[test]
    fn sampling_is_seeded_and_follows_the_distribution() {
        let logits: Vec<f32> = [0.5f32, 0.3, 0.2].iter().map(|p| p.ln()).collect();
        let params = SamplingParams::default();
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20_000)
                .map(|_| sample_token(&logits, &params, &mut rng).0)
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        let counts = draw(7).iter().fold([0usize; 3], |mut c, &t| {
            c[t as usize] += 1;
            c
        });
        // Within four standard deviations of the expected 10000/6000/4000.
        assert!((counts[0] as f64 - 10_000.0).abs() < 4.0 * 70.7);
        assert!((counts[2] as f64 - 4_000.0).abs() < 4.0 * 56.6);
    }

    /// Over a vocabulary of many blocks, the last part full, with tokens
    /// of weight 0: the blocked draw picks what one running sum over all
    /// the weights picks from the same uniform number, never a token of
    /// weight 0, and the log-probabilities sum to one.
    #[test]
    fn the_blocked_draw_picks_what_one_running_sum_picks() {
        let logits: Vec<f32> = (0..5000)
            .map(|i| match i % 7 {
                3 => f32::NEG_INFINITY,
                _ => ((i * 7919) % 1000) as f32 / 100.0 - 5.0,
            })
            .collect();
        let inv_t = 1.0 / 0.7;
        let weights = Weights::of(&logits, inv_t);
        let mut last_block = 0;
        for seed in 0..2000 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let blocked = weights.draw(&mut rng).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let plain = draw(
                weights.values.iter().enumerate().map(|(i, &w)| (i, w as f64)),
                weights.total,
                &mut rng,
            );
            assert_eq!(Some(blocked), plain, "seed {seed}");
            assert_ne!(blocked % 7, 3);
            last_block += usize::from(blocked >= 19 * BLOCK);
        }
        assert!(last_block > 0, "some draws land in the last block");
        let mass: f64 = logits.iter().map(|&x| (weights.log_prob(x, inv_t) as f64).exp()).sum();
        assert!((mass - 1.0).abs() < 1e-5, "{mass}");
    }

    #[test]
    fn top_k_one_is_greedy_whatever_the_seed() {
        let logits = [0.1, 2.0, 1.9];
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 1,
            top_p: 1.0,
        };
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            assert_eq!(sample_token(&logits, &params, &mut rng).0, 1);
        }
    }
}
