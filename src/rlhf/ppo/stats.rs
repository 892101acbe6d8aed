//! What a PPO optimizer step reports, by name, and its average over an
//! iteration's steps under TRL's metric names.

use crate::run::names;
use std::ops::{Add, Mul};

/// One minibatch's statistics (a shard's, weighted by its share of the
/// minibatch's response tokens, until the shards are added).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    pub approx_kl: f64,
    pub clip_fraction: f64,
    pub policy_loss: f64,
    pub value_loss: f64,
    pub value_clip_fraction: f64,
    pub entropy: f64,
    pub ratio: f64,
    /// The gradients' global norm over both models, before clipping.
    pub grad_norm: f64,
}

impl Add for StepStats {
    type Output = Self;

    fn add(self, o: Self) -> Self {
        Self {
            approx_kl: self.approx_kl + o.approx_kl,
            clip_fraction: self.clip_fraction + o.clip_fraction,
            policy_loss: self.policy_loss + o.policy_loss,
            value_loss: self.value_loss + o.value_loss,
            value_clip_fraction: self.value_clip_fraction + o.value_clip_fraction,
            entropy: self.entropy + o.entropy,
            ratio: self.ratio + o.ratio,
            grad_norm: self.grad_norm + o.grad_norm,
        }
    }
}

impl Mul<f64> for StepStats {
    type Output = Self;

    fn mul(self, k: f64) -> Self {
        Self {
            approx_kl: self.approx_kl * k,
            clip_fraction: self.clip_fraction * k,
            policy_loss: self.policy_loss * k,
            value_loss: self.value_loss * k,
            value_clip_fraction: self.value_clip_fraction * k,
            entropy: self.entropy * k,
            ratio: self.ratio * k,
            grad_norm: self.grad_norm * k,
        }
    }
}

impl StepStats {
    /// The mean of `steps` under TRL's names (nothing for no steps).
    pub fn averaged(steps: &[StepStats]) -> Vec<(&'static str, f64)> {
        if steps.is_empty() {
            return Vec::new();
        }
        let s = steps.iter().fold(StepStats::default(), |a, &b| a + b) * (1.0 / steps.len() as f64);
        vec![
            (names::APPROX_KL, s.approx_kl),
            (names::CLIP_FRACTION, s.clip_fraction),
            (names::POLICY_LOSS, s.policy_loss),
            (names::VALUE_LOSS, s.value_loss),
            (names::VALUE_CLIP_FRACTION, s.value_clip_fraction),
            (names::TOKEN_ENTROPY, s.entropy),
            (names::RATIO, s.ratio),
            (names::GRAD_NORM, s.grad_norm),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::StepStats;

    /// Two steps with ratios 1.0 and 1.2 and approx-KL 0.01 and 0.03
    /// average to 1.1 and 0.02; shards weighted ¾ and ¼ add to the
    /// minibatch's figure.
    #[test]
    fn averages_and_weighted_shards_by_hand() {
        let step = |ratio, approx_kl| StepStats {
            ratio,
            approx_kl,
            ..Default::default()
        };
        let averaged = StepStats::averaged(&[step(1.0, 0.01), step(1.2, 0.03)]);
        let get = |name| averaged.iter().find(|(k, _)| *k == name).unwrap().1;
        assert!((get("val/ratio") - 1.1).abs() < 1e-12);
        assert!((get("policy/approxkl_avg") - 0.02).abs() < 1e-12);
        assert_eq!(averaged.len(), 8);
        let minibatch = step(1.0, 0.04) * 0.75 + step(1.4, 0.0) * 0.25;
        assert!((minibatch.ratio - 1.1).abs() < 1e-12 && (minibatch.approx_kl - 0.03).abs() < 1e-12);
        assert!(StepStats::averaged(&[]).is_empty());
    }
}
