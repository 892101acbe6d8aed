//! Baselines from a group of responses to one prompt, for the critic-free
//! methods: GRPO's group-relative advantages (the reward less the group's
//! mean, optionally over a standard deviation) and RLOO's leave-one-out
//! baseline (the mean of the other responses' rewards). Rewards come as
//! `[prompts × k]`, each prompt's k responses side by side. Pure.

use serde::{Deserialize, Serialize};

/// What GRPO divides a group's centred rewards by (TRL's `scale_rewards`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RewardScale {
    /// The group's own standard deviation (the GRPO paper; TRL's default).
    #[default]
    Group,
    /// The whole batch's standard deviation.
    Batch,
    /// Nothing: Dr. GRPO's unbiased advantages.
    None,
}

/// Added to a standard deviation before dividing by it, as TRL does.
const STD_EPS: f32 = 1e-4;

/// The mean and sample standard deviation (Bessel's correction, as
/// `torch.std`) of `xs`; the deviation of one value is 0.
pub fn mean_std(xs: &[f32]) -> (f32, f32) {
    let n = xs.len() as f32;
    let mean = xs.iter().sum::<f32>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / (n - 1.0);
    (mean, var.sqrt())
}

/// GRPO's advantages and the share of groups whose rewards were all equal
/// (TRL's `frac_reward_zero_std`: those groups teach nothing).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupAdvantages {
    pub advantages: Vec<f32>,
    pub frac_zero_std: f32,
}

/// (r − mean of its group) / (std + 1e-4) per response, the std chosen by
/// `scale`. A group whose rewards are all equal gets advantages of 0.
pub fn group_advantages(rewards: &[f32], k: usize, scale: RewardScale) -> GroupAdvantages {
    assert!(
        k > 0 && rewards.len().is_multiple_of(k),
        "{} rewards in groups of {k}",
        rewards.len()
    );
    let batch_std = mean_std(rewards).1;
    let mut zero = 0;
    let mut advantages = Vec::with_capacity(rewards.len());
    for group in rewards.chunks(k) {
        let (mean, std) = mean_std(group);
        // As `torch.isclose(std, 0)`: within 1e-8 of zero.
        zero += usize::from(std.abs() <= 1e-8);
        let divisor = match scale {
            RewardScale::Group => std + STD_EPS,
            RewardScale::Batch => batch_std + STD_EPS,
            RewardScale::None => 1.0,
        };
        advantages.extend(group.iter().map(|r| (r - mean) / divisor));
    }
    GroupAdvantages {
        advantages,
        frac_zero_std: zero as f32 / (rewards.len() / k) as f32,
    }
}

/// RLOO's advantages: each reward less the mean of the other k − 1 in its
/// group, r_i − (Σ_j r_j − r_i) / (k − 1).
pub fn leave_one_out(rewards: &[f32], k: usize) -> Vec<f32> {
    assert!(
        k > 1 && rewards.len().is_multiple_of(k),
        "{} rewards in groups of {k}",
        rewards.len()
    );
    rewards
        .chunks(k)
        .flat_map(|group| {
            let sum: f32 = group.iter().sum();
            group.iter().map(move |r| r - (sum - r) / (k - 1) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn group_advantages_by_hand() {
        // Group 1: [1, 2, 3, 6]: mean 3, sample variance (4 + 1 + 0 + 9) / 3
        // = 14/3, std 2.160247. Group 2: all 0.5: no signal.
        let rewards = [1.0, 2.0, 3.0, 6.0, 0.5, 0.5, 0.5, 0.5];
        let std = (14.0f32 / 3.0).sqrt();
        let g = group_advantages(&rewards, 4, RewardScale::Group);
        let d = std + 1e-4;
        assert!(
            close(&g.advantages, &[-2.0 / d, -1.0 / d, 0.0, 3.0 / d, 0.0, 0.0, 0.0, 0.0]),
            "{g:?}"
        );
        assert_eq!(g.frac_zero_std, 0.5);
        // Unscaled: the centred rewards themselves.
        let none = group_advantages(&rewards, 4, RewardScale::None);
        assert!(close(&none.advantages, &[-2.0, -1.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]));
        // Over the batch: mean 1.75, Σ(r − mean)² = 0.5625 + 0.0625 +
        // 1.5625 + 18.0625 + 4 · 1.5625 = 26.5, /7 = 3.785714; still centred
        // on each group's own mean.
        let batch = group_advantages(&rewards, 4, RewardScale::Batch);
        let d = (26.5f32 / 7.0).sqrt() + 1e-4;
        assert!(
            close(&batch.advantages[..4], &[-2.0 / d, -1.0 / d, 0.0, 3.0 / d]),
            "{batch:?}"
        );
        // Each group's advantages sum to zero.
        for group in g.advantages.chunks(4) {
            assert!(group.iter().sum::<f32>().abs() < 1e-5);
        }
    }

    #[test]
    fn leave_one_out_by_hand() {
        // [1, 2, 3, 6]: the others' means are 11/3, 10/3, 3, 2.
        let a = leave_one_out(&[1.0, 2.0, 3.0, 6.0, 4.0, 4.0, 4.0, 4.0], 4);
        let expected = [1.0 - 11.0 / 3.0, 2.0 - 10.0 / 3.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0];
        assert!(close(&a, &expected), "{a:?}");
        // It is k/(k−1) times the group-centred reward.
        let centred = group_advantages(&[1.0, 2.0, 3.0, 6.0], 4, RewardScale::None).advantages;
        assert!(close(
            &a[..4],
            &centred.iter().map(|c| c * 4.0 / 3.0).collect::<Vec<_>>()
        ));
        // Two responses: each against the other.
        assert!(close(&leave_one_out(&[0.2, 0.9], 2), &[-0.7, 0.7]));
    }
}
