//! The parameters a person may change while an online run goes on:
//! learning rate, sampling temperature, the KL coefficient's controller
//! and (GRPO, RLOO) the group size. The
//! trainer hands them to a steering callback before every optimizer step
//! and before every rollout, so a change takes effect at the next point
//! the parameter is used: the learning rate at the next optimizer step,
//! β and the temperature at the next rollout (a batch keeps the
//! temperature it was sampled at, or its importance ratios would mix two
//! distributions).

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use super::config::PpoConfig;
use super::kl_control::KlControl;
use crate::model::{CausalLm, ScalarModel, Tokenizer};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveParams {
    pub lr: f64,
    pub temperature: f32,
    pub kl: KlControl,
    /// GRPO's and RLOO's K, the responses sampled per prompt (used from
    /// the next rollout); `None` for the other stages.
    #[serde(default)]
    pub group_size: Option<usize>,
}

impl LiveParams {
    pub fn from_config(config: &PpoConfig) -> Self {
        let kl = if config.adaptive_kl {
            KlControl::Adaptive {
                beta: config.beta,
                target: config.kl_target,
                horizon: config.kl_horizon,
            }
        } else {
            KlControl::Fixed { beta: config.beta }
        };
        Self {
            lr: config.lr,
            temperature: config.temperature,
            kl,
            group_size: None,
        }
    }
}

/// Where in an iteration the trainer is when it calls the steering callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepPoint {
    /// About to sample the iteration's batch (iterations count from 0).
    Rollout { iteration: usize },
    /// About to take an optimizer step (counted over the whole run from 0).
    Optimizer { iteration: usize, step: usize },
}

/// The models as they stand at a step point, for what the steering side
/// does while it holds the run there (the workbench draws pairs from the
/// policy while paused part way through an iteration).
pub struct Models<'a> {
    /// The policy being trained (on the autodiff device: `valid()` for inference).
    pub policy: &'a CausalLm,
    pub reference: &'a CausalLm,
    pub reward: &'a ScalarModel,
    pub tokenizer: Option<&'a Tokenizer>,
    /// Optimizer steps in each iteration, to say where a step falls in it.
    pub steps_per_iteration: usize,
}

/// Called with the live parameters at every [`StepPoint`]; may change them,
/// and may stop the iteration there (`Break`: the workbench's stop and quit
/// need not wait for a whole batch of epochs).
pub type Steer<'a> = dyn FnMut(&mut LiveParams, StepPoint, &Models) -> ControlFlow<()> + 'a;
