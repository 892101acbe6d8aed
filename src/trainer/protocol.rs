//! The messages between the workbench and the trainer thread. Only plain
//! data crosses: numbers, strings and token texts, never a tensor, so the
//! UI can hold, copy and test them freely.

use serde::{Deserialize, Serialize};

pub use crate::prefs::record::{Choice, Criterion, Verdict};
pub use crate::prefs::stats::Agreement;
pub use crate::prefs::throughput::Throughput;
pub use crate::rlhf::cai::critic::{PrincipleCount, Revised};
use crate::rlhf::data::Prompt;
pub use crate::rlhf::monitors::{Alert, AlertKind};
use crate::rlhf::ppo::kl_control::KlControl;
pub use crate::rlhf::reward_math::ReliabilityBin;
use crate::rlhf::win_rate::WinRate;

/// A training stage the trainer can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Supervised fine-tuning on the built-in world's demonstrations.
    Sft,
    /// Constitutional AI's supervised stage (SL-CAI): the policy's answers
    /// critiqued and revised against principles, and fine-tuned on.
    Cai,
    /// Reward model from the run's SFT checkpoint, on judge-labelled pairs.
    Rm,
    /// PPO from the run's SFT policy against its reward model.
    Ppo,
    /// GRPO: as PPO, without a value model, each response judged against
    /// the others sampled for its prompt.
    Grpo,
    /// RLOO: as GRPO, with the leave-one-out baseline and the KL in the reward.
    Rloo,
    /// DPO from the run's SFT policy on preference pairs: the offline
    /// path, beside the reward model and PPO.
    Dpo,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Sft,
        Stage::Cai,
        Stage::Rm,
        Stage::Ppo,
        Stage::Grpo,
        Stage::Rloo,
        Stage::Dpo,
    ];

    /// The online methods: they sample from the policy as they train,
    /// against the reward model, with the KL to the reference kept in view.
    pub fn is_online(self) -> bool {
        matches!(self, Stage::Ppo | Stage::Grpo | Stage::Rloo)
    }

    /// The alternatives to PPO that follow the reward model (GRPO, RLOO)
    /// or the supervised policy (DPO): no arrow leads to them.
    pub fn is_alternative(self) -> bool {
        matches!(self, Stage::Grpo | Stage::Rloo | Stage::Dpo)
    }

    /// The name used in metrics, checkpoints and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Sft => "sft",
            Stage::Cai => "cai",
            Stage::Rm => "rm",
            Stage::Ppo => "ppo",
            Stage::Grpo => "grpo",
            Stage::Rloo => "rloo",
            Stage::Dpo => "dpo",
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
    /// GRPO's and RLOO's K; used from the next rollout.
    GroupSize(usize),
}

impl Param {
    /// The parameter `name` (as `name` gives it) set to `value` (as
    /// `value` gives it); `None` for a name this build does not know.
    pub fn from_name(name: &str, value: f64) -> Option<Self> {
        Some(match name {
            "beta" => Param::Beta(value),
            "lr" => Param::LearningRate(value),
            "temperature" => Param::Temperature(value),
            "kl_mode" if value >= 0.5 => Param::KlMode(KlMode::Adaptive),
            "kl_mode" => Param::KlMode(KlMode::Fixed),
            "group_size" => Param::GroupSize(value as usize),
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Param::Beta(_) => "beta",
            Param::LearningRate(_) => "lr",
            Param::Temperature(_) => "temperature",
            Param::KlMode(_) => "kl_mode",
            Param::GroupSize(_) => "group_size",
        }
    }

    /// The value as a number (fixed 0, adaptive 1) for charts and the audit log.
    pub fn value(&self) -> f64 {
        match *self {
            Param::Beta(v) | Param::LearningRate(v) | Param::Temperature(v) => v,
            Param::KlMode(KlMode::Fixed) => 0.0,
            Param::KlMode(KlMode::Adaptive) => 1.0,
            Param::GroupSize(k) => k as f64,
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
            Param::GroupSize(k) if !(2..=64).contains(&k) => Err("K must be from 2 to 64".into()),
            _ => Ok(()),
        }
    }
}

/// What SL-CAI's critic did: a few responses with their critiques and
/// revisions, the counts per principle, the share of responses revised and,
/// with a judge, the share of those the judge scored above the original.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaiView {
    pub examples: Vec<Revised>,
    pub counts: Vec<PrincipleCount>,
    pub changed: f64,
    pub won: Option<f64>,
}

/// One pair of a blind evaluation as the screen shows it: the prompt and
/// two models' answers, in an order only the trainer knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalItem {
    pub prompt: String,
    pub left: String,
    pub right: String,
}

/// A blind evaluation so far: model A's win rate by the person and by the
/// judge on the same pairs (ties half a win, 95% Wilson intervals), the
/// share of pairs on which they agree, and Cohen's κ between them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalTally {
    pub person: WinRate,
    pub judge: Option<WinRate>,
    pub agreement: Option<f64>,
    pub kappa: Option<f64>,
}

/// A control of the workbench, as an external trainer (one the workbench
/// reaches through a bridge, not rlhf-tui's own) says it takes or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    Pause,
    Step,
    Stop,
    Checkpoint,
    Beta,
    LearningRate,
    Temperature,
    KlMode,
    GroupSize,
    Label,
    Samples,
    Start,
    Round,
    Eval,
}

impl Control {
    /// What the control does, for "… does not take …".
    pub fn words(self) -> &'static str {
        match self {
            Control::Pause => "pause and resume",
            Control::Step => "single steps",
            Control::Stop => "stopping",
            Control::Checkpoint => "checkpoints on request",
            Control::Beta => "β",
            Control::LearningRate => "learning-rate changes",
            Control::Temperature => "temperature changes",
            Control::KlMode => "an adaptive β",
            Control::GroupSize => "K changes",
            Control::Label => "labels",
            Control::Samples => "sample requests",
            Control::Start => "starting stages",
            Control::Round => "new rounds",
            Control::Eval => "blind evaluations",
        }
    }
}

/// A trainer the workbench is attached to through a bridge (a TRL trainer
/// with rlhf-tui's callback), and the controls it takes; the others are
/// greyed out and refused with a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct External {
    /// Its class, e.g. `GRPOTrainer`.
    pub trainer: String,
    pub controls: Vec<Control>,
}

/// What the workbench asks of the trainer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// Asks for `k` fresh responses (2 for a pair) to one prompt from the
    /// current policy; pairs streamed while PPO runs keep this `k`.
    RequestSamples {
        k: usize,
    },
    /// Records the person's judgment of the set with this id.
    Label {
        set: u64,
        verdict: Verdict,
        criterion: Criterion,
    },
    /// Retracts the person's judgment of the set with this id.
    Undo {
        set: u64,
    },
    /// Starts the next round of the iterative loop: fresh sets from the
    /// current policy to label, then a new reward model version and PPO
    /// continued against it.
    NewRound,
    /// Writes the running stage's checkpoint now.
    Checkpoint,
    /// Starts a blind evaluation: the run's newest policy against the one
    /// it started from, pairs shown without names in a drawn order.
    StartEval,
    /// The person's verdict on pair `item` of the evaluation.
    EvalVerdict {
        item: usize,
        choice: Choice,
    },
    /// Ends the thread; a running stage is checkpointed first when `checkpoint`.
    Shutdown {
        checkpoint: bool,
    },
    /// From an attached workbench: the commands after this one are `name`'s
    /// (its judgments are stored under it and the audit log names it).
    /// The server sends it when the sender changes.
    Client {
        name: String,
    },
    /// An attached workbench is leaving; the trainer goes on. Its own end
    /// of the connection acts on it, and in one process it does nothing.
    Detach,
}

/// Where a stage stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StageState {
    NotStarted,
    /// Loading models and taking the baseline evaluation.
    Starting,
    Running,
    Paused,
    /// Finished, with its checkpoint.
    Done {
        checkpoint: String,
    },
    /// Stopped before its end (a stop, a quit, a crash or a kill after a
    /// checkpoint): starting it again continues from this checkpoint.
    Stopped {
        checkpoint: String,
    },
    Failed(String),
}

/// One response with what the comparison pane colours it by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The response's tokens as text, EOS excluded.
    pub tokens: Vec<String>,
    /// Log-probability of each token under the policy that sampled it.
    pub logprobs: Vec<f32>,
    /// … and under the frozen reference (the SFT model, or the base model before SFT).
    pub ref_logprobs: Vec<f32>,
    /// The reward model's score, once there is one.
    pub reward: Option<f32>,
    /// The run's evaluator's score (the built-in world's judge), when it
    /// has one.
    pub judge: Option<f32>,
    /// The temperature it was sampled at.
    pub temperature: f32,
}

impl Response {
    pub fn text(&self) -> String {
        self.tokens.concat()
    }
}

/// K responses to one prompt (K = 2: a pair), for comparison and labeling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleSet {
    pub id: u64,
    /// The prompt as the policy read it (its chat format's text), as the
    /// judgments store it.
    pub prompt: String,
    /// The prompt as it was given, for the screen and the evaluator.
    pub asked: Prompt,
    /// The model that produced the responses, e.g. `ppo-12` or `base`.
    pub policy: String,
    pub responses: Vec<Response>,
    /// The judge's verdicts, by criterion, when the judge labelled this set
    /// (already stored as the judge's); empty when it did not.
    pub judge: Vec<(Criterion, Verdict)>,
}

/// What the trainer tells the workbench.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
        /// How many responses rank mode orders.
        rank_k: usize,
        /// The person's judgments already in the run.
        judged: usize,
    },
    /// The β and KL mode the status bar shows, sent as a stage starts (its
    /// own: DPO's β is not PPO's) and as it ends (the idle ones again); no
    /// person changed them, so no marker.
    Live {
        beta: f64,
        kl_mode: KlMode,
        /// GRPO's and RLOO's K; `None` for the other stages.
        group_size: Option<usize>,
    },
    /// The iterative loop's round and the newest reward model's version
    /// (0 before the first); sent after `Ready` and when either changes.
    Round {
        round: u32,
        rm_version: u32,
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
    Samples(SampleSet),
    /// A change from the run's audit log, for a reopened run's charts: a
    /// marker only (the parameters are the ones `Ready` gave).
    PastChange {
        stage: Option<Stage>,
        param: Param,
        old: f64,
        step: usize,
    },
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
        set: u64,
        verdict: Verdict,
    },
    /// The retraction is on disk.
    Retracted {
        set: u64,
    },
    /// Agreement between annotators over the run's judgments, per criterion.
    Agreement(Vec<Agreement>),
    /// How fast the person at the workbench labels, once timed.
    Throughput(Throughput),
    /// A blind evaluation's pairs, ready to judge: `a` and `b` are the
    /// models compared, never which side is whose.
    EvalStarted {
        a: String,
        b: String,
        items: Vec<EvalItem>,
    },
    /// The verdict on pair `item` is on disk; the figures so far.
    EvalSaved {
        item: usize,
        choice: Choice,
        tally: EvalTally,
    },
    /// The CAI stage's revisions, once made: examples and counts for the
    /// constitution pane.
    Revisions(CaiView),
    /// A monitor saw trouble (reward hacking, mode collapse, an unhealthy update).
    Alert(Alert),
    /// The trouble an alert named has passed.
    AlertCleared {
        kind: AlertKind,
        step: usize,
    },
    /// The newest reward model's reliability table (held-out pairs binned
    /// by its confidence), for the reliability chart.
    Calibration(Vec<ReliabilityBin>),
    /// The trainer is an external one (sent before `Ready`), with the
    /// controls it takes.
    External(External),
    /// Something was skipped or assumed; work goes on.
    Warning(String),
    /// What the trainer did with a request, in words: the one step `.`
    /// took, or why a checkpoint waits.
    Note(String),
    Error(String),
    /// The thread has ended; nothing follows.
    ShutDown,
}
