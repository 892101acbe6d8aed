//! The `grpo` and `rloo` sections of a run config: one shape, read for
//! either method; the fields that belong to one method say so.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::advantages::RewardScale;
use super::aggregation::LossAggregation;
use crate::run::config::{at_least_one, positive};

/// Which critic-free method a trainer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupMethod {
    /// Advantages relative to the group's mean (and spread), a per-token
    /// ratio, and the KL to the reference as a loss term (k3).
    Grpo,
    /// The leave-one-out baseline, a per-sequence ratio, and the KL to the
    /// reference taken out of the reward.
    Rloo,
}

impl GroupMethod {
    pub fn name(self) -> &'static str {
        match self {
            GroupMethod::Grpo => "GRPO",
            GroupMethod::Rloo => "RLOO",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupConfig {
    /// The policy to start from (and the frozen reference); `None` takes the
    /// run's latest CAI checkpoint, else its latest SFT one.
    pub policy_init: Option<PathBuf>,
    /// The reward model; `None` takes the run's latest RM checkpoint.
    pub reward_init: Option<PathBuf>,
    /// Sample-and-update iterations. Prompts come from the run's prompt
    /// source, as PPO's do (`ppo.prompts`, else the demonstrations' or the
    /// built-in world's).
    pub iterations: usize,
    /// Prompts drawn per iteration; each is answered `group_size` times.
    pub prompts_per_iteration: usize,
    /// K, the responses sampled per prompt (TRL's `num_generations`);
    /// at least 2, or no response has a group to be judged against.
    pub group_size: usize,
    /// Responses per optimizer step.
    pub minibatch_size: usize,
    /// Passes over each batch (TRL's `num_iterations`).
    pub epochs: usize,
    /// Longest response sampled.
    pub max_new_tokens: usize,
    /// Sampling temperature; log-probs are taken at the same temperature.
    pub temperature: f32,
    /// Learning rate (constant; the workbench can change it live).
    pub lr: f64,
    /// KL coefficient β. `None`: 0 for GRPO (TRL's default: no reference
    /// term, the clip alone holds the policy near its start) and 0.05 for
    /// RLOO (TRL's).
    pub beta: Option<f64>,
    /// ε of the clipped ratio, below (and above, unless `epsilon_high`).
    pub epsilon: f64,
    /// DAPO's "clip higher": a larger upper ε. GRPO only.
    pub epsilon_high: Option<f64>,
    /// How GRPO's per-token losses become one (TRL's `loss_type`).
    pub loss_type: LossAggregation,
    /// What GRPO divides a group's centred rewards by (TRL's `scale_rewards`).
    pub scale_rewards: RewardScale,
    /// RLOO only: whiten the advantages over the batch.
    pub normalize_advantages: bool,
    /// Subtracted from the score of a response that never produced EOS.
    pub missing_eos_penalty: Option<f32>,
    /// The gradients are rescaled to at most this global norm.
    pub max_grad_norm: f32,
    /// As PPO's: on a loss or gradient that is not finite, also undo the
    /// update before it.
    pub undo_last_update: bool,
    pub seed: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            policy_init: None,
            reward_init: None,
            iterations: 40,
            prompts_per_iteration: 8,
            group_size: 4,
            minibatch_size: 8,
            epochs: 2,
            max_new_tokens: 48,
            temperature: 1.0,
            lr: 3e-5,
            beta: None,
            epsilon: 0.2,
            epsilon_high: None,
            loss_type: LossAggregation::default(),
            scale_rewards: RewardScale::default(),
            normalize_advantages: false,
            missing_eos_penalty: Some(1.0),
            max_grad_norm: 1.0,
            undo_last_update: true,
            seed: 0,
        }
    }
}

impl GroupConfig {
    /// Responses sampled per iteration (at the config's K).
    pub fn batch_size(&self) -> usize {
        self.prompts_per_iteration * self.group_size
    }

    /// β as the method reads it.
    pub fn beta_for(&self, method: GroupMethod) -> f64 {
        self.beta.unwrap_or(match method {
            GroupMethod::Grpo => 0.0,
            GroupMethod::Rloo => 0.05,
        })
    }

    /// Optimizer steps an iteration takes at K `group_size` (live, so
    /// possibly not the config's); a minibatch is never more than the batch.
    pub fn steps_per_iteration(&self, group_size: usize) -> usize {
        let batch = self.prompts_per_iteration * group_size;
        self.epochs * batch.div_ceil(self.minibatch_size.min(batch))
    }

    pub fn validate(&self) -> Result<(), String> {
        at_least_one(&[
            ("iterations", self.iterations),
            ("prompts_per_iteration", self.prompts_per_iteration),
            ("minibatch_size", self.minibatch_size),
            ("epochs", self.epochs),
            ("max_new_tokens", self.max_new_tokens),
        ])?;
        if self.group_size < 2 {
            return Err(format!(
                "group_size: {} leaves a response nothing to be judged against; give at least 2",
                self.group_size
            ));
        }
        if self.minibatch_size > self.batch_size() {
            return Err(format!(
                "minibatch_size: {} is more than the {} responses an iteration samples (prompts_per_iteration × group_size)",
                self.minibatch_size,
                self.batch_size()
            ));
        }
        positive(
            &[
                ("lr", self.lr),
                ("temperature", self.temperature as f64),
                ("epsilon", self.epsilon),
                ("epsilon_high", self.epsilon_high.unwrap_or(self.epsilon)),
                ("max_grad_norm", self.max_grad_norm as f64),
            ],
            false,
        )?;
        positive(&[("beta", self.beta.unwrap_or(0.0))], true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_defaults_and_sizes() {
        let config = GroupConfig::default();
        assert_eq!(config.beta_for(GroupMethod::Grpo), 0.0);
        assert_eq!(config.beta_for(GroupMethod::Rloo), 0.05);
        // 8 prompts × 4 = 32 responses, minibatches of 8, 2 passes: 8 steps.
        assert_eq!(config.steps_per_iteration(4), 8);
        // K 2 live: 16 responses, 2 minibatches, 2 passes.
        assert_eq!(config.steps_per_iteration(2), 4);
        let one = GroupConfig {
            group_size: 1,
            ..GroupConfig::default()
        };
        assert!(one.validate().unwrap_err().starts_with("group_size"));
    }
}
