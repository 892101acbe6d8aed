//! The messages between the workbench and the trainer thread. Only plain
//! data crosses: numbers, strings and token texts, never a tensor, so the
//! UI can hold, copy and test them freely.

use serde::{Deserialize, Serialize};

use crate::rlhf::ppo::kl_control::KlControl;

/// A training stage the trainer can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Supervised fine-tuning on the built-in world's demonstrations.
    Sft,
    /// Reward model from the run's SFT checkpoint, on judge-labelled pairs.
    Rm,
    /// PPO from the run's SFT policy against its reward model.
    Ppo,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Sft, Stage::Rm, Stage::Ppo];

    /// The name used in metrics, checkpoints and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Sft => "sft",
            Stage::Rm => "rm",
            Stage::Ppo => "ppo",
        }
    }
}

/// How β follows the KL: held where it is, or adapted towards a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlMode {
    Fixed,
    Adaptive,
}

impl KlMode {
    pub fn of(kl: &KlControl) -> Self {
        match kl {
            KlControl::Fixed { .. } => KlMode::Fixed,
            KlControl::Adaptive { .. } => KlMode::Adaptive,
        }
    }
}

/// A parameter the person may change while a stage runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Param {
    /// PPO's KL coefficient; used from the next rollout.
    Beta(f64),
    /// The running stage's (peak) learning rate; used from the next optimizer step.
    LearningRate(f64),
    /// Sampling temperature of rollouts and samples; used from the next rollout.
    Temperature(f64),
    KlMode(KlMode),
}

impl Param {
    pub fn name(&self) -> &'static str {
        match self {
            Param::Beta(_) => "beta",
            Param::LearningRate(_) => "lr",
            Param::Temperature(_) => "temperature",
            Param::KlMode(_) => "kl_mode",
        }
    }

    /// The value as a number (fixed 0, adaptive 1) for charts and the audit log.
    pub fn value(&self) -> f64 {
        match *self {
            Param::Beta(v) | Param::LearningRate(v) | Param::Temperature(v) => v,
            Param::KlMode(KlMode::Fixed) => 0.0,
            Param::KlMode(KlMode::Adaptive) => 1.0,
        }
    }

    /// Why the value cannot be used, if it cannot (the editor shows this).
    pub fn check(&self) -> Result<(), String> {
        match *self {
            Param::Beta(v) if !(v.is_finite() && v >= 0.0) => Err("β must be a number ≥ 0".into()),
            Param::LearningRate(v) if !(v.is_finite() && v > 0.0 && v <= 1.0) => {
                Err("the learning rate must be in (0, 1]".into())
            }
            Param::Temperature(v) if !(v.is_finite() && v > 0.0 && v <= 10.0) => {
                Err("the temperature must be in (0, 10]".into())
            }
            _ => Ok(()),
        }
    }
}

/// A person's judgment of a pair of responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    Left,
    Right,
    Tie,
    BothBad,
    Skip,
}

/// What the workbench asks of the trainer.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Starts a stage from the run's config and checkpoints.
    Start(Stage),
    /// Holds the running stage at its next optimizer step.
    Pause,
    Resume,
    /// While paused: takes one optimizer step (SFT, RM) or runs to the next
    /// optimizer step (PPO), then holds again.
    StepOnce,
    /// Ends the running stage, writing its checkpoint.
    Stop,
    Set(Param),
    /// Asks for a fresh pair of responses to one prompt from the current policy.
    RequestSamples,
    /// Records a judgment of the pair with this id.
    Label {
        pair: u64,
        choice: Choice,
    },
    /// Retracts the judgment of the pair with this id.
    Undo {
        pair: u64,
    },
    /// Writes the running stage's checkpoint now.
    Checkpoint,
    /// Ends the thread; a running stage is checkpointed first when `checkpoint`.
    Shutdown {
        checkpoint: bool,
    },
}

/// Where a stage stands.
#[derive(Clone, Debug, PartialEq)]
pub enum StageState {
    NotStarted,
    /// Loading models and taking the baseline evaluation.
    Starting,
    Running,
    Paused,
    /// Finished or stopped, with its checkpoint.
    Done {
        checkpoint: String,
    },
    Failed(String),
}

/// One response with what the comparison pane colours it by.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The response's tokens as text, EOS excluded.
    pub tokens: Vec<String>,
    /// Log-probability of each token under the policy that sampled it.
    pub logprobs: Vec<f32>,
    /// … and under the frozen reference (the SFT model, or the base model before SFT).
    pub ref_logprobs: Vec<f32>,
    /// The reward model's score, once there is one.
    pub reward: Option<f32>,
    /// The built-in world's judge score.
    pub judge: f32,
}

impl Response {
    pub fn text(&self) -> String {
        self.tokens.concat()
    }
}

/// Two responses to one prompt, for comparison and labeling.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplePair {
    pub id: u64,
    pub prompt: String,
    /// The model that produced the responses, e.g. `ppo-12` or `base`.
    pub policy: String,
    pub left: Response,
    pub right: Response,
}

/// What the trainer tells the workbench.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Sent once at start: where the trainer runs and what the run holds.
    Ready {
        device: String,
        run: String,
        base: String,
        stages: Vec<(Stage, StageState)>,
        beta: f64,
        lr: f64,
        temperature: f64,
        kl_mode: KlMode,
    },
    /// A stage's state changed; `step` of `total` steps done.
    Stage {
        stage: Stage,
        state: StageState,
        step: usize,
        total: usize,
    },
    /// One step's metrics (an optimizer step for SFT and RM, an iteration for PPO).
    Metrics {
        stage: Stage,
        step: usize,
        values: Vec<(String, f64)>,
    },
    Samples(SamplePair),
    ParamChanged {
        param: Param,
        old: f64,
        step: usize,
    },
    Checkpoint {
        stage: Stage,
        step: usize,
        path: String,
    },
    /// The judgment is on disk (flushed); the screen may confirm it.
    LabelSaved {
        pair: u64,
        choice: Choice,
    },
    /// The retraction is on disk.
    Retracted {
        pair: u64,
    },
    Error(String),
    /// The thread has ended; nothing follows.
    ShutDown,
}
