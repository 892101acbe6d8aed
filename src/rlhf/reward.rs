//! Reward-model training: the SFT model with its LM head replaced by a
//! scalar head, pooled at each sequence's last token, trained on preference
//! pairs with the Bradley–Terry loss: its sources' labelled pairs, or a
//! preference file in TRL's or HH-RLHF's format. Reports TRL's
//! reward-trainer metrics, held-out accuracy and calibration.

use std::path::PathBuf;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::data::{LabelledPair, Sources, Split, kept};
use super::epochs::Epochs;
use super::optim::GuardedAdamW;
use super::reward_math::{Calibration, bradley_terry_loss, calibration, pairwise_accuracy};
use super::schedule::warmup_cosine;
use super::shards;
use super::state::{ModelState, OPTIMIZER};
use crate::model::batch::{PaddedBatch, by_length_groups, pick};
use crate::model::scalar::Pooling;
use crate::model::{ScalarModel, Tokenizer, hf};
use crate::prefs::formats::{PreferencePair, read_file};
use crate::run::config::{at_least_one, fraction, positive};
use crate::run::names;

/// The `rm` section of a run config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmConfig {
    /// The model to start from; `None` takes the run's latest CAI checkpoint,
    /// else its latest SFT one.
    pub init: Option<PathBuf>,
    /// Optimizer steps.
    pub steps: usize,
    /// Pairs per step.
    pub batch_size: usize,
    /// Peak learning rate, after the warmup; cosine decay to lr/10.
    pub lr: f64,
    pub warmup_steps: usize,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// The gradients are rescaled to at most this global norm over every
    /// parameter, as TRL clips them. Above the reward model's usual norm
    /// (1 to 2 at this learning rate), so that clipping catches the spikes
    /// (the first steps') instead of shrinking every step, which cost
    /// held-out accuracy.
    pub max_grad_norm: f32,
    /// When a step's loss or gradients are not finite, also undo the
    /// update before it (a learning rate far too high gives a finite loss
    /// once and a NaN the step after). The weights before are computed
    /// from the moments, with no copy kept (at a learning rate above 1 the
    /// update keeps one). `false` only refuses the bad update.
    pub undo_last_update: bool,
    /// A preference file to train on (TRL or HH-RLHF JSON Lines, `.gz` or
    /// plain) instead of the sources' labelled pairs.
    pub data: Option<PathBuf>,
    /// Train on the pairs the CAI stage's critic labelled by principle
    /// (the run's `cai_pairs.jsonl`: RL-CAI) instead of the sources'
    /// pairs, holding out `eval_fraction` of them.
    pub constitution_pairs: bool,
    /// With `data` or `constitution_pairs`: the share of the pairs held out for accuracy and
    /// calibration (a seeded draw).
    pub eval_fraction: f64,
    /// Judge-labelled training pairs on training prompts.
    pub train_pairs: usize,
    /// Judge-labelled pairs on held-out prompts, for accuracy and calibration.
    pub eval_pairs: usize,
    /// Use the judge's score gap as the margin in the loss (Llama 2's margin loss).
    pub margin_from_judge: bool,
    /// Where the score is read: `Last` token (transformers' way, the
    /// default) or the `Mean` over the response's tokens. A mean-pooled
    /// checkpoint says so in its `config.json`, and PPO reads it that way.
    pub pooling: Pooling,
    /// TRL's `center_rewards_coefficient`: pulls rewards towards zero (0 = off).
    pub center_rewards_coefficient: f64,
    /// Bins of the reliability table over confidence in [0.5, 1].
    pub calibration_bins: usize,
    pub seed: u64,
}

impl Default for RmConfig {
    fn default() -> Self {
        Self {
            init: None,
            steps: 600,
            batch_size: 32,
            lr: 1e-3,
            warmup_steps: 20,
            weight_decay: 0.0,
            max_grad_norm: 5.0,
            undo_last_update: true,
            data: None,
            constitution_pairs: false,
            eval_fraction: 0.2,
            train_pairs: 8_000,
            eval_pairs: 400,
            margin_from_judge: false,
            pooling: Pooling::Last,
            center_rewards_coefficient: 0.01,
            calibration_bins: 10,
            seed: 0,
        }
    }
}

impl RmConfig {
    pub fn validate(&self) -> Result<(), String> {
        at_least_one(&[
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("train_pairs", self.train_pairs),
            ("eval_pairs", self.eval_pairs),
            ("calibration_bins", self.calibration_bins),
        ])?;
        positive(&[("lr", self.lr), ("max_grad_norm", self.max_grad_norm as f64)], false)?;
        positive(&[("center_rewards_coefficient", self.center_rewards_coefficient)], true)?;
        fraction("eval_fraction", self.eval_fraction)?;
        if self.data.is_some() && self.margin_from_judge {
            return Err("margin_from_judge: a preference file has no judge scores; set it to false with `data`".into());
        }
        if self.data.is_some() && self.constitution_pairs {
            return Err(
                "constitution_pairs: the pairs come from the CAI stage or from `data`, not both; set `data: None`"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn lr_at(&self, step: usize) -> f64 {
        warmup_cosine(step, self.steps, self.warmup_steps, self.lr, self.lr * 0.1)
    }
}

/// A pair as token ids: the prompt followed by each response. No EOS is
/// appended, so the pooled position is the response's last token, as
/// transformers pools when the pad token is EOS.
pub struct TokenPair {
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
    /// Where each side's response starts (its prompt's length, less what
    /// truncation cut), for mean pooling.
    pub chosen_start: usize,
    pub rejected_start: usize,
    /// The judge's score gap, the margin when `margin_from_judge` (0 for a file's pairs).
    pub gap: f32,
}

/// Tokenizes each side as the model reads it (the prompt laid out by its
/// chat format, then the response); a sequence longer than the model's
/// context keeps its end, where the two sides differ.
fn tokenize(tokenizer: &Tokenizer, pair: &LabelledPair, context: usize) -> Result<TokenPair, String> {
    let chat = tokenizer.chat();
    let prompt = chat.prompt_text(&pair.prompt)?;
    let prompt_len = tokenizer.try_encode(&prompt)?.len();
    let encode = |response: &str| -> Result<(Vec<u32>, usize), String> {
        let text = format!("{prompt}{}", chat.response_text(&pair.prompt, response)?);
        let ids = tokenizer.try_encode(&text)?;
        let cut = ids.len().saturating_sub(context);
        Ok((ids[cut..].to_vec(), prompt_len.saturating_sub(cut)))
    };
    let ((chosen, chosen_start), (rejected, rejected_start)) = (encode(&pair.chosen)?, encode(&pair.rejected)?);
    Ok(TokenPair {
        chosen,
        rejected,
        chosen_start,
        rejected_start,
        gap: pair.gap,
    })
}

/// Every pair as tokens; a pair that cannot be laid out or tokenized is
/// left out with a warning naming it (`what` and its number).
fn tokenize_all(
    tokenizer: &Tokenizer,
    pairs: &[LabelledPair],
    context: usize,
    what: &str,
) -> (Vec<TokenPair>, Vec<String>) {
    kept(pairs, what, |pair| tokenize(tokenizer, pair, context))
}

/// Training pairs, held-out pairs, and a warning per line skipped.
type FilePairs = (Vec<TokenPair>, Vec<TokenPair>, Vec<String>);

/// A preference file's pairs, split by a seeded draw into training and
/// held-out pairs. Lines that cannot be read are skipped, each with a
/// warning naming the file and line.
fn file_pairs(
    path: &std::path::Path,
    config: &RmConfig,
    tokenizer: &Tokenizer,
    context: usize,
) -> anyhow::Result<FilePairs> {
    // Conversational lines are laid out as the model reads them.
    let file = read_file(path, tokenizer.chat())?;
    let mut warnings: Vec<String> = file.errors.iter().map(|e| e.skipped(path)).collect();
    let labelled: Vec<LabelledPair> = file.pairs.iter().map(LabelledPair::from).collect();
    let (mut pairs, skipped) = tokenize_all(tokenizer, &labelled, context, &format!("{} pair", path.display()));
    warnings.extend(skipped);
    let eval_count = (pairs.len() as f64 * config.eval_fraction).round() as usize;
    if eval_count == 0 || eval_count == pairs.len() {
        anyhow::bail!(
            "{}: {} usable pairs cannot be split into training and held-out pairs with eval_fraction {}",
            path.display(),
            pairs.len(),
            config.eval_fraction
        );
    }
    pairs.shuffle(&mut ChaCha8Rng::seed_from_u64(config.seed ^ 0x5b117));
    let train = pairs.split_off(eval_count);
    Ok((train, pairs, warnings))
}

/// Rewards of whole sequences, `[n]`, pooled as the model pools: at each
/// one's last token, or over its response (from `starts[i]` on). Sequences
/// of similar length go through the model together (`length_groups`), each
/// group padded only to its own longest; the rewards come back in `seqs`'
/// order.
pub fn score_sequences(model: &ScalarModel, seqs: &[Vec<u32>], starts: &[usize], pad_id: u32) -> Tensor<1> {
    let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
    by_length_groups(&lens, |group| {
        score_padded(model, &pick(seqs, group), &pick(starts, group), pad_id)
    })
}

/// `score_sequences` on one batch padded to its longest sequence.
fn score_padded(model: &ScalarModel, seqs: &[Vec<u32>], starts: &[usize], pad_id: u32) -> Tensor<1> {
    let device = model.score.val().device();
    let batch = PaddedBatch::right_padded(seqs, pad_id);
    let spans: Vec<(usize, usize)> = starts.iter().copied().zip(batch.last_real()).collect();
    model.pooled(
        batch.ids_tensor(&device),
        batch.positions_tensor(&device),
        batch.mask_tensor(&device),
        &spans,
    )
}

/// Both sides of `pairs` as one batch, chosen first, with their
/// responses' starts.
fn both_sides(pairs: &[TokenPair]) -> (Vec<Vec<u32>>, Vec<usize>) {
    let seqs = pairs
        .iter()
        .map(|p| p.chosen.clone())
        .chain(pairs.iter().map(|p| p.rejected.clone()));
    let starts = pairs
        .iter()
        .map(|p| p.chosen_start)
        .chain(pairs.iter().map(|p| p.rejected_start));
    (seqs.collect(), starts.collect())
}

/// A training step's loss and the rewards it gave each side.
pub struct PairStep {
    pub loss: f32,
    pub chosen: Vec<f32>,
    pub rejected: Vec<f32>,
}

/// The Bradley–Terry loss's gradient over `pairs` (with each pair's gap as
/// its margin when `use_margin`). The pairs are split into shards that run
/// in parallel on the CPU (see `shards`); chosen and rejected of a shard go
/// through the model as one batch.
pub fn pair_gradients(
    model: &ScalarModel,
    pairs: &[TokenPair],
    use_margin: bool,
    center: f64,
    pad_id: u32,
) -> (PairStep, GradientsParams) {
    let n = shards::count(&model.score.val().device(), pairs.len());
    let ranges = shards::ranges(pairs.len(), n);
    let (grads, parts) = shards::gradients(model, n, |model, i| {
        let shard = &pairs[ranges[i].clone()];
        let k = shard.len();
        let (seqs, starts) = both_sides(shard);
        let rewards = score_sequences(model, &seqs, &starts, pad_id);
        let device = rewards.device();
        let margin = use_margin
            .then(|| Tensor::<1>::from_data(TensorData::new(shard.iter().map(|p| p.gap).collect(), [k]), &device));
        let (chosen, rejected) = (rewards.clone().narrow(0, 0, k), rewards.clone().narrow(0, k, k));
        // The loss is a mean over pairs: a shard's share is its pairs'.
        let loss = bradley_terry_loss(chosen, rejected, margin, center) * (k as f64 / pairs.len() as f64);
        let r = rewards.detach().into_data().try_to_vec::<f32>().expect("f32 rewards");
        (loss.clone(), (loss.into_scalar::<f32>(), r))
    });
    let mut step = PairStep {
        loss: 0.0,
        chosen: Vec::with_capacity(pairs.len()),
        rejected: Vec::with_capacity(pairs.len()),
    };
    for (loss, r) in parts {
        let (c, rj) = r.split_at(r.len() / 2);
        step.loss += loss;
        step.chosen.extend_from_slice(c);
        step.rejected.extend_from_slice(rj);
    }
    (step, grads)
}

/// Held-out accuracy and calibration.
#[derive(Clone, Debug, Serialize)]
pub struct RmEval {
    pub accuracy: f32,
    pub calibration: Calibration,
}

pub struct RmTrainer {
    pub config: RmConfig,
    pub model: ScalarModel,
    pub tokenizer: Tokenizer,
    optim: GuardedAdamW<ScalarModel>,
    train: Epochs<TokenPair>,
    eval: Vec<TokenPair>,
    pad: u32,
    pub step: usize,
    /// Pairs trained on, all sources.
    pub train_pairs: usize,
    /// Lines of the preference file that were skipped, each naming its line.
    pub warnings: Vec<String>,
}

impl RmTrainer {
    /// A reward model initialised from the language model in `init` with a
    /// fresh scalar head, trained on the configured pairs and `extra` (the
    /// run's own judgments).
    pub fn new(
        config: &RmConfig,
        init: &std::path::Path,
        extra: &[PreferencePair],
        sources: &dyn Sources,
        device: &Device,
    ) -> anyhow::Result<Self> {
        config.validate().map_err(|e| anyhow::anyhow!("rm.{e}"))?;
        let (mut model, tokenizer) = hf::load_scalar_model(init, &device.clone().autodiff(), Some(config.seed))?;
        model.pooling = config.pooling;
        let pad = tokenizer.pad_id().unwrap_or(0);
        let context = model.transformer.context();
        let (mut train, eval, mut warnings) = match &config.data {
            Some(path) => file_pairs(path, config, &tokenizer, context)?,
            None => {
                let mut warnings = Vec::new();
                let mut pairs = |split, n, seed, what| {
                    let (pairs, skipped) =
                        tokenize_all(&tokenizer, &sources.preference_pairs(split, n, seed), context, what);
                    warnings.extend(skipped);
                    pairs
                };
                let train = pairs(Split::Train, config.train_pairs, config.seed, "training pair");
                let eval = pairs(Split::HeldOut, config.eval_pairs, config.seed ^ 0xe7a1, "held-out pair");
                (train, eval, warnings)
            }
        };
        let extra: Vec<LabelledPair> = extra.iter().map(LabelledPair::from).collect();
        let (judged, skipped) = tokenize_all(&tokenizer, &extra, context, "judged pair");
        train.extend(judged);
        warnings.extend(skipped);
        let train_pairs = train.len();
        let train = Epochs::new(train, config.seed);
        let optim = GuardedAdamW::new(config.weight_decay, config.max_grad_norm, config.undo_last_update);
        Ok(Self {
            config: config.clone(),
            model,
            tokenizer,
            optim,
            train,
            eval,
            pad,
            step: 0,
            train_pairs,
            warnings,
        })
    }

    /// One optimizer step; TRL's reward-trainer metrics.
    pub fn step(&mut self, lr: f64) -> Vec<(&'static str, f64)> {
        let pairs = self.train.next(self.config.batch_size);
        let n = pairs.len();
        let (out, grads) = pair_gradients(
            &self.model,
            pairs,
            self.config.margin_from_judge,
            self.config.center_rewards_coefficient,
            self.pad,
        );
        let loss_value = out.loss as f64;
        let norm = self.optim.step(lr, &mut self.model, loss_value, grads);
        self.step += 1;

        let (c, rj) = (&out.chosen, &out.rejected);
        let r: Vec<f32> = c.iter().chain(rj).copied().collect();
        let margin = c.iter().zip(rj).map(|(a, b)| (a - b) as f64).sum::<f64>() / n as f64;
        vec![
            (names::LOSS, loss_value),
            (names::ACCURACY, pairwise_accuracy(c, rj) as f64),
            (names::MARGIN, margin),
            (
                names::MEAN_REWARD,
                r.iter().map(|&x| x as f64).sum::<f64>() / r.len() as f64,
            ),
            (
                names::MIN_REWARD,
                r.iter().copied().fold(f32::INFINITY, f32::min) as f64,
            ),
            (
                names::MAX_REWARD,
                r.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64,
            ),
            (names::GRAD_NORM, norm),
            (names::LR, lr),
        ]
    }

    /// Accuracy and calibration on the held-out pairs, without gradient.
    pub fn evaluate(&self) -> RmEval {
        let model = self.model.valid();
        let (mut chosen, mut rejected) = (Vec::new(), Vec::new());
        for chunk in self.eval.chunks(64) {
            let (seqs, starts) = both_sides(chunk);
            let r = score_sequences(&model, &seqs, &starts, self.pad)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 rewards");
            chosen.extend_from_slice(&r[..chunk.len()]);
            rejected.extend_from_slice(&r[chunk.len()..]);
        }
        RmEval {
            accuracy: pairwise_accuracy(&chosen, &rejected),
            calibration: calibration(&chosen, &rejected, self.config.calibration_bins),
        }
    }

    /// Writes the optimizer's state into a checkpoint directory (which
    /// holds the model) and returns the trainer's place.
    pub fn save_state(&self, dir: &std::path::Path) -> anyhow::Result<ModelState> {
        Ok(ModelState {
            step: self.step,
            ids: self.optim.save(&self.model, &dir.join(OPTIMIZER))?,
            tokens_seen: 0,
        })
    }

    /// Continues from a checkpoint `save_state` wrote, this trainer having
    /// been built from the checkpoint's model: the optimizer's moments
    /// back, and the data order replayed to the step reached.
    pub fn restore(&mut self, dir: &std::path::Path, state: &ModelState) -> anyhow::Result<()> {
        self.model = self.optim.load(self.model.clone(), &state.ids, &dir.join(OPTIMIZER))?;
        for _ in 0..state.step {
            self.train.next(self.config.batch_size);
        }
        self.step = state.step;
        Ok(())
    }

    pub fn inference_model(&self) -> ScalarModel {
        self.model.valid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::batch::length_groups;
    use crate::model::weights::SeededInit;
    use crate::model::{CausalLm, Gpt2, Gpt2Config};

    /// Sixteen sequences of 3 to 18 tokens go through the model as two
    /// groups of eight; each reward is the one that sequence gets alone,
    /// in the order given.
    #[test]
    fn grouped_scores_are_each_sequences_own() {
        let device = Device::flex();
        let gpt2 = Gpt2::build(&Gpt2Config::new(32, 32, 16, 2, 2), &mut SeededInit::new(5), &device).unwrap();
        let model = ScalarModel::build(CausalLm::from(gpt2), &mut SeededInit::new(6), &device).unwrap();
        // Lengths 18, 3, 17, 4, …: long and short alternate.
        let seqs: Vec<Vec<u32>> = (0..16u32)
            .map(|i| {
                let len = if i % 2 == 0 { 18 - i / 2 } else { 3 + i / 2 };
                (0..len).map(|j| 1 + (i * 5 + j * 3) % 31).collect()
            })
            .collect();
        let starts: Vec<usize> = (0..16).map(|i| i % 3).collect();
        let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
        assert_eq!(length_groups(&lens).len(), 2);
        let grouped = score_sequences(&model, &seqs, &starts, 0)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (i, seq) in seqs.iter().enumerate() {
            let alone: f32 = score_padded(&model, std::slice::from_ref(seq), &starts[i..=i], 0).into_scalar();
            assert!(
                (grouped[i] - alone).abs() < 1e-5,
                "sequence {i}: {} vs {alone}",
                grouped[i]
            );
        }
    }
}
