//! The workbench's state: plain data, changed only by `update.rs` and read
//! by the views. Nothing here touches the terminal, the clock or a thread.

use std::collections::{BTreeMap, VecDeque};

use super::history::History;
use crate::run::names;
use crate::trainer::protocol::{
    Agreement, Alert, CaiView, Choice, Control, Criterion, EvalItem, EvalTally, External, KlMode, ReliabilityBin,
    SampleSet, Stage, StageState, Throughput, Verdict,
};

/// The panes `Tab` moves between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Stages,
    Charts,
    Compare,
}

impl Pane {
    pub const ORDER: [Pane; 3] = [Pane::Stages, Pane::Charts, Pane::Compare];
}

/// A row of the stage selector: Base, then the three training stages.
#[derive(Clone, Debug, PartialEq)]
pub struct StageRow {
    /// `None` for the base model.
    pub stage: Option<Stage>,
    pub state: StageState,
    pub step: usize,
    pub total: usize,
}

impl StageRow {
    /// Whether a running stage has taken all its steps and is in its end
    /// (its held-out evaluation and checkpoint), which takes no steps.
    pub fn finishing(&self) -> bool {
        self.state == StageState::Running && self.total > 0 && self.step >= self.total
    }
}

/// One chart: a title, what its y axis counts, and the series it draws,
/// as (stage, metric) keys.
pub struct ChartSpec {
    pub title: &'static str,
    pub unit: &'static str,
    pub series: &'static [(Stage, &'static str)],
    /// A held-out figure drawn across the chart as the level to beat:
    /// (legend, stage, metric), its newest value.
    pub level: Option<(&'static str, Stage, &'static str)>,
    /// Offered only once it has something to draw: a figure only some runs
    /// have (a judge's, a probe's) gets no empty chart in the others.
    pub optional: bool,
    /// Drawn against another figure instead of the step.
    pub against: Option<Against>,
}

/// A chart of one figure against another: each point is a step at which
/// the stage logged both.
pub struct Against {
    /// What the x axis counts.
    pub x_unit: &'static str,
    /// (stage, x metric, y metric) of each series.
    pub series: &'static [(Stage, &'static str, &'static str)],
}

impl ChartSpec {
    /// The (stage, metric) keys of the figures the chart draws.
    pub fn y_keys(&self) -> Vec<(Stage, &'static str)> {
        let against = self
            .against
            .iter()
            .flat_map(|a| a.series.iter().map(|&(s, _, y)| (s, y)));
        self.series.iter().copied().chain(against).collect()
    }
}

/// The chart drawn from the reward model's reliability table rather than
/// from step series.
pub const RELIABILITY: &str = "RM reliability";

/// The chart of the run's evaluator, offered once it has scored something.
pub const EVALUATOR_CHART: &str = "judge score";

/// The charts the charts pane cycles through.
pub const CHARTS: [ChartSpec; 17] = [
    ChartSpec {
        title: "reward",
        unit: "reward model score (unbounded)",
        series: &[
            (Stage::Ppo, names::SCORES),
            (Stage::Ppo, names::RLHF_REWARD),
            (Stage::Grpo, names::REWARD),
            (Stage::Rloo, names::REWARD),
        ],
        level: None,
        optional: false,
        against: None,
    },
    ChartSpec {
        title: "KL",
        unit: "nats per response",
        series: &[
            (Stage::Ppo, names::KL),
            (Stage::Grpo, names::KL),
            (Stage::Rloo, names::KL),
        ],
        level: None,
        optional: false,
        against: None,
    },
    ChartSpec {
        title: "policy and value loss",
        unit: "loss",
        series: &[
            (Stage::Ppo, names::POLICY_LOSS),
            (Stage::Ppo, names::VALUE_LOSS),
            (Stage::Grpo, names::LOSS),
            (Stage::Rloo, names::LOSS),
        ],
        level: None,
        optional: false,
        against: None,
    },
    ChartSpec {
        title: "entropy",
        unit: "nats per token",
        series: &[
            (Stage::Ppo, names::TOKEN_ENTROPY),
            (Stage::Sft, names::ENTROPY),
            (Stage::Grpo, names::ENTROPY),
            (Stage::Rloo, names::ENTROPY),
        ],
        level: None,
        optional: false,
        against: None,
    },
    ChartSpec {
        title: "diversity and length",
        unit: "distinct share · length in tokens",
        series: &[
            (Stage::Ppo, names::DISTINCT_1),
            (Stage::Ppo, names::DISTINCT_2),
            (Stage::Ppo, names::LENGTH_MEAN),
            (Stage::Grpo, names::DISTINCT_2),
            (Stage::Rloo, names::DISTINCT_2),
        ],
        level: None,
        optional: false,
        against: None,
    },
    ChartSpec {
        title: "clip fraction",
        unit: "share of tokens",
        series: &[
            (Stage::Ppo, names::CLIP_FRACTION),
            (Stage::Ppo, names::VALUE_CLIP_FRACTION),
            (Stage::Grpo, names::CLIP_RATIO_REGION),
            (Stage::Rloo, names::CLIP_RATIO_REGION),
        ],
        level: None,
        optional: false,
        against: None,
    },
    ChartSpec {
        title: EVALUATOR_CHART,
        unit: "judge score, 0 to 1",
        series: &[
            (Stage::Ppo, names::JUDGE_SCORE),
            (Stage::Grpo, names::JUDGE_SCORE),
            (Stage::Rloo, names::JUDGE_SCORE),
        ],
        level: Some(("SFT held-out", Stage::Sft, names::EVAL_JUDGE_SCORE)),
        optional: true,
        against: None,
    },
    ChartSpec {
        title: "sycophancy",
        unit: "share of answers agreeing with a false claim",
        series: &[
            (Stage::Ppo, names::PROBE_SYCOPHANCY),
            (Stage::Grpo, names::PROBE_SYCOPHANCY),
            (Stage::Rloo, names::PROBE_SYCOPHANCY),
        ],
        level: Some(("SFT held-out", Stage::Sft, names::EVAL_SYCOPHANCY)),
        optional: true,
        against: None,
    },
    // The methods side by side: what each bought in judge score for the
    // drift it took, and for the episodes it sampled.
    ChartSpec {
        title: "judge vs KL",
        unit: "judge score, 0 to 1",
        series: &[],
        level: Some(("SFT held-out", Stage::Sft, names::EVAL_JUDGE_SCORE)),
        optional: true,
        against: Some(Against {
            x_unit: "KL per response, nats",
            series: &[
                (Stage::Ppo, names::KL, names::JUDGE_SCORE),
                (Stage::Grpo, names::KL, names::JUDGE_SCORE),
                (Stage::Rloo, names::KL, names::JUDGE_SCORE),
                (Stage::Ppo, names::EVAL_KL, names::EVAL_JUDGE_SCORE),
                (Stage::Grpo, names::EVAL_KL, names::EVAL_JUDGE_SCORE),
                (Stage::Rloo, names::EVAL_KL, names::EVAL_JUDGE_SCORE),
                (Stage::Dpo, names::EVAL_KL, names::EVAL_JUDGE_SCORE),
            ],
        }),
    },
    ChartSpec {
        title: "judge vs episodes",
        unit: "judge score, 0 to 1",
        series: &[],
        level: Some(("SFT held-out", Stage::Sft, names::EVAL_JUDGE_SCORE)),
        optional: true,
        against: Some(Against {
            x_unit: "episodes sampled",
            series: &[
                (Stage::Ppo, names::EPISODES, names::JUDGE_SCORE),
                (Stage::Grpo, names::EPISODES, names::JUDGE_SCORE),
                (Stage::Rloo, names::EPISODES, names::JUDGE_SCORE),
            ],
        }),
    },
    // SFT's and the reward model's losses apart: on one step axis SFT's
    // few hundred steps were flattened under the reward model's.
    ChartSpec {
        title: "SFT loss",
        unit: "nats per token",
        series: &[(Stage::Sft, names::LOSS), (Stage::Sft, names::EVAL_LOSS)],
        level: None,
        optional: false,
        against: None,
    },
    ChartSpec {
        title: "CAI loss",
        unit: "nats per token of the revisions",
        series: &[(Stage::Cai, names::LOSS), (Stage::Cai, names::EVAL_LOSS)],
        level: None,
        optional: false,
        against: None,
    },
    ChartSpec {
        title: "RM loss",
        unit: "nats per pair",
        series: &[(Stage::Rm, names::LOSS)],
        level: None,
        optional: false,
        against: None,
    },
    ChartSpec {
        title: "RM accuracy",
        unit: "share of pairs ordered right",
        series: &[(Stage::Rm, names::ACCURACY)],
        level: None,
        optional: false,
        against: None,
    },
    ChartSpec {
        title: "DPO loss",
        unit: "nats per pair",
        series: &[(Stage::Dpo, names::LOSS)],
        level: None,
        optional: true,
        against: None,
    },
    ChartSpec {
        title: "DPO implied rewards",
        unit: "β·(log π − log π_ref), nats",
        series: &[
            (Stage::Dpo, names::DPO_CHOSEN_REWARD),
            (Stage::Dpo, names::DPO_REJECTED_REWARD),
            (Stage::Dpo, names::DPO_MARGIN),
        ],
        level: None,
        optional: true,
        against: None,
    },
    ChartSpec {
        title: RELIABILITY,
        unit: "share ordered right",
        series: &[],
        level: None,
        optional: false,
        against: None,
    },
];

/// A vertical mark on the charts: a parameter changed at this step.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    pub stage: Option<Stage>,
    pub step: usize,
    pub label: String,
}

/// What the comparison pane colours tokens by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colouring {
    /// log π(token) − log π_ref(token): where the policy left the reference.
    Kl,
    /// log π(token): how sure the policy was.
    Logprob,
}

/// The parameter the editor is changing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Editing {
    Beta,
    LearningRate,
    Temperature,
    GroupSize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Editor {
    pub editing: Editing,
    pub input: String,
    pub error: Option<String>,
    /// The current value, shown selected when the editor opens: typing
    /// replaces it, Enter keeps it.
    pub selected: bool,
}

/// The live parameters as the trainer last reported them.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub beta: f64,
    pub lr: f64,
    /// Whose learning rate `lr` is: the stage that reported it last, PPO's
    /// (the config's) before any has.
    pub lr_of: Stage,
    pub temperature: f64,
    pub kl_mode: KlMode,
    /// GRPO's and RLOO's K while one runs.
    pub group_size: Option<usize>,
}

/// A judgment the trainer has stored, kept for undo.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    pub set: SampleSet,
    pub verdict: Verdict,
    pub criterion: Criterion,
}

/// What the queue asks for: pairs to choose between, or K responses to order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelMode {
    Pair,
    Rank,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Overlay {
    None,
    /// The keys and how to read the screen, from this line down.
    Help(u16),
    Editor(Editor),
    /// Quit asked while a stage runs: checkpoint first or not.
    ConfirmQuit,
    /// Enter on a stage that is done: train it again, or keep it.
    ConfirmRerun(Stage),
    /// Every alert raised, with its numbers.
    Alerts,
}

#[derive(Debug)]
pub struct App {
    pub run: String,
    pub device: String,
    pub base: String,
    pub stages: Vec<StageRow>,
    /// Row of the stage selector under the cursor.
    pub selected: usize,
    pub focus: Pane,
    pub overlay: Overlay,
    pub params: Params,
    /// Histories by (stage, metric).
    pub series: BTreeMap<(Stage, String), History>,
    pub markers: Vec<Marker>,
    pub chart: usize,
    /// Sets waiting to be judged; the first is on screen.
    pub queue: VecDeque<SampleSet>,
    /// A judgment sent and not yet on disk: the screen does not confirm it yet.
    pub pending: Option<(u64, Verdict)>,
    pub mode: LabelMode,
    /// Responses a ranking orders (the run's `prefs.rank_k`).
    pub rank_k: usize,
    /// The ranking being typed, best first (response indices).
    pub ranking: Vec<usize>,
    /// The response the last ranking placed last by itself: a person who
    /// types all K digits presses it next, and that press is not the next
    /// set's first place.
    pub placed_last: Option<usize>,
    /// What the next judgment is about.
    pub criterion: Criterion,
    /// Agreement over the run's judgments, as the trainer last computed it.
    pub agreement: Vec<Agreement>,
    /// How fast the person labels (from the trainer, once timed).
    pub throughput: Option<Throughput>,
    /// The CAI stage's revisions (from the trainer, once made), and which
    /// example the constitution pane shows.
    pub cai: Option<CaiView>,
    pub cai_example: usize,
    /// The blind evaluation on screen, if one is open.
    pub eval: Option<EvalView>,
    /// The iterative loop's round (0 until the trainer says) and the newest
    /// reward model's version.
    pub round: u32,
    pub rm_version: u32,
    /// Alerts the monitors raised that have not cleared, oldest first.
    pub alerts: Vec<Alert>,
    /// Every alert raised, oldest first (the newest `ALERTS_KEPT`): the
    /// alerts window and the red lines on the charts.
    pub alert_log: Vec<Alert>,
    /// The newest reward model's reliability table.
    pub calibration: Vec<ReliabilityBin>,
    /// Judgments on disk, newest last, for undo.
    pub judged: Vec<Judged>,
    /// An undo sent and not yet on disk.
    pub retracting: Option<Judged>,
    pub labels_saved: usize,
    pub colouring: Colouring,
    /// Comparison pane's first shown line.
    pub scroll: u16,
    /// Arrival times (seconds) and steps of the running stage's recent steps.
    pub timings: VecDeque<(f64, usize)>,
    /// The last thing worth telling the person, and whether it is an error.
    pub message: Option<(String, bool)>,
    pub trainer_gone: bool,
    pub quitting: bool,
    /// Attached to a served trainer (`rlhf-tui attach`), and where: quitting
    /// detaches and the trainer goes on.
    pub attached: Option<String>,
    /// Attached to an external trainer (through the TRL bridge): its name
    /// and the controls it takes.
    pub external: Option<External>,
    pub no_color: bool,
}

/// Lines in the help window: the keys, a heading, how to read the
/// screen, and the note on colours, with the blank lines between.
pub fn help_lines() -> u16 {
    (crate::ui::keys::HELP.len() + crate::ui::keys::READING.len() + 5) as u16
}

/// Alerts the alerts window lists.
pub const ALERTS_KEPT: usize = 200;

/// Sets the queue holds; older unjudged sets make way for new ones.
pub const QUEUE_LEN: usize = 16;

/// A blind evaluation as the workbench holds it: the pairs (never which
/// side is whose), the one being judged, and the figures so far.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalView {
    pub a: String,
    pub b: String,
    pub items: Vec<EvalItem>,
    /// The pair on screen; `items.len()` once all are judged.
    pub at: usize,
    /// A verdict sent and not yet on disk.
    pub pending: Option<Choice>,
    pub tally: Option<EvalTally>,
}

impl EvalView {
    pub fn done(&self) -> bool {
        self.at >= self.items.len()
    }
}

impl App {
    /// Whether the trainer takes `control`: rlhf-tui's own takes them all.
    pub fn takes(&self, control: Control) -> bool {
        self.external.as_ref().is_none_or(|e| e.controls.contains(&control))
    }

    /// Whether the charts pane offers chart `i` (see `ChartSpec::optional`).
    pub fn offers_chart(&self, i: usize) -> bool {
        let spec = &CHARTS[i];
        !spec.optional
            || spec
                .y_keys()
                .iter()
                .any(|(stage, key)| self.series.contains_key(&(*stage, key.to_string())))
    }

    pub fn new(no_color: bool) -> Self {
        let row = |stage| StageRow {
            stage,
            state: StageState::NotStarted,
            step: 0,
            total: 0,
        };
        Self {
            run: String::new(),
            device: String::new(),
            base: String::new(),
            stages: vec![
                row(None),
                row(Some(Stage::Sft)),
                row(Some(Stage::Cai)),
                row(Some(Stage::Rm)),
                row(Some(Stage::Ppo)),
                row(Some(Stage::Grpo)),
                row(Some(Stage::Rloo)),
                row(Some(Stage::Dpo)),
            ],
            selected: 1,
            focus: Pane::Stages,
            overlay: Overlay::None,
            params: Params {
                beta: 0.0,
                lr: 0.0,
                lr_of: Stage::Ppo,
                temperature: 1.0,
                kl_mode: KlMode::Fixed,
                group_size: None,
            },
            series: BTreeMap::new(),
            markers: Vec::new(),
            chart: 0,
            queue: VecDeque::new(),
            pending: None,
            mode: LabelMode::Pair,
            rank_k: 4,
            ranking: Vec::new(),
            placed_last: None,
            criterion: Criterion::Overall,
            agreement: Vec::new(),
            throughput: None,
            cai: None,
            cai_example: 0,
            eval: None,
            round: 0,
            rm_version: 0,
            alerts: Vec::new(),
            alert_log: Vec::new(),
            calibration: Vec::new(),
            judged: Vec::new(),
            retracting: None,
            labels_saved: 0,
            colouring: Colouring::Kl,
            scroll: 0,
            timings: VecDeque::new(),
            message: None,
            trainer_gone: false,
            quitting: false,
            attached: None,
            external: None,
            no_color,
        }
    }

    /// A metric's newest value.
    pub fn last(&self, stage: Stage, key: &str) -> Option<f64> {
        self.series.get(&(stage, key.to_string()))?.last.map(|(_, v)| v)
    }

    /// The stage that is starting, running or paused, if any.
    pub fn active(&self) -> Option<&StageRow> {
        self.stages.iter().find(|r| {
            r.stage.is_some() && matches!(r.state, StageState::Starting | StageState::Running | StageState::Paused)
        })
    }

    pub fn paused(&self) -> bool {
        self.active().is_some_and(|r| r.state == StageState::Paused)
    }

    /// Whether the status bar shows an error, which other news must not hide.
    pub fn showing_error(&self) -> bool {
        self.message.as_ref().is_some_and(|(_, error)| *error)
    }

    pub fn row_mut(&mut self, stage: Stage) -> &mut StageRow {
        self.stages
            .iter_mut()
            .find(|r| r.stage == Some(stage))
            .expect("every stage has a row")
    }

    /// Steps per second over the recent steps, once there are two.
    pub fn steps_per_second(&self) -> Option<f64> {
        let (first, last) = (self.timings.front()?, self.timings.back()?);
        let (dt, ds) = (last.0 - first.0, last.1.saturating_sub(first.1));
        (dt > 0.0 && ds > 0).then(|| ds as f64 / dt)
    }

    /// Seconds left in the running stage at the recent pace.
    pub fn eta_seconds(&self) -> Option<f64> {
        let row = self.active()?;
        Some(row.total.saturating_sub(row.step) as f64 / self.steps_per_second()?)
    }

    /// The set on screen.
    /// Whether the comparison pane shows the constitution's revisions:
    /// with the CAI stage selected, once it has made them.
    pub fn showing_cai(&self) -> bool {
        self.cai.is_some() && self.stages.get(self.selected).and_then(|r| r.stage) == Some(Stage::Cai)
    }

    pub fn shown(&self) -> Option<&SampleSet> {
        self.queue.front()
    }

    /// The size of the sets the queue asks for.
    pub fn set_size(&self) -> usize {
        match self.mode {
            LabelMode::Pair => 2,
            LabelMode::Rank => self.rank_k,
        }
    }

    /// Agreement on the criterion being labelled.
    pub fn current_agreement(&self) -> Option<&Agreement> {
        self.agreement.iter().find(|a| a.criterion == self.criterion)
    }
}
