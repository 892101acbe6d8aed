//! One training stage as both the workbench's trainer thread and `train`
//! drive it: started from the run's config and checkpoints, stepped one
//! optimizer step (SFT, RM) or one PPO iteration at a time under a
//! steering callback, and finished with a checkpoint and the stage's
//! held-out evaluation.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::protocol::{CaiView, Stage};
use super::run_data::RunData;
use super::stage_trainer::{Finished, StageTrainer, StepAt};
use crate::model::{CausalLm, ScalarModel, Tokenizer};
use crate::prefs::formats::PreferencePair;
use crate::prefs::rank::training_pairs;
use crate::prefs::store;
use crate::rlhf::cai::stage::{CaiParts, CaiTrainer};
use crate::rlhf::dpo::trainer::DpoTrainer;
use crate::rlhf::grouped::config::{GroupConfig, GroupMethod};
use crate::rlhf::grouped::trainer::{GroupState, GroupTrainer};
use crate::rlhf::ppo::kl_control::KlControl;
use crate::rlhf::ppo::live::{LiveParams, Models, Steer, StepPoint};
use crate::rlhf::ppo::trainer::{PpoState, PpoTrainer};
use crate::rlhf::reward::{RmConfig, RmTrainer};
use crate::rlhf::sft::SftTrainer;
use crate::rlhf::state::ModelState;
use crate::run::dir::CHECKPOINT_STATE;
use crate::run::{Rounds, RunConfig, RunDir};

pub type Metrics = Vec<(&'static str, f64)>;

pub struct StageRun {
    pub stage: Stage,
    trainer: Box<dyn StageTrainer>,
    config: RunConfig,
    /// SFT's and RM's live parameters (PPO's live in its trainer): `lr`
    /// is the schedule's peak, so a change rescales the rest of the schedule.
    params: LiveParams,
    /// Steps (PPO: iterations) done, and where the stage ends. A later
    /// round's stage counts on from the run's last checkpoint of it, so
    /// checkpoints and charts keep one step axis.
    pub step: usize,
    pub total: usize,
    offset: usize,
    /// What the stage started from, for messages.
    pub init: PathBuf,
    /// PPO's frozen reference and reward model.
    reference: Option<PathBuf>,
    reward: Option<PathBuf>,
    /// Training pairs from the run's own judgments (RM only).
    run_pairs: usize,
    /// The run's data and evaluator, for the held-out evaluation.
    data: RunData,
    /// When the stage started or last wrote a checkpoint, for
    /// `checkpoints.every_minutes`.
    written: std::cell::Cell<std::time::Instant>,
}

/// A checkpoint's `trainer_state.json`: with the files beside it, all a
/// stage needs to continue exactly where the checkpoint was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub stage: Stage,
    pub step: usize,
    pub offset: usize,
    pub total: usize,
    /// SFT's and RM's live parameters.
    pub params: LiveParams,
    pub reference: Option<PathBuf>,
    pub reward: Option<PathBuf>,
    pub run_pairs: usize,
    pub model: Option<ModelState>,
    pub ppo: Option<PpoState>,
    /// GRPO's and RLOO's.
    #[serde(default)]
    pub group: Option<GroupState>,
}

impl Saved {
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(CHECKPOINT_STATE);
        let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))
    }

    /// The newest checkpoint of `stage`, when it was written before the
    /// stage's end (a stop, a quit or `c`) with the trainer's state. A
    /// state file that cannot be read is an error, not a fresh start.
    pub fn unfinished(run: &RunDir, stage: Stage) -> anyhow::Result<Option<PathBuf>> {
        let Some(dir) = run.latest_checkpoint(stage.name()) else {
            return Ok(None);
        };
        if !dir.join(CHECKPOINT_STATE).exists() {
            return Ok(None);
        }
        let saved = Self::read(&dir)?;
        Ok((saved.step < saved.total).then_some(dir))
    }
}

/// The run's own judgments as training pairs, for the reward model.
fn run_judged_pairs(run: &RunDir) -> anyhow::Result<Vec<PreferencePair>> {
    Ok(training_pairs(&store::load(&run.prefs_path())?.judgments))
}

/// The path in the config, or the run's latest checkpoint of `stage`.
fn init_path(configured: &Option<PathBuf>, run: &RunDir, stage: Stage, for_stage: &str) -> anyhow::Result<PathBuf> {
    match configured {
        Some(path) => Ok(path.clone()),
        // The advice fits both front ends: the workbench's key and the
        // command line with this run's own directory.
        None => run.latest_checkpoint(stage.name()).ok_or_else(|| {
            let runs_dir = run.root.parent().unwrap_or(Path::new("."));
            anyhow::anyhow!(
                "{}: no {upper} checkpoint to start {for_stage} from; train {upper} first (Enter on {upper} in the workbench, `rlhf-tui train --stage {} --run {} --runs-dir {}` on the command line), or set the path in the config",
                run.root.display(),
                stage.name(),
                run.root.file_name().unwrap_or_default().to_string_lossy(),
                runs_dir.display(),
                upper = stage.name().to_uppercase(),
            )
        }),
    }
}

/// The run's supervised stage, whose checkpoint the reward model, PPO,
/// the pair pane's reference and the blind evaluation start from: CAI's
/// where the run has one (SL-CAI refines the supervised policy), else SFT's.
pub fn supervised(run: &RunDir) -> Stage {
    match run.latest_checkpoint(Stage::Cai.name()) {
        Some(_) => Stage::Cai,
        None => Stage::Sft,
    }
}

/// GRPO's or RLOO's method and config section.
fn group_of(stage: Stage, config: &RunConfig) -> (GroupMethod, &GroupConfig) {
    match stage {
        Stage::Rloo => (GroupMethod::Rloo, &config.rloo),
        _ => (GroupMethod::Grpo, &config.grpo),
    }
}

/// The newest checkpoint of a policy trained past the supervised one (PPO,
/// GRPO, RLOO or DPO, whichever was written last): what the pair pane
/// samples from and the blind evaluation tries.
pub fn newest_trained(run: &RunDir) -> Option<PathBuf> {
    [Stage::Ppo, Stage::Grpo, Stage::Rloo, Stage::Dpo]
        .into_iter()
        .filter_map(|stage| run.latest_checkpoint(stage.name()))
        .max_by_key(|dir| std::fs::metadata(dir).and_then(|m| m.modified()).ok())
}

/// The reward model's config, reading the CAI stage's labelled pairs
/// where it is told to (RL-CAI).
fn rm_config(config: &RunConfig, run: &RunDir) -> anyhow::Result<RmConfig> {
    let mut rm = config.rm.clone();
    if rm.constitution_pairs {
        let path = run.cai_pairs_path();
        anyhow::ensure!(
            path.exists(),
            "{}: no pairs labelled by the constitution; run the CAI stage first (with cai.feedback_pairs above 0), or set rm.constitution_pairs to false",
            path.display()
        );
        (rm.data, rm.constitution_pairs) = (Some(path), false);
    }
    Ok(rm)
}

/// What the CAI stage needs from the run: its critic (refused when the
/// run has none), data, judge and where its revisions go; it samples from
/// `init` and trains the weights in `weights` (a checkpoint's, resumed).
fn cai_parts<'a>(
    config: &'a RunConfig,
    init: &'a Path,
    weights: &'a Path,
    run: &RunDir,
    data: &RunData,
) -> anyhow::Result<CaiParts<'a>> {
    let critic = data.critic.clone().ok_or_else(|| {
        anyhow::anyhow!("the CAI stage needs a critic: on your own data, an AI judge (judge: (kind: Endpoint(…)) or Command(…)) in the config, which critiques with the constitution's requests")
    })?;
    Ok(CaiParts {
        sft: &config.sft,
        init,
        weights,
        sources: data.sources.clone(),
        evaluator: data.evaluator.clone(),
        critic,
        revisions_path: run.cai_revisions_path(),
    })
}

impl StageRun {
    /// Loads the stage's models: SFT from `sft.init`; the reward model
    /// from the run's SFT checkpoint, trained on the configured pairs and
    /// the run's judgments; PPO from both (or the config's paths). From
    /// round 2 on, the reward model is a new version and PPO continues
    /// from the run's last PPO policy, still penalised by KL to SFT.
    ///
    /// A stage that has run before counts its steps on from its newest
    /// checkpoint (a second SFT run's first checkpoint after `sft-300` is
    /// past 300), so a re-run never overwrites a checkpoint that
    /// `rounds.json` or a later stage names, and its curves continue on
    /// the step axis instead of drawing back over the first run's.
    pub fn start(stage: Stage, config: &RunConfig, run: &RunDir, device: &Device) -> anyhow::Result<Self> {
        Self::start_with(stage, config, run, device, RunData::of(config)?)
    }

    /// `start` on data already read (the workbench's, whose judge
    /// program is started once for the run).
    pub fn start_with(
        stage: Stage,
        config: &RunConfig,
        run: &RunDir,
        device: &Device,
        data: RunData,
    ) -> anyhow::Result<Self> {
        let mut params = LiveParams::from_config(&config.ppo);
        let later_round = Rounds::load(run)?.round > 1;
        let offset = run.latest_step(stage.name()).map_or(0, |(step, _)| step);
        let (mut run_pairs, mut reference, mut reward) = (0, None, None);
        let (trainer, steps, init): (Box<dyn StageTrainer>, _, _) = match stage {
            Stage::Sft => {
                params.lr = config.sft.lr;
                let trainer = SftTrainer::new(&config.sft, data.sources.as_ref(), device)?;
                (Box::new(trainer), config.sft.steps, config.sft.init.clone())
            }
            Stage::Cai => {
                params.lr = config.cai.lr;
                let init = match &config.cai.init {
                    Some(path) => path.clone(),
                    None => run
                        .latest_checkpoint(Stage::Sft.name())
                        .unwrap_or(config.sft.init.clone()),
                };
                let trainer = CaiTrainer::new(&config.cai, cai_parts(config, &init, &init, run, &data)?, device)?;
                // Kept as the stage's reference: a resumed stage samples
                // and revises from it again, to the same revisions.
                reference = Some(init.clone());
                (Box::new(trainer), config.cai.steps, init)
            }
            Stage::Rm => {
                params.lr = config.rm.lr;
                let init = init_path(&config.rm.init, run, supervised(run), "the reward model")?;
                let judged = run_judged_pairs(run)?;
                run_pairs = judged.len();
                let rm = rm_config(config, run)?;
                let trainer = RmTrainer::new(&rm, &init, &judged, data.sources.as_ref(), device)?;
                (Box::new(trainer), config.rm.steps, init)
            }
            Stage::Ppo => {
                let sft = init_path(&config.ppo.policy_init, run, supervised(run), "PPO")?;
                let policy = match (later_round, &config.ppo.policy_init) {
                    (true, None) => run.latest_checkpoint(Stage::Ppo.name()).unwrap_or(sft.clone()),
                    _ => sft.clone(),
                };
                let rm = init_path(&config.ppo.reward_init, run, Stage::Rm, "PPO")?;
                let trainer = PpoTrainer::continued(&config.ppo, &policy, &sft, &rm, data.parts(), device)?;
                (reference, reward) = (Some(sft), Some(rm));
                (Box::new(trainer), config.ppo.iterations, policy)
            }
            Stage::Grpo | Stage::Rloo => {
                let (method, group) = group_of(stage, config);
                let sft = init_path(&group.policy_init, run, supervised(run), method.name())?;
                let rm = init_path(&group.reward_init, run, Stage::Rm, method.name())?;
                let trainer = GroupTrainer::new(method, group, (&sft, &sft, &rm), data.parts(), device)?;
                (reference, reward) = (Some(sft.clone()), Some(rm));
                (Box::new(trainer), group.iterations, sft)
            }
            Stage::Dpo => {
                params.lr = config.dpo.lr;
                params.kl = KlControl::Fixed { beta: config.dpo.beta };
                let init = init_path(&config.dpo.init, run, supervised(run), "DPO")?;
                let judged = run_judged_pairs(run)?;
                run_pairs = judged.len();
                let trainer = DpoTrainer::new(&config.dpo, &init, &init, &judged, data.sources.as_ref(), device)?;
                reference = Some(init.clone());
                (Box::new(trainer), config.dpo.steps, init)
            }
        };
        Ok(Self {
            stage,
            trainer,
            config: config.clone(),
            params,
            step: offset,
            total: offset + steps,
            offset,
            init,
            reference,
            reward,
            run_pairs,
            data,
            written: std::cell::Cell::new(std::time::Instant::now()),
        })
    }

    /// Continues the stage from a checkpoint written with its trainer's
    /// state: weights, optimizer moments, step, data order, generator,
    /// KL controller and live parameters as they were. `total` moves the
    /// stage's end (a finished stage can be taken further).
    pub fn resume(
        config: &RunConfig,
        run: &RunDir,
        dir: &Path,
        total: Option<usize>,
        device: &Device,
    ) -> anyhow::Result<Self> {
        Self::resume_with(config, run, dir, total, device, RunData::of(config)?)
    }

    /// `resume` on data already read.
    pub fn resume_with(
        config: &RunConfig,
        run: &RunDir,
        dir: &Path,
        total: Option<usize>,
        device: &Device,
        data: RunData,
    ) -> anyhow::Result<Self> {
        let saved = Saved::read(dir)?;
        let missing = |what: &str| anyhow::anyhow!("{}: {CHECKPOINT_STATE} has no {what}", dir.display());
        let trainer: Box<dyn StageTrainer> = match saved.stage {
            Stage::Sft => {
                let mut sft = config.sft.clone();
                sft.init = dir.to_path_buf();
                let mut t = SftTrainer::new(&sft, data.sources.as_ref(), device)?;
                t.restore(dir, saved.model.as_ref().ok_or_else(|| missing("model state"))?)?;
                Box::new(t)
            }
            Stage::Cai => {
                let init = saved.reference.as_deref().ok_or_else(|| missing("reference"))?;
                let mut t = CaiTrainer::new(&config.cai, cai_parts(config, init, dir, run, &data)?, device)?;
                t.sft
                    .restore(dir, saved.model.as_ref().ok_or_else(|| missing("model state"))?)?;
                Box::new(t)
            }
            Stage::Rm => {
                let rm = rm_config(config, run)?;
                let mut t = RmTrainer::new(&rm, dir, &run_judged_pairs(run)?, data.sources.as_ref(), device)?;
                t.restore(dir, saved.model.as_ref().ok_or_else(|| missing("model state"))?)?;
                Box::new(t)
            }
            Stage::Ppo => {
                let reference = saved.reference.as_deref().ok_or_else(|| missing("reference"))?;
                let reward = saved.reward.as_deref().ok_or_else(|| missing("reward model"))?;
                let mut t = PpoTrainer::continued(&config.ppo, dir, reference, reward, data.parts(), device)?;
                t.restore(dir, saved.ppo.as_ref().ok_or_else(|| missing("PPO state"))?)?;
                Box::new(t)
            }
            Stage::Grpo | Stage::Rloo => {
                let (method, group) = group_of(saved.stage, config);
                let reference = saved.reference.as_deref().ok_or_else(|| missing("reference"))?;
                let reward = saved.reward.as_deref().ok_or_else(|| missing("reward model"))?;
                let mut t = GroupTrainer::new(method, group, (dir, reference, reward), data.parts(), device)?;
                let state = saved.group.as_ref().ok_or_else(|| missing("GRPO or RLOO state"))?;
                t.restore(dir, state)?;
                Box::new(t)
            }
            Stage::Dpo => {
                let reference = saved.reference.as_deref().ok_or_else(|| missing("reference"))?;
                let judged = run_judged_pairs(run)?;
                let mut t = DpoTrainer::new(&config.dpo, dir, reference, &judged, data.sources.as_ref(), device)?;
                t.restore(dir, saved.model.as_ref().ok_or_else(|| missing("model state"))?)?;
                Box::new(t)
            }
        };
        let total = total.map_or(saved.total, |steps| saved.offset + steps);
        anyhow::ensure!(
            saved.step < total,
            "{}: already at step {} of {total}; give more steps to go further",
            dir.display(),
            saved.step
        );
        Ok(Self {
            stage: saved.stage,
            trainer,
            config: config.clone(),
            params: saved.params,
            step: saved.step,
            total,
            offset: saved.offset,
            init: dir.to_path_buf(),
            reference: saved.reference,
            reward: saved.reward,
            run_pairs: saved.run_pairs,
            data,
            written: std::cell::Cell::new(std::time::Instant::now()),
        })
    }

    /// What failed while stepping since last asked, for the person to see.
    pub fn take_failures(&mut self) -> Vec<String> {
        self.trainer.take_failures()
    }

    /// What the stage's trainer skipped (demonstrations, pairs), each
    /// naming which; the files' skipped lines are the run data's.
    pub fn warnings(&self) -> &[String] {
        self.trainer.warnings()
    }

    /// The run's data and judge, as the stage read them.
    pub fn data(&self) -> &RunData {
        &self.data
    }

    /// Metrics at step 0, for the curves to start from: SFT's held-out loss,
    /// and the starting policy's held-out judge score before PPO.
    pub fn baseline(&self) -> anyhow::Result<Metrics> {
        self.trainer.baseline(&self.data)
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.total
    }

    /// Whether a periodic checkpoint is due now, between steps: every
    /// `checkpoints.every_steps` steps of the stage, or `every_minutes`
    /// after the last one; never at the last step, whose checkpoint the
    /// stage's end writes.
    pub fn checkpoint_due(&self) -> bool {
        let c = &self.config.checkpoints;
        let by_steps = c
            .every_steps
            .is_some_and(|n| (self.step - self.offset).is_multiple_of(n));
        let by_time = c
            .every_minutes
            .is_some_and(|m| self.written.get().elapsed().as_secs_f64() >= m * 60.0);
        self.step > self.offset && !self.is_done() && (by_steps || by_time)
    }

    /// The live parameters the next step will use.
    pub fn params(&self) -> &LiveParams {
        self.trainer.live().unwrap_or(&self.params)
    }

    pub fn params_mut(&mut self) -> &mut LiveParams {
        self.trainer.live_mut().unwrap_or(&mut self.params)
    }

    /// One step at the live parameters. PPO's iteration calls `steer`
    /// before its rollout and before each of its optimizer steps, where it
    /// may change the parameters or stop the iteration; an SFT or RM step is
    /// one optimizer step, steered from outside between steps.
    pub fn step(&mut self, steer: &mut Steer) -> Option<Metrics> {
        let at = StepAt {
            step: self.step,
            offset: self.offset,
            total: self.total,
            params: &self.params,
        };
        let metrics = self.trainer.step(at, steer)?;
        self.step += 1;
        Some(metrics)
    }

    /// Writes the stage as it is now to `checkpoints/<stage>-<step>`: the
    /// model as a Hugging Face directory, with the trainer's state beside
    /// it (`trainer_state.json`, the optimizers, PPO's value model). Then
    /// only the newest `checkpoints.keep_last` of the stage are kept.
    pub fn checkpoint(&self, run: &RunDir) -> anyhow::Result<PathBuf> {
        let mut saved = Saved {
            stage: self.stage,
            step: self.step,
            offset: self.offset,
            total: self.total,
            params: self.params.clone(),
            reference: self.reference.clone(),
            reward: self.reward.clone(),
            run_pairs: self.run_pairs,
            model: None,
            ppo: None,
            group: None,
        };
        let mut write = |dir: &Path| -> anyhow::Result<()> {
            self.trainer.save(dir, &mut saved)?;
            let text = serde_json::to_string_pretty(&saved)?;
            Ok(crate::fsutil::write_atomic(
                &dir.join(CHECKPOINT_STATE),
                text.as_bytes(),
            )?)
        };
        let path = run.write_checkpoint(self.stage.name(), self.step, |dir| {
            write(dir).map_err(std::io::Error::other)
        })?;
        run.keep_last(self.stage.name(), self.config.checkpoints.keep_last)?;
        self.written.set(std::time::Instant::now());
        Ok(path)
    }

    /// Checkpoints the stage and evaluates it on held-out data: the judge's
    /// view of SFT's and PPO's answers; the reward model's accuracy and
    /// calibration (its reliability table saved as `rm_calibration.json`),
    /// and its version recorded in `rounds.json`.
    pub fn finish(&self, run: &RunDir) -> anyhow::Result<(PathBuf, Metrics)> {
        let path = self.checkpoint(run)?;
        let metrics = self.trainer.evaluate(Finished {
            run,
            checkpoint: &path,
            init: &self.init,
            run_pairs: self.run_pairs,
            data: &self.data,
        })?;
        Ok((path, metrics))
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        self.trainer.tokenizer()
    }

    /// The policy as it is now, when the stage trains one.
    pub fn policy(&self) -> Option<CausalLm> {
        self.trainer.policy()
    }

    /// The CAI stage's revisions, for the constitution pane.
    pub fn cai_view(&self) -> Option<CaiView> {
        self.trainer.cai_view()
    }

    /// PPO's frozen reference and reward model.
    pub fn ppo_reference_and_reward(&self) -> Option<(&CausalLm, &ScalarModel)> {
        self.trainer.reference_and_reward()
    }
}

/// A steering callback that changes nothing.
pub fn no_steering(_: &mut LiveParams, _: StepPoint, _: &Models) -> ControlFlow<()> {
    ControlFlow::Continue(())
}
