//! The `ppo` section of a run config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::advantage::KlEstimator;
use crate::run::config::{at_least_one, positive};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// The policy to start from (and the frozen reference); `None` takes the
    /// run's latest CAI checkpoint, else its latest SFT one.
    pub policy_init: Option<PathBuf>,
    /// The reward model (also the value model's start); `None` takes the
    /// run's latest RM checkpoint.
    pub reward_init: Option<PathBuf>,
    /// A prompts file (JSON Lines `{"prompt"}` or `{"messages"}`, or text
    /// with one question a line). `None`: the demonstrations' prompts when
    /// `sft.data` names a file, else the built-in world's.
    pub prompts: Option<PathBuf>,
    /// With `prompts`: the share held out for the evaluator's report (a
    /// seeded draw).
    pub eval_fraction: f64,
    /// Rollout-and-update iterations.
    pub iterations: usize,
    /// Episodes (prompts, one response each) per iteration.
    pub batch_size: usize,
    /// Episodes per optimizer step.
    pub minibatch_size: usize,
    /// Passes over each batch.
    pub ppo_epochs: usize,
    /// Longest response sampled.
    pub max_new_tokens: usize,
    /// Sampling temperature; log-probs are taken at the same temperature.
    pub temperature: f32,
    /// Learning rate of policy and value model (constant; the workbench can change it live).
    pub lr: f64,
    /// KL coefficient β: the initial value when adaptive.
    pub beta: f64,
    /// Adapt β towards `kl_target` (Ziegler et al.) instead of keeping it fixed.
    pub adaptive_kl: bool,
    /// Target KL per response for the adaptive controller, in nats.
    pub kl_target: f64,
    /// Horizon of the adaptive controller, in episodes.
    pub kl_horizon: f64,
    pub kl_estimator: KlEstimator,
    /// ε of the clipped policy objective.
    pub cliprange: f64,
    /// Clip of the value loss around the rollout's values.
    pub cliprange_value: f64,
    /// Weight of the value loss.
    pub vf_coef: f64,
    /// Discount γ.
    pub gamma: f32,
    /// GAE's λ.
    pub lam: f32,
    /// Normalise the shaped rewards across the batch before GAE.
    pub whiten_rewards: bool,
    /// Subtracted from the score of a response that never produced EOS.
    pub missing_eos_penalty: Option<f32>,
    /// The gradients are rescaled to at most this global norm over every
    /// parameter, as TRL clips them.
    pub max_grad_norm: f32,
    /// When a step's loss or gradients are not finite, also undo the
    /// update before it (a learning rate far too high gives a finite loss
    /// once and a NaN the step after). The weights before are computed
    /// from the moments, with no copy kept (at a learning rate above 1 the
    /// update keeps one). `false` only refuses the bad update.
    pub undo_last_update: bool,
    pub seed: u64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            policy_init: None,
            prompts: None,
            eval_fraction: 0.1,
            reward_init: None,
            iterations: 40,
            batch_size: 32,
            minibatch_size: 8,
            ppo_epochs: 4,
            max_new_tokens: 48,
            temperature: 1.0,
            lr: 3e-5,
            beta: 0.05,
            adaptive_kl: false,
            kl_target: 6.0,
            kl_horizon: 10_000.0,
            kl_estimator: KlEstimator::K1,
            cliprange: 0.2,
            cliprange_value: 0.2,
            vf_coef: 0.1,
            gamma: 1.0,
            lam: 0.95,
            whiten_rewards: false,
            missing_eos_penalty: Some(1.0),
            max_grad_norm: 1.0,
            undo_last_update: true,
            seed: 0,
        }
    }
}

impl PpoConfig {
    /// Optimizer steps an iteration takes: `ppo_epochs` passes over the
    /// batch's minibatches.
    pub fn steps_per_iteration(&self) -> usize {
        self.ppo_epochs * self.batch_size.div_ceil(self.minibatch_size)
    }

    pub fn validate(&self) -> Result<(), String> {
        at_least_one(&[
            ("iterations", self.iterations),
            ("batch_size", self.batch_size),
            ("minibatch_size", self.minibatch_size),
            ("ppo_epochs", self.ppo_epochs),
            ("max_new_tokens", self.max_new_tokens),
        ])?;
        crate::run::config::fraction("eval_fraction", self.eval_fraction)?;
        if self.minibatch_size > self.batch_size {
            return Err(format!(
                "minibatch_size: {} is more than batch_size {}",
                self.minibatch_size, self.batch_size
            ));
        }
        positive(
            &[
                ("lr", self.lr),
                ("temperature", self.temperature as f64),
                ("cliprange", self.cliprange),
                ("cliprange_value", self.cliprange_value),
                ("max_grad_norm", self.max_grad_norm as f64),
            ],
            false,
        )?;
        positive(&[("beta", self.beta), ("vf_coef", self.vf_coef)], true)
    }
}

#[cfg(test)]
mod tests {
    use super::PpoConfig;

    /// 4 epochs over 32 episodes in minibatches of 8: 16 steps; 2 epochs
    /// over 5 in minibatches of 2 (the last of one): 6.
    #[test]
    fn steps_per_iteration_by_hand() {
        let config = |batch_size, minibatch_size, ppo_epochs| PpoConfig {
            batch_size,
            minibatch_size,
            ppo_epochs,
            ..PpoConfig::default()
        };
        assert_eq!(config(32, 8, 4).steps_per_iteration(), 16);
        assert_eq!(config(5, 2, 2).steps_per_iteration(), 6);
    }
}
