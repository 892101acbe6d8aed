//! What a PPO checkpoint holds beyond the policy, so training continues
//! exactly: the value model, both optimizers' moments, the counters, the
//! generator and the live parameters (with the KL controller's β).

use std::path::Path;

use burn::module::Module;
use serde::{Deserialize, Serialize};

use super::PpoTrainer;
use crate::model::hf;
use crate::rlhf::ppo::live::LiveParams;
use crate::rlhf::state::RngState;

/// A PPO checkpoint's value model, and its optimizers' state.
const VALUE_DIR: &str = "value";
const POLICY_OPTIMIZER: &str = "policy_optimizer.bpk";
const VALUE_OPTIMIZER: &str = "value_optimizer.bpk";

/// PPO's counters, generator and live parameters at a checkpoint, and the
/// identities its optimizers know the parameters by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PpoState {
    pub iteration: usize,
    pub episodes: usize,
    pub optimizer_steps: usize,
    pub cursor: usize,
    pub params: LiveParams,
    pub rng: RngState,
    pub policy_ids: Vec<u64>,
    pub value_ids: Vec<u64>,
}

impl PpoTrainer {
    /// Writes into a checkpoint directory (which already holds the
    /// policy) what continuing exactly needs: the value model (`value/`),
    /// both optimizers' state, and the counters, generator and live
    /// parameters, returned for the checkpoint's state file.
    pub fn save_state(&self, dir: &Path) -> anyhow::Result<PpoState> {
        let tokenizer = self
            .tokenizer()
            .ok_or_else(|| anyhow::anyhow!("a token-prompt run has no tokenizer to save"))?;
        hf::save_scalar_model(&dir.join(VALUE_DIR), &self.value.valid(), tokenizer)?;
        let policy_ids = self.policy_opt.save(&self.policy, &dir.join(POLICY_OPTIMIZER))?;
        let value_ids = self.value_opt.save(&self.value, &dir.join(VALUE_OPTIMIZER))?;
        Ok(PpoState {
            iteration: self.iteration,
            episodes: self.episodes,
            optimizer_steps: self.optimizer_steps,
            cursor: self.cursor,
            params: self.params.clone(),
            rng: RngState::of(&self.rng),
            policy_ids,
            value_ids,
        })
    }

    /// Continues from a checkpoint `save_state` wrote, this trainer having
    /// been built with the checkpoint's policy, reference and reward model.
    pub fn restore(&mut self, dir: &Path, state: &PpoState) -> anyhow::Result<()> {
        let device = self.policy.device();
        let (value, _) = hf::load_scalar_model(&dir.join(VALUE_DIR), &device, None)?;
        self.value = self
            .value_opt
            .load(value, &state.value_ids, &dir.join(VALUE_OPTIMIZER))?;
        self.policy = self
            .policy_opt
            .load(self.policy.clone(), &state.policy_ids, &dir.join(POLICY_OPTIMIZER))?;
        self.iteration = state.iteration;
        self.episodes = state.episodes;
        self.optimizer_steps = state.optimizer_steps;
        self.cursor = state.cursor;
        self.params = state.params.clone();
        self.rng = state.rng.restore()?;
        Ok(())
    }
}
