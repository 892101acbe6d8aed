//! The `prefs` section of a run config: how the labeling queue draws
//! responses and how much of it the judge labels.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrefsConfig {
    /// Responses rank mode asks to order, 2 to 9 (one digit key each).
    pub rank_k: usize,
    /// The share of the queue the judge labels too (RLAIF), stored as the
    /// judge's: 0 none, 1 all. Where a person labels the same set, the
    /// person's judgment is the one trained on and the two are compared.
    pub judge_fraction: f64,
    /// The responses of one set are sampled at temperatures spread evenly
    /// over the live temperature × (1 ± this), so they differ from one another.
    pub temperature_spread: f32,
    /// Prompts to label responses to (the formats `ppo.prompts` takes).
    /// `None`: PPO's training prompts.
    pub prompts: Option<PathBuf>,
}

impl Default for PrefsConfig {
    fn default() -> Self {
        Self {
            rank_k: 4,
            judge_fraction: 0.5,
            temperature_spread: 0.3,
            prompts: None,
        }
    }
}

impl PrefsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=9).contains(&self.rank_k) {
            return Err(format!("rank_k: must be 2 to 9, got {}", self.rank_k));
        }
        if !(0.0..=1.0).contains(&self.judge_fraction) {
            return Err(format!("judge_fraction: must be 0 to 1, got {}", self.judge_fraction));
        }
        if !(0.0..1.0).contains(&self.temperature_spread) {
            return Err(format!(
                "temperature_spread: must be at least 0 and below 1, got {}",
                self.temperature_spread
            ));
        }
        Ok(())
    }

    /// The temperature of each of `k` responses around `temperature`.
    pub fn temperatures(&self, k: usize, temperature: f32) -> Vec<f32> {
        let s = self.temperature_spread;
        (0..k)
            .map(|i| {
                let at = if k == 1 { 0.5 } else { i as f32 / (k - 1) as f32 };
                temperature * (1.0 - s + 2.0 * s * at)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperatures_spread_evenly_around_the_live_one() {
        let config = PrefsConfig::default();
        let t = config.temperatures(3, 1.0);
        assert!((t[0] - 0.7).abs() < 1e-6 && (t[1] - 1.0).abs() < 1e-6 && (t[2] - 1.3).abs() < 1e-6);
        assert_eq!(config.temperatures(1, 0.5), [0.5]);
        assert!(
            PrefsConfig {
                rank_k: 10,
                ..config.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            PrefsConfig {
                judge_fraction: 1.5,
                ..config
            }
            .validate()
            .is_err()
        );
    }
}
