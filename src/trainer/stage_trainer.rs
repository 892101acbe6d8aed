//! What each stage's trainer does for `StageRun`: one implementation of
//! `StageTrainer` per stage (SFT, the reward model, PPO), so `StageRun`
//! dispatches once instead of matching on the stage in every method.

use std::path::Path;

use super::run_data::RunData;
use super::stage::{Metrics, Saved};
use crate::model::{CausalLm, ScalarModel, Tokenizer, hf};
use crate::rlhf::cai::stage::CaiTrainer;
use crate::rlhf::dpo::trainer::DpoTrainer;
use crate::rlhf::grouped::trainer::GroupTrainer;
use crate::rlhf::held_out::{HELD_OUT_SAMPLES, held_out_report};
use crate::rlhf::ppo::live::{LiveParams, Steer};
use crate::rlhf::ppo::trainer::PpoTrainer;
use crate::rlhf::reward::RmTrainer;
use crate::rlhf::sft::SftTrainer;
use crate::run::{Rounds, RunDir, names};
use crate::trainer::protocol::CaiView;

/// Where a step stands in its stage, and the live parameters SFT and the
/// reward model step at (PPO keeps its own).
pub struct StepAt<'a> {
    pub step: usize,
    pub offset: usize,
    pub total: usize,
    pub params: &'a LiveParams,
}

/// What the stage's evaluation records beside its checkpoint.
pub struct Finished<'a> {
    pub run: &'a RunDir,
    pub checkpoint: &'a Path,
    pub init: &'a Path,
    pub run_pairs: usize,
    pub data: &'a RunData,
}

pub trait StageTrainer: Send {
    /// One step: one optimizer step for SFT and the reward model, one
    /// iteration for PPO, which calls `steer` inside it; `None` when the
    /// steering stopped it part way.
    fn step(&mut self, at: StepAt, steer: &mut Steer) -> Option<Metrics>;

    /// Metrics at step 0, for the curves to start from.
    fn baseline(&self, _data: &RunData) -> anyhow::Result<Metrics> {
        Ok(Vec::new())
    }

    /// What the stage skipped while loading its data.
    fn warnings(&self) -> &[String] {
        &[]
    }

    /// What failed while stepping since last asked (the evaluator's calls).
    fn take_failures(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// The trainer's own live parameters, where it keeps them (PPO).
    fn live(&self) -> Option<&LiveParams> {
        None
    }

    fn live_mut(&mut self) -> Option<&mut LiveParams> {
        None
    }

    /// The model as a Hugging Face directory in `dir`, and the trainer's
    /// state beside it, recorded in `saved`.
    fn save(&self, dir: &Path, saved: &mut Saved) -> anyhow::Result<()>;

    /// The held-out evaluation after the final checkpoint.
    fn evaluate(&self, finished: Finished) -> anyhow::Result<Metrics>;

    fn tokenizer(&self) -> &Tokenizer;

    /// The policy as it is now, when the stage trains one.
    fn policy(&self) -> Option<CausalLm> {
        None
    }

    /// PPO's frozen reference and reward model.
    fn reference_and_reward(&self) -> Option<(&CausalLm, &ScalarModel)> {
        None
    }

    /// The CAI stage's revisions, for the constitution pane.
    fn cai_view(&self) -> Option<CaiView> {
        None
    }
}

/// A policy's held-out figures: the evaluator's view of its answers to the
/// held-out prompts (nothing when the run has no evaluator), and with a
/// `reference`, its KL to it on those same answers (`eval/kl`).
fn held_out_metrics(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    data: &RunData,
    reference: Option<&CausalLm>,
) -> anyhow::Result<Metrics> {
    if data.evaluator.is_none() && reference.is_none() {
        return Ok(Vec::new());
    }
    held_out_report(
        model,
        tokenizer,
        data.sources.as_ref(),
        data.evaluator.as_deref(),
        reference,
        HELD_OUT_SAMPLES,
    )
    .map_err(|why| anyhow::anyhow!("the held-out evaluation: {why}"))
}

impl StageTrainer for SftTrainer {
    /// At the schedule's rate, rescaled by a live change to its peak; the
    /// held-out loss every `eval_every` steps and at the last.
    fn step(&mut self, at: StepAt, _: &mut Steer) -> Option<Metrics> {
        let scale = at.params.lr / self.config.lr;
        let lr = self.config.lr_at(at.step - at.offset) * scale;
        let mut metrics = SftTrainer::step(self, lr);
        let step = at.step + 1;
        if step.is_multiple_of(self.config.eval_every) || step == at.total {
            metrics.push((names::EVAL_LOSS, self.eval_loss()));
        }
        Some(metrics)
    }

    fn baseline(&self, _: &RunData) -> anyhow::Result<Metrics> {
        Ok(vec![(names::EVAL_LOSS, self.eval_loss())])
    }

    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn save(&self, dir: &Path, saved: &mut Saved) -> anyhow::Result<()> {
        hf::save_language_model(dir, &self.inference_model(), &self.tokenizer)?;
        saved.model = Some(self.save_state(dir)?);
        Ok(())
    }

    fn evaluate(&self, f: Finished) -> anyhow::Result<Metrics> {
        held_out_metrics(&self.inference_model(), &self.tokenizer, f.data, None)
    }

    fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    fn policy(&self) -> Option<CausalLm> {
        Some(self.inference_model())
    }
}

impl StageTrainer for RmTrainer {
    fn step(&mut self, at: StepAt, _: &mut Steer) -> Option<Metrics> {
        let scale = at.params.lr / self.config.lr;
        Some(RmTrainer::step(self, self.config.lr_at(at.step - at.offset) * scale))
    }

    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn save(&self, dir: &Path, saved: &mut Saved) -> anyhow::Result<()> {
        hf::save_scalar_model(dir, &self.inference_model(), &self.tokenizer)?;
        saved.model = Some(self.save_state(dir)?);
        Ok(())
    }

    /// Accuracy and calibration on held-out pairs (the reliability table
    /// saved as `rm_calibration.json`), and the version in `rounds.json`.
    fn evaluate(&self, f: Finished) -> anyhow::Result<Metrics> {
        let eval = RmTrainer::evaluate(self);
        crate::fsutil::write_atomic(
            &f.run.rm_calibration_path(),
            serde_json::to_string_pretty(&eval.calibration)?.as_bytes(),
        )?;
        Rounds::record_rm(f.run, f.checkpoint, f.init, self.train_pairs, f.run_pairs)?;
        Ok(vec![
            (names::EVAL_ACCURACY, eval.accuracy as f64),
            (names::EVAL_ECE, eval.calibration.ece as f64),
        ])
    }

    fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

impl StageTrainer for PpoTrainer {
    fn step(&mut self, _: StepAt, steer: &mut Steer) -> Option<Metrics> {
        PpoTrainer::step(self, steer)
    }

    fn baseline(&self, data: &RunData) -> anyhow::Result<Metrics> {
        held_out_metrics(&self.inference_policy(), StageTrainer::tokenizer(self), data, None)
    }

    fn live(&self) -> Option<&LiveParams> {
        Some(&self.params)
    }

    fn take_failures(&mut self) -> Vec<String> {
        std::mem::take(&mut self.failures)
    }

    fn live_mut(&mut self) -> Option<&mut LiveParams> {
        Some(&mut self.params)
    }

    fn save(&self, dir: &Path, saved: &mut Saved) -> anyhow::Result<()> {
        hf::save_language_model(dir, &self.inference_policy(), StageTrainer::tokenizer(self))?;
        saved.ppo = Some(self.save_state(dir)?);
        Ok(())
    }

    /// How far the policy moved from the reference on its own held-out
    /// answers, and the judge's held-out figures.
    fn evaluate(&self, f: Finished) -> anyhow::Result<Metrics> {
        let tokenizer = StageTrainer::tokenizer(self);
        held_out_metrics(&self.inference_policy(), tokenizer, f.data, Some(self.reference()))
    }

    fn tokenizer(&self) -> &Tokenizer {
        PpoTrainer::tokenizer(self).expect("a stage's PPO trains on text prompts")
    }

    fn policy(&self) -> Option<CausalLm> {
        Some(self.inference_policy())
    }

    fn reference_and_reward(&self) -> Option<(&CausalLm, &ScalarModel)> {
        Some((self.reference(), self.reward()))
    }
}

impl StageTrainer for CaiTrainer {
    /// SFT's step on the revisions.
    fn step(&mut self, at: StepAt, steer: &mut Steer) -> Option<Metrics> {
        StageTrainer::step(&mut self.sft, at, steer)
    }

    /// The held-out loss on revisions, and the starting policy's held-out
    /// figures (its harmful compliance and rudeness, on the world).
    fn baseline(&self, data: &RunData) -> anyhow::Result<Metrics> {
        let mut metrics = StageTrainer::baseline(&self.sft, data)?;
        metrics.extend(held_out_metrics(
            &self.sft.inference_model(),
            &self.sft.tokenizer,
            data,
            None,
        )?);
        Ok(metrics)
    }

    fn warnings(&self) -> &[String] {
        &self.sft.warnings
    }

    fn save(&self, dir: &Path, saved: &mut Saved) -> anyhow::Result<()> {
        StageTrainer::save(&self.sft, dir, saved)
    }

    /// The fine-tuned policy's held-out figures, the revisions' counts,
    /// and RL-CAI's pairs labelled by principle.
    fn evaluate(&self, f: Finished) -> anyhow::Result<Metrics> {
        let policy = self.sft.inference_model();
        let mut metrics = held_out_metrics(&policy, &self.sft.tokenizer, f.data, None)?;
        metrics.extend(self.revision_metrics());
        let pairs = self.label_feedback(&policy, &self.sft.tokenizer, &f.run.cai_pairs_path())?;
        metrics.push((names::CAI_FEEDBACK_PAIRS, pairs as f64));
        Ok(metrics)
    }

    fn tokenizer(&self) -> &Tokenizer {
        &self.sft.tokenizer
    }

    fn cai_view(&self) -> Option<CaiView> {
        Some(self.view.clone())
    }

    fn policy(&self) -> Option<CausalLm> {
        Some(self.sft.inference_model())
    }
}

impl StageTrainer for DpoTrainer {
    /// At the schedule's rate, rescaled by a live change to its peak, and
    /// at the live β.
    fn step(&mut self, at: StepAt, _: &mut Steer) -> Option<Metrics> {
        let scale = at.params.lr / self.config.lr;
        self.config.beta = at.params.kl.beta();
        Some(DpoTrainer::step(self, self.config.lr_at(at.step - at.offset) * scale))
    }

    /// The starting policy's held-out figures.
    fn baseline(&self, data: &RunData) -> anyhow::Result<Metrics> {
        held_out_metrics(self.reference(), &self.tokenizer, data, None)
    }

    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn save(&self, dir: &Path, saved: &mut Saved) -> anyhow::Result<()> {
        hf::save_language_model(dir, &self.inference_model(), &self.tokenizer)?;
        saved.model = Some(self.save_state(dir)?);
        Ok(())
    }

    /// How the implied reward orders held-out pairs, how far the policy
    /// moved from the reference on its own held-out answers, and the
    /// judge's held-out figures.
    fn evaluate(&self, f: Finished) -> anyhow::Result<Metrics> {
        let mut metrics = DpoTrainer::evaluate(self);
        let policy = self.inference_model();
        metrics.extend(held_out_metrics(
            &policy,
            &self.tokenizer,
            f.data,
            Some(self.reference()),
        )?);
        Ok(metrics)
    }

    fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    fn policy(&self) -> Option<CausalLm> {
        Some(self.inference_model())
    }
}

impl StageTrainer for GroupTrainer {
    fn step(&mut self, _: StepAt, steer: &mut Steer) -> Option<Metrics> {
        GroupTrainer::step(self, steer)
    }

    fn baseline(&self, data: &RunData) -> anyhow::Result<Metrics> {
        held_out_metrics(&self.inference_policy(), StageTrainer::tokenizer(self), data, None)
    }

    fn live(&self) -> Option<&LiveParams> {
        Some(&self.params)
    }

    fn live_mut(&mut self) -> Option<&mut LiveParams> {
        Some(&mut self.params)
    }

    fn take_failures(&mut self) -> Vec<String> {
        std::mem::take(&mut self.failures)
    }

    fn save(&self, dir: &Path, saved: &mut Saved) -> anyhow::Result<()> {
        hf::save_language_model(dir, &self.inference_policy(), StageTrainer::tokenizer(self))?;
        saved.group = Some(self.save_state(dir)?);
        Ok(())
    }

    /// As PPO's: the KL to the reference on its own held-out answers, and
    /// the judge's held-out figures.
    fn evaluate(&self, f: Finished) -> anyhow::Result<Metrics> {
        let tokenizer = StageTrainer::tokenizer(self);
        held_out_metrics(&self.inference_policy(), tokenizer, f.data, Some(self.reference()))
    }

    fn tokenizer(&self) -> &Tokenizer {
        GroupTrainer::tokenizer(self).expect("a stage's GRPO or RLOO trains on text prompts")
    }

    fn policy(&self) -> Option<CausalLm> {
        Some(self.inference_policy())
    }

    fn reference_and_reward(&self) -> Option<(&CausalLm, &ScalarModel)> {
        Some((self.reference(), self.reward()))
    }
}
