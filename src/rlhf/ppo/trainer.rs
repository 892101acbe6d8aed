//! One PPO iteration: sample a batch of responses from the policy, score
//! them (reference log-probs, values, reward-model scores), shape rewards
//! with the KL penalty, estimate advantages with GAE, then several epochs
//! of minibatch updates of the policy and the value model. Metrics use
//! TRL's names. Learning rate, temperature and β come from the live
//! parameters (`live.rs`), which a steering callback may change between
//! optimizer steps.

use std::path::Path;
use std::sync::Arc;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::advantage::{gae, masked_mean, masked_whiten, shaped_rewards};
use super::config::PpoConfig;
use super::live::{LiveParams, Models, Steer, StepPoint};
use super::loss::{policy_loss, value_loss};
use super::rollout::{QueryResponse, Scorers, padded, response_logprobs_and_entropy, response_values};
use super::stats::StepStats;
use crate::model::batch::pick;
use crate::model::{CausalLm, ScalarModel, Tokenizer, hf};
use crate::rlhf::data::{Evaluator, Sources};
pub use crate::rlhf::online::Prompts;
use crate::rlhf::online::{minibatches, sample, without_eos};
use crate::rlhf::optim::GuardedAdamW;
use crate::rlhf::shards;
use crate::run::names;

mod resume;
pub use resume::PpoState;

/// A scored batch of episodes, per episode on the host.
struct Batch {
    queries: Vec<Vec<u32>>,
    responses: Vec<Vec<u32>>,
    logprobs: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    advantages: Vec<Vec<f32>>,
    returns: Vec<Vec<f32>>,
}

pub struct PpoTrainer {
    pub config: PpoConfig,
    pub policy: CausalLm,
    pub value: ScalarModel,
    reference: CausalLm,
    reward: ScalarModel,
    prompts: Prompts,
    /// The next of `Prompts::Tokens` to take.
    cursor: usize,
    policy_opt: GuardedAdamW<CausalLm>,
    value_opt: GuardedAdamW<ScalarModel>,
    pub params: LiveParams,
    rng: ChaCha8Rng,
    /// Ends a response; `None` samples every response to full length.
    eos: Option<u32>,
    pad: u32,
    pub iteration: usize,
    pub episodes: usize,
    pub optimizer_steps: usize,
    /// What failed since last asked (the evaluator's calls), for the person.
    pub failures: Vec<String>,
}

impl PpoTrainer {
    /// PPO on the sources' training prompts from the policy in
    /// `policy_dir` against the reward model in `reward_dir`.
    pub fn new(
        config: &PpoConfig,
        policy_dir: &Path,
        reward_dir: &Path,
        data: (Arc<dyn Sources>, Option<Arc<dyn Evaluator>>),
        device: &Device,
    ) -> anyhow::Result<Self> {
        Self::continued(config, policy_dir, policy_dir, reward_dir, data, device)
    }

    /// PPO from `policy_dir` (a later round continues from its last policy)
    /// with the KL penalty still to the frozen model in `reference_dir`.
    pub fn continued(
        config: &PpoConfig,
        policy_dir: &Path,
        reference_dir: &Path,
        reward_dir: &Path,
        (sources, evaluator): (Arc<dyn Sources>, Option<Arc<dyn Evaluator>>),
        device: &Device,
    ) -> anyhow::Result<Self> {
        config.validate().map_err(|e| anyhow::anyhow!("ppo.{e}"))?;
        let train = device.clone().autodiff();
        let (policy, tokenizer) = hf::load_language_model(policy_dir, &train)?;
        let (value, _) = hf::load_scalar_model(reward_dir, &train, None)?;
        let eos = tokenizer
            .eos_id()
            .ok_or_else(|| anyhow::anyhow!("{}: the model names no end-of-sequence token", policy_dir.display()))?;
        let pad = tokenizer.pad_id().unwrap_or(eos);
        let prompts = Prompts::text((sources, evaluator), tokenizer, "PPO")?;
        let mut trainer = Self::from_models(config, policy, value, prompts, Some(eos), pad);
        if reference_dir != policy_dir {
            trainer.reference = hf::load_language_model(reference_dir, device)?.0;
        }
        Ok(trainer)
    }

    /// PPO from models already on a training (autodiff) device. The frozen
    /// reference and reward model are the starting policy and value model
    /// without gradient: training replaces the trained models' tensors,
    /// never these.
    pub fn from_models(
        config: &PpoConfig,
        policy: CausalLm,
        value: ScalarModel,
        prompts: Prompts,
        eos: Option<u32>,
        pad: u32,
    ) -> Self {
        let reference = policy.valid();
        let reward = value.valid();
        Self {
            config: config.clone(),
            policy,
            value,
            reference,
            reward,
            prompts,
            cursor: 0,
            policy_opt: GuardedAdamW::new(0.0, config.max_grad_norm, config.undo_last_update),
            value_opt: GuardedAdamW::new(0.0, config.max_grad_norm, config.undo_last_update),
            params: LiveParams::from_config(config),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            eos,
            pad,
            iteration: 0,
            episodes: 0,
            optimizer_steps: 0,
            failures: Vec::new(),
        }
    }

    /// The prompts' tokenizer (`None` on token prompts).
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.prompts.tokenizer()
    }

    /// Whether a sampled response stopped at EOS (rather than at the length cap).
    fn ended(&self, response: &[u32]) -> bool {
        self.eos.is_some_and(|eos| response.last() == Some(&eos))
    }

    /// Samples and scores a batch; returns it with the rollout metrics.
    fn rollout(&mut self, temperature: f32) -> (Batch, Vec<(&'static str, f64)>) {
        let n = self.config.batch_size;
        let (queries, prompts) = self.prompts.draw(n, &mut self.rng, &mut self.cursor);
        let policy = self.policy.valid();
        let seed = self.config.seed.wrapping_add(self.iteration as u64);
        let sizes = (self.config.max_new_tokens, temperature);
        let generated = sample(&policy, &queries, sizes, (self.eos, self.pad), seed);
        let responses = generated.tokens;
        let value = self.value.valid();
        let scorers = Scorers {
            reference: &self.reference,
            value: Some(&value),
            reward: &self.reward,
            eos: self.eos,
            pad: self.pad,
        };
        let fixed = scorers.score(&queries, &responses, temperature);

        let kl_coef = self.params.kl.beta();
        let beta = kl_coef as f32;
        let mut shaped = Vec::with_capacity(n);
        for (i, response) in responses.iter().enumerate() {
            let len = response.len();
            let ended = self.ended(response);
            // The sampler's log-probs are the policy's at this temperature
            // (tested equal to a recomputation), so no extra forward pass.
            shaped.push(shaped_rewards(
                fixed.scores[i],
                &generated.logprobs[i],
                &fixed.reference[i],
                &vec![1.0; len],
                beta,
                self.config.kl_estimator,
                ended,
                self.config.missing_eos_penalty,
            ));
        }
        let mut rewards: Vec<Vec<f32>> = shaped.iter().map(|s| s.rewards.clone()).collect();
        if self.config.whiten_rewards {
            rewards = whiten_rows(&rewards, false);
        }
        let (mut advantages, mut returns) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (rw, v) in rewards.iter().zip(&fixed.values) {
            let (a, ret) = gae(rw, v, &vec![1.0; rw.len()], self.config.gamma, self.config.lam);
            advantages.push(a);
            returns.push(ret);
        }
        let advantages = whiten_rows(&advantages, true);

        let kl_sum: Vec<f32> = shaped.iter().map(|s| s.kl.iter().sum()).collect();
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
        let mean_kl = mean(&kl_sum);
        let final_scores: Vec<f32> = shaped.iter().map(|s| s.score).collect();
        let non_score: Vec<f32> = kl_sum.iter().map(|k| -beta * k).collect();
        let entropy: Vec<f32> = generated.logprobs.iter().map(|l| -l.iter().sum::<f32>()).collect();
        let mut metrics = vec![
            (names::KL, mean_kl),
            (names::SEQUENCE_ENTROPY, mean(&entropy)),
            (names::NON_SCORE_REWARD, mean(&non_score)),
            (names::RLHF_REWARD, mean(&final_scores) + mean(&non_score)),
            (names::SCORES, mean(&final_scores)),
            (names::KL_COEF, kl_coef),
            (
                names::NUM_EOS_TOKENS,
                responses.iter().filter(|r| self.ended(r)).count() as f64,
            ),
        ];
        let shown = without_eos(&responses, self.eos);
        let at = (self.config.seed, self.iteration);
        metrics.extend(self.prompts.report(&policy, &prompts, &shown, at, &mut self.failures));
        self.params.kl.update(mean_kl, n);
        let batch = Batch {
            queries,
            responses,
            logprobs: generated.logprobs,
            values: fixed.values,
            advantages,
            returns,
        };
        (batch, metrics)
    }

    /// One rollout and its PPO epochs; `steer` sees (and may change) the
    /// live parameters before the rollout and before every optimizer step.
    /// Returns the iteration's metrics, or `None` when `steer` stopped it
    /// part way (the optimizer steps already taken stay taken).
    pub fn step(&mut self, steer: &mut Steer) -> Option<Vec<(&'static str, f64)>> {
        let point = StepPoint::Rollout {
            iteration: self.iteration,
        };
        self.steer_at(steer, point)?;
        let temperature = self.params.temperature;
        let (batch, mut metrics) = self.rollout(temperature);
        let n = batch.queries.len();
        let mut steps = Vec::new();
        let (epochs, size) = (self.config.ppo_epochs, self.config.minibatch_size);
        for chunk in minibatches(n, epochs, size, &mut self.rng) {
            let point = StepPoint::Optimizer {
                iteration: self.iteration,
                step: self.optimizer_steps,
            };
            self.steer_at(steer, point)?;
            let lr = self.params.lr;
            let (stats, mut grads) = self.minibatch_gradients(&batch, &chunk, temperature);
            let policy_grads = shards::take(&mut grads, &self.policy);
            let value_grads = shards::take(&mut grads, &self.value);
            let loss = stats.policy_loss + stats.value_loss;
            // The two models' steps are independent; side by side, one
            // model's small per-parameter passes overlap the other's.
            let (policy_norm, value_norm) = rayon::join(
                || self.policy_opt.step(lr, &mut self.policy, loss, policy_grads),
                || self.value_opt.step(lr, &mut self.value, loss, value_grads),
            );
            self.optimizer_steps += 1;
            steps.push(StepStats {
                grad_norm: policy_norm.hypot(value_norm),
                ..stats
            });
        }
        self.iteration += 1;
        self.episodes += n;
        metrics.extend(StepStats::averaged(&steps));
        metrics.push((names::LR, self.params.lr));
        metrics.push((names::TEMPERATURE, temperature as f64));
        metrics.push((names::EPISODES, self.episodes as f64));
        Some(metrics)
    }

    /// One minibatch's loss (policy plus `vf_coef` × value) and its
    /// gradient for both models. The episodes are split into shards that
    /// run in parallel on the CPU (see `shards`); each shard's losses and
    /// statistics are means over its response tokens, weighted by its
    /// share of the minibatch's (all but the gradient norm).
    fn minibatch_gradients(&self, batch: &Batch, chunk: &[usize], temperature: f32) -> (StepStats, GradientsParams) {
        let device = self.policy.device();
        let n = shards::count(&device, chunk.len());
        let ranges = shards::ranges(chunk.len(), n);
        let tokens: usize = chunk.iter().map(|&i| batch.responses[i].len()).sum();
        let (pad_id, config) = (self.pad, &self.config);
        let models = (self.policy.clone(), self.value.clone());
        let (grads, parts) = shards::gradients(&models, n, |(policy, value), s| {
            let rows = &chunk[ranges[s].clone()];
            let (queries, responses) = (pick(&batch.queries, rows), pick(&batch.responses, rows));
            let share = responses.iter().map(Vec::len).sum::<usize>() as f32 / tokens.max(1) as f32;
            let qr = QueryResponse::new(&queries, &responses, pad_id);
            let pad = |values: &Vec<Vec<f32>>| padded(rows.iter().map(|&i| &values[i]), qr.r, &device);
            let mask = qr.mask_tensor(&device);

            let (logp, entropy) = response_logprobs_and_entropy(policy, &qr, temperature);
            let pl = policy_loss(
                logp,
                pad(&batch.logprobs),
                pad(&batch.advantages),
                mask.clone(),
                config.cliprange,
            );
            let values = response_values(value, &qr);
            let vl = value_loss(
                values,
                pad(&batch.values),
                pad(&batch.returns),
                mask,
                config.cliprange_value,
            );
            let entropy = entropy.detach().into_data().try_to_vec::<f32>().expect("f32");
            let stats = StepStats {
                approx_kl: pl.approxkl.into(),
                clip_fraction: pl.clipfrac.into(),
                policy_loss: pl.loss.clone().into_scalar::<f32>().into(),
                value_loss: vl.loss.clone().into_scalar::<f32>().into(),
                value_clip_fraction: vl.clipfrac.into(),
                entropy: masked_mean(&entropy, &qr.mask).into(),
                ratio: pl.ratio.into(),
                grad_norm: 0.0,
            };
            let loss = (pl.loss + vl.loss * config.vf_coef) * share;
            (loss, stats * f64::from(share))
        });
        let stats = parts.into_iter().fold(StepStats::default(), |a, b| a + b);
        (stats, grads)
    }

    /// Hands the live parameters and the models to `steer` at `point`;
    /// `None` when it stops the iteration there.
    fn steer_at(&mut self, steer: &mut Steer, point: StepPoint) -> Option<()> {
        let models = Models {
            policy: &self.policy,
            reference: &self.reference,
            reward: &self.reward,
            tokenizer: self.prompts.tokenizer(),
            steps_per_iteration: self.config.steps_per_iteration(),
        };
        steer(&mut self.params, point, &models).continue_value()
    }

    pub fn inference_policy(&self) -> CausalLm {
        self.policy.valid()
    }

    /// The frozen policy the KL penalty is measured against.
    pub fn reference(&self) -> &CausalLm {
        &self.reference
    }

    /// The frozen reward model.
    pub fn reward(&self) -> &ScalarModel {
        &self.reward
    }
}

/// Whitens every entry of every row together (rows are one batch).
fn whiten_rows(rows: &[Vec<f32>], shift_mean: bool) -> Vec<Vec<f32>> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let white = masked_whiten(&flat, &vec![1.0; flat.len()], shift_mean);
    let mut out = Vec::with_capacity(rows.len());
    let mut start = 0;
    for row in rows {
        out.push(white[start..start + row.len()].to_vec());
        start += row.len();
    }
    out
}
