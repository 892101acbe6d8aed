//! Choosing the next token from one row of logits: temperature, top-k and
//! top-p filtering, greedy decoding at temperature 0, all seeded. Pure
//! functions over host slices, so they are tested without a model.
//!
//! The log-probability returned with each token is the token's under the
//! temperature-scaled distribution before top-k/top-p filtering,
//! `log softmax(logits / T)`: the quantity PPO's ratio is built from, so a
//! rollout's sampler log-probs equal what a forward pass recomputes.

use rand::Rng;

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

/// `exp(x)` to about 1e-7 relative error, in straight-line arithmetic the
/// compiler vectorises (libm's `expf` is a call per element, and sampling
/// exponentiates a whole vocabulary per token). Range reduction
/// x = k·ln2 + r with |r| ≤ ln2/2, then a degree-6 Taylor polynomial, whose
/// remainder r⁷/7! is below 1.3e-7 there.
#[inline]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75; // ln 2 split so k·LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and removing 1.5·2²³ rounds to the nearest integer with plain
    // float adds (no libm call, so the loop stays vectorised).
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.3, 88.7);
    let k = (clamped * LOG2_E + ROUND) - ROUND;
    let r = clamped - k * LN2_HI - k * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let e = p * f32::from_bits(((k as i32 + 127) as u32) << 23);
    // Below −87.3 the result is under f32's smallest normal: 0.
    if x < -87.3 { 0.0 } else { e }
}

/// Writes `exp(x/t − m)` for every logit into `out`, where m = max(x/t), and
/// returns m and the sum of the exponentials (accumulated in f64).
fn scaled_exps(logits: &[f32], inv_t: f32, out: &mut Vec<f32>) -> (f32, f64) {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) * inv_t;
    out.clear();
    out.extend(logits.iter().map(|&x| fast_exp(x * inv_t - max)));
    (max, out.iter().map(|&e| e as f64).sum())
}

/// `log softmax(logits / t)`, computed stably (max subtracted first).
pub fn log_softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let inv_t = if temperature > 0.0 { 1.0 / temperature } else { 1.0 };
    let mut exps = Vec::with_capacity(logits.len());
    let (max, sum) = scaled_exps(logits, inv_t, &mut exps);
    let log_z = max + sum.ln() as f32;
    logits.iter().map(|&x| x * inv_t - log_z).collect()
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
        // Only the chosen token's log-prob is needed, not the whole vector.
        let token = argmax(logits);
        let mut exps = Vec::with_capacity(logits.len());
        let (max, sum) = scaled_exps(logits, 1.0, &mut exps);
        return (token as u32, logits[token] - max - sum.ln() as f32);
    }
    if params.top_k == 0 && params.top_p >= 1.0 {
        // The common PPO case: one exponential per logit, then a draw over
        // the unnormalised weights; no sort.
        let inv_t = 1.0 / params.temperature;
        let mut exps = Vec::with_capacity(logits.len());
        let (max, sum) = scaled_exps(logits, inv_t, &mut exps);
        let chosen = draw(exps.iter().enumerate().map(|(i, &e)| (i, e as f64)), sum, rng).unwrap_or(argmax(logits));
        return (chosen as u32, logits[chosen] * inv_t - max - sum.ln() as f32);
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
    let target = rng.random::<f64>() * total;
    let mut acc = 0.0;
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
    fn fast_exp_is_accurate_over_the_range_that_matters() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f64 / 200_000.0;
            let got = fast_exp(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(fast_exp(0.0), 1.0);
        assert_eq!(fast_exp(-1000.0), 0.0);
    }

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
