//! From a rollout to advantages, on the host: masked statistics, the
//! per-token KL estimate, KL-shaped rewards with the score at the last
//! response token, and generalised advantage estimation. Batches are
//! `[b, t]` row-major slices with a mask that is 1 on response tokens.

/// Σ mask·x / Σ mask; 0 when the mask is all zero.
pub fn masked_mean(values: &[f32], mask: &[f32]) -> f32 {
    let n: f32 = mask.iter().sum();
    if n == 0.0 {
        return 0.0;
    }
    values.iter().zip(mask).map(|(v, m)| v * m).sum::<f32>() / n
}

/// Masked variance, with Bessel's correction as TRL applies it (n / (n−1)).
pub fn masked_var(values: &[f32], mask: &[f32]) -> f32 {
    let n: f32 = mask.iter().sum();
    if n < 2.0 {
        return 0.0;
    }
    let mean = masked_mean(values, mask);
    let var = values
        .iter()
        .zip(mask)
        .map(|(v, m)| m * (v - mean) * (v - mean))
        .sum::<f32>()
        / n;
    var * n / (n - 1.0)
}

/// (x − mean) / sqrt(var + 1e-8) over the masked entries; with
/// `shift_mean = false` the mean is added back (rewards keep their sign).
/// With an all-zero mask there is nothing to normalise by and the values
/// come back unchanged.
pub fn masked_whiten(values: &[f32], mask: &[f32], shift_mean: bool) -> Vec<f32> {
    if mask.iter().sum::<f32>() == 0.0 {
        return values.to_vec();
    }
    let mean = masked_mean(values, mask);
    let scale = 1.0 / (masked_var(values, mask) + 1e-8).sqrt();
    values
        .iter()
        .map(|v| {
            if shift_mean {
                (v - mean) * scale
            } else {
                (v - mean) * scale + mean
            }
        })
        .collect()
}

/// Which per-token estimate of KL(π ‖ π_ref) from one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KlEstimator {
    /// log π − log π_ref: unbiased, can be negative per token.
    K1,
    /// (r − 1) − log r with r = π_ref / π: unbiased and never negative.
    K3,
}

pub fn kl_estimate(logp: f32, ref_logp: f32, estimator: KlEstimator) -> f32 {
    let log_ratio = logp - ref_logp;
    match estimator {
        KlEstimator::K1 => log_ratio,
        KlEstimator::K3 => (-log_ratio).exp() - 1.0 + log_ratio,
    }
}

/// One row's rewards: −β·KL at every response token, plus the reward
/// model's score at the last response token.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapedRow {
    /// Per token, 0 outside the mask.
    pub rewards: Vec<f32>,
    /// Per-token KL estimates, 0 outside the mask.
    pub kl: Vec<f32>,
    /// The score after the missing-EOS penalty.
    pub score: f32,
}

/// Shapes one row. `missing_eos_penalty` is subtracted from the score of a
/// response that ran out of tokens without ending (TRL's
/// `missing_eos_penalty`), so length is not a free way to win.
#[allow(clippy::too_many_arguments)]
pub fn shaped_rewards(
    score: f32,
    logp: &[f32],
    ref_logp: &[f32],
    mask: &[f32],
    beta: f32,
    estimator: KlEstimator,
    ended_with_eos: bool,
    missing_eos_penalty: Option<f32>,
) -> ShapedRow {
    let kl: Vec<f32> = logp
        .iter()
        .zip(ref_logp)
        .zip(mask)
        .map(|((&p, &r), &m)| m * kl_estimate(p, r, estimator))
        .collect();
    let mut rewards: Vec<f32> = kl.iter().map(|k| -beta * k).collect();
    let score = match missing_eos_penalty {
        Some(penalty) if !ended_with_eos => score - penalty,
        _ => score,
    };
    if let Some(last) = mask.iter().rposition(|&m| m > 0.0) {
        rewards[last] += score;
    }
    ShapedRow { rewards, kl, score }
}

/// Generalised advantage estimation over one row: δ_t = r_t + γ·V_{t+1} − V_t
/// and A_t = δ_t + γλ·A_{t+1}, running back from the last response token
/// (V after it is 0: the episode ends). Returns (advantages, returns =
/// advantages + values), 0 outside the mask.
pub fn gae(rewards: &[f32], values: &[f32], mask: &[f32], gamma: f32, lambda: f32) -> (Vec<f32>, Vec<f32>) {
    let t = rewards.len();
    let mut advantages = vec![0.0; t];
    let mut next_value = 0.0;
    let mut next_advantage = 0.0;
    for i in (0..t).rev() {
        if mask[i] == 0.0 {
            continue;
        }
        let delta = rewards[i] + gamma * next_value - values[i];
        advantages[i] = delta + gamma * lambda * next_advantage;
        next_value = values[i];
        next_advantage = advantages[i];
    }
    let returns = advantages
        .iter()
        .zip(values)
        .zip(mask)
        .map(|((a, v), m)| m * (a + v))
        .collect();
    (advantages, returns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) {
        crate::testutil::assert_close("values", a, b, 1e-5);
    }

    #[test]
    fn masked_statistics_by_hand() {
        // Masked entries 1, 3 (the 100 is outside): mean 2, var (1 + 1)/1 = 2 with Bessel.
        assert_eq!(masked_mean(&[1.0, 100.0, 3.0], &[1.0, 0.0, 1.0]), 2.0);
        assert_eq!(masked_var(&[1.0, 100.0, 3.0], &[1.0, 0.0, 1.0]), 2.0);
        let w = masked_whiten(&[1.0, 100.0, 3.0], &[1.0, 0.0, 1.0], true);
        let s = 2f32.sqrt();
        assert!((w[0] + 1.0 / s).abs() < 1e-5 && (w[2] - 1.0 / s).abs() < 1e-5);
        let kept = masked_whiten(&[1.0, 100.0, 3.0], &[1.0, 0.0, 1.0], false);
        assert!((kept[0] - (2.0 - 1.0 / s)).abs() < 1e-5);
    }

    #[test]
    fn an_all_zero_mask_is_harmless() {
        let zero = [0.0, 0.0, 0.0];
        assert_eq!(masked_mean(&[1.0, 2.0, 3.0], &zero), 0.0);
        assert_eq!(masked_var(&[1.0, 2.0, 3.0], &zero), 0.0);
        assert_eq!(masked_whiten(&[1.0, 2.0, 3.0], &zero, true), vec![1.0, 2.0, 3.0]);
        let (a, r) = gae(&[1.0, 1.0, 1.0], &[0.5, 0.5, 0.5], &zero, 1.0, 1.0);
        assert_eq!((a, r), (vec![0.0; 3], vec![0.0; 3]));
        let shaped = shaped_rewards(2.0, &[-1.0; 3], &[-2.0; 3], &zero, 0.1, KlEstimator::K1, true, None);
        assert_eq!(shaped.rewards, vec![0.0; 3]);
    }

    #[test]
    fn k1_and_k3_by_hand() {
        // log π = −1, log π_ref = −2: k1 = 1; k3 = e⁻¹ − 1 + 1 = 0.3678794.
        assert_eq!(kl_estimate(-1.0, -2.0, KlEstimator::K1), 1.0);
        assert!((kl_estimate(-1.0, -2.0, KlEstimator::K3) - 0.367_879_4).abs() < 1e-6);
        // The other way round k1 is negative, k3 is e − 1 − 1 = 0.7182818.
        assert_eq!(kl_estimate(-2.0, -1.0, KlEstimator::K1), -1.0);
        assert!((kl_estimate(-2.0, -1.0, KlEstimator::K3) - 0.718_281_8).abs() < 1e-6);
        assert_eq!(kl_estimate(-1.5, -1.5, KlEstimator::K3), 0.0);
    }

    #[test]
    fn shaped_rewards_put_the_score_on_the_last_response_token() {
        // Prompt position masked out, three response tokens, one pad.
        let mask = [0.0, 1.0, 1.0, 1.0, 0.0];
        let logp = [0.0, -1.0, -1.0, -1.0, 0.0];
        let ref_logp = [0.0, -2.0, -1.0, -0.5, 0.0];
        let row = shaped_rewards(3.0, &logp, &ref_logp, &mask, 0.1, KlEstimator::K1, true, Some(1.0));
        close(&row.kl, &[0.0, 1.0, 0.0, -0.5, 0.0]);
        close(&row.rewards, &[0.0, -0.1, 0.0, 0.05 + 3.0, 0.0]);
        // Without EOS the penalty comes off the score.
        let row = shaped_rewards(3.0, &logp, &ref_logp, &mask, 0.1, KlEstimator::K1, false, Some(1.0));
        assert_eq!(row.score, 2.0);
        close(&row.rewards, &[0.0, -0.1, 0.0, 0.05 + 2.0, 0.0]);
    }

    #[test]
    fn gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value() {
        let rewards = [0.5, -1.0, 2.0, 0.0];
        let values = [1.0, 0.5, 0.25, 9.0];
        let mask = [1.0, 1.0, 1.0, 0.0];
        let (adv, ret) = gae(&rewards, &values, &mask, 1.0, 1.0);
        // Reward-to-go: 1.5, 1.0, 2.0.
        close(&adv, &[1.5 - 1.0, 1.0 - 0.5, 2.0 - 0.25, 0.0]);
        close(&ret, &[1.5, 1.0, 2.0, 0.0]);
    }

    #[test]
    fn gae_discounts_by_hand() {
        // γ = 0.5, λ = 0.5, two tokens, V = 0: δ = r; A_1 = 2, A_0 = 1 + 0.25·2.
        let (adv, _) = gae(&[1.0, 2.0], &[0.0, 0.0], &[1.0, 1.0], 0.5, 0.5);
        close(&adv, &[1.5, 2.0]);
        // With values: δ_1 = 2 − 1, δ_0 = 1 + 0.5·1 − 0.5 = 1, A_0 = 1 + 0.25·1.
        let (adv, _) = gae(&[1.0, 2.0], &[0.5, 1.0], &[1.0, 1.0], 0.5, 0.5);
        close(&adv, &[1.25, 1.0]);
    }
}
