//! One GRPO or RLOO iteration: draw prompts, sample K responses to each
//! from the policy, score them with the reward model and take each
//! response's advantage against its own group (no value model), then
//! `epochs` passes of minibatch updates of the clipped objective. Metrics
//! use TRL's names, with the per-response KL to the reference under PPO's
//! name (`objective/kl`) so the methods share a KL axis. Learning rate,
//! temperature, β and K are live, as PPO's parameters are.

use std::path::Path;
use std::sync::Arc;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::advantages::{group_advantages, leave_one_out, mean_std};
use super::aggregation::{Normalisers, shard_weight};
use super::config::{GroupConfig, GroupMethod};
use super::loss::{grpo_loss, rloo_loss};
use crate::model::batch::pick;
use crate::model::{CausalLm, ScalarModel, Tokenizer, hf};
use crate::rlhf::data::{Evaluator, Sources};
use crate::rlhf::online::{Prompts, mean, minibatches, sample, without_eos};
use crate::rlhf::optim::GuardedAdamW;
use crate::rlhf::ppo::advantage::{masked_mean, masked_whiten};
use crate::rlhf::ppo::kl_control::KlControl;
use crate::rlhf::ppo::live::{LiveParams, Models, Steer, StepPoint};
use crate::rlhf::ppo::rollout::{FixedScores, QueryResponse, Scorers, padded, response_logprobs_and_entropy};
use crate::rlhf::shards;
use crate::rlhf::state::{OPTIMIZER, RngState};
use crate::run::names;

/// A sampled batch, per response on the host; groups are consecutive.
struct Batch {
    queries: Vec<Vec<u32>>,
    responses: Vec<Vec<u32>>,
    /// The sampler's log-probs (the policy's when it sampled).
    logprobs: Vec<Vec<f32>>,
    reference: Vec<Vec<f32>>,
    advantages: Vec<f32>,
    /// Response tokens in the whole batch (DAPO's normaliser).
    tokens: usize,
}

/// What one optimizer step reports (a shard's, weighted, until added).
#[derive(Clone, Copy, Debug, Default)]
struct StepStats {
    loss: f64,
    clip_low: f64,
    clip_high: f64,
    entropy: f64,
    kl: f64,
    grad_norm: f64,
}

impl StepStats {
    fn add(self, o: Self) -> Self {
        Self {
            loss: self.loss + o.loss,
            clip_low: self.clip_low + o.clip_low,
            clip_high: self.clip_high + o.clip_high,
            entropy: self.entropy + o.entropy,
            kl: self.kl + o.kl,
            grad_norm: self.grad_norm + o.grad_norm,
        }
    }

    fn scaled(self, k: f64) -> Self {
        Self {
            loss: self.loss * k,
            clip_low: self.clip_low * k,
            clip_high: self.clip_high * k,
            entropy: self.entropy * k,
            kl: self.kl * k,
            grad_norm: self.grad_norm * k,
        }
    }
}

pub struct GroupTrainer {
    pub method: GroupMethod,
    pub config: GroupConfig,
    pub policy: CausalLm,
    reference: CausalLm,
    reward: ScalarModel,
    prompts: Prompts,
    /// The next of `Prompts::Tokens` to take.
    cursor: usize,
    opt: GuardedAdamW<CausalLm>,
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

/// A checkpoint's counters, generator and live parameters, and the
/// identities the optimizer knows the parameters by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub iteration: usize,
    pub episodes: usize,
    pub optimizer_steps: usize,
    pub cursor: usize,
    pub params: LiveParams,
    pub rng: RngState,
    pub policy_ids: Vec<u64>,
}

impl GroupTrainer {
    /// The method from the policy in `policy_dir` against the reward model
    /// in `reward_dir`, with the KL to the frozen model in `reference_dir`.
    pub fn new(
        method: GroupMethod,
        config: &GroupConfig,
        (policy_dir, reference_dir, reward_dir): (&Path, &Path, &Path),
        data: (Arc<dyn Sources>, Option<Arc<dyn Evaluator>>),
        device: &Device,
    ) -> anyhow::Result<Self> {
        let section = method.name().to_lowercase();
        config.validate().map_err(|e| anyhow::anyhow!("{section}.{e}"))?;
        let train = device.clone().autodiff();
        let (policy, tokenizer) = hf::load_language_model(policy_dir, &train)?;
        let (reward, _) = hf::load_scalar_model(reward_dir, device, None)?;
        let eos = tokenizer
            .eos_id()
            .ok_or_else(|| anyhow::anyhow!("{}: the model names no end-of-sequence token", policy_dir.display()))?;
        let pad = tokenizer.pad_id().unwrap_or(eos);
        let prompts = Prompts::text(data, tokenizer, method.name())?;
        let mut trainer = Self::from_models(method, config, policy, reward, prompts, Some(eos), pad);
        if reference_dir != policy_dir {
            trainer.reference = hf::load_language_model(reference_dir, device)?.0;
        }
        Ok(trainer)
    }

    /// The method from models already loaded: `policy` on a training
    /// (autodiff) device, its starting weights kept frozen as the reference.
    pub fn from_models(
        method: GroupMethod,
        config: &GroupConfig,
        policy: CausalLm,
        reward: ScalarModel,
        prompts: Prompts,
        eos: Option<u32>,
        pad: u32,
    ) -> Self {
        let params = LiveParams {
            lr: config.lr,
            temperature: config.temperature,
            kl: KlControl::Fixed {
                beta: config.beta_for(method),
            },
            group_size: Some(config.group_size),
        };
        Self {
            method,
            config: config.clone(),
            reference: policy.valid(),
            policy,
            reward,
            prompts,
            cursor: 0,
            opt: GuardedAdamW::new(0.0, config.max_grad_norm, config.undo_last_update),
            params,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            eos,
            pad,
            iteration: 0,
            episodes: 0,
            optimizer_steps: 0,
            failures: Vec::new(),
        }
    }

    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.prompts.tokenizer()
    }

    fn group_size(&self) -> usize {
        self.params.group_size.unwrap_or(self.config.group_size)
    }

    fn ended(&self, response: &[u32]) -> bool {
        self.eos.is_some_and(|eos| response.last() == Some(&eos))
    }

    /// Samples K responses to each drawn prompt and scores them; returns
    /// the batch with the rollout's metrics.
    fn rollout(&mut self, temperature: f32) -> (Batch, Vec<(&'static str, f64)>) {
        let k = self.group_size();
        let (drawn, asked) = self
            .prompts
            .draw(self.config.prompts_per_iteration, &mut self.rng, &mut self.cursor);
        let (queries, asked) = (repeated(drawn, k), repeated(asked, k));
        let policy = self.policy.valid();
        let seed = self.config.seed.wrapping_add(self.iteration as u64);
        let sizes = (self.config.max_new_tokens, temperature);
        let generated = sample(&policy, &queries, sizes, (self.eos, self.pad), seed);
        let responses = generated.tokens;
        let scorers = Scorers {
            reference: &self.reference,
            value: None,
            reward: &self.reward,
            eos: self.eos,
            pad: self.pad,
        };
        let FixedScores { reference, scores, .. } = scorers.score(&queries, &responses, temperature);
        let ended: Vec<bool> = responses.iter().map(|r| self.ended(r)).collect();
        let scores: Vec<f32> = scores
            .iter()
            .zip(&ended)
            .map(|(&s, &ended)| match (ended, self.config.missing_eos_penalty) {
                (false, Some(penalty)) => s - penalty,
                _ => s,
            })
            .collect();
        // Σ (log π_old − log π_ref) over each response: its KL, as PPO's.
        let sequence_kl: Vec<f32> = generated
            .logprobs
            .iter()
            .zip(&reference)
            .map(|(old, r)| old.iter().zip(r).map(|(o, r)| o - r).sum())
            .collect();
        let beta = self.params.kl.beta() as f32;
        // GRPO's advantages; for RLOO only the share of groups without spread.
        let grouped = group_advantages(&scores, k, self.config.scale_rewards);
        let frac_zero_std = grouped.frac_zero_std;
        let advantages = match self.method {
            GroupMethod::Grpo => grouped.advantages,
            GroupMethod::Rloo => {
                let rewards: Vec<f32> = scores.iter().zip(&sequence_kl).map(|(s, kl)| s - beta * kl).collect();
                let loo = leave_one_out(&rewards, k);
                match self.config.normalize_advantages {
                    true => masked_whiten(&loo, &vec![1.0; loo.len()], true),
                    false => loo,
                }
            }
        };

        let lengths: Vec<f64> = responses.iter().map(|r| r.len() as f64).collect();
        let terminated: Vec<f64> = lengths
            .iter()
            .zip(&ended)
            .filter(|(_, e)| **e)
            .map(|(l, _)| *l)
            .collect();
        let (reward_mean, reward_std) = mean_std(&scores);
        let tokens = lengths.iter().sum::<f64>();
        let mut metrics = vec![
            (names::REWARD, reward_mean as f64),
            (names::REWARD_STD, reward_std as f64),
            (names::FRAC_REWARD_ZERO_STD, frac_zero_std as f64),
            (names::KL, mean_std(&sequence_kl).0 as f64),
            (names::KL_COEF, beta as f64),
            (names::COMPLETIONS_MEAN_LENGTH, mean(&lengths)),
            (
                names::COMPLETIONS_MIN_LENGTH,
                lengths.iter().copied().fold(f64::MAX, f64::min),
            ),
            (
                names::COMPLETIONS_MAX_LENGTH,
                lengths.iter().copied().fold(0.0, f64::max),
            ),
            (
                names::COMPLETIONS_CLIPPED_RATIO,
                1.0 - terminated.len() as f64 / lengths.len().max(1) as f64,
            ),
            (names::COMPLETIONS_MEAN_TERMINATED_LENGTH, mean(&terminated)),
            (names::NUM_GENERATIONS, k as f64),
        ];
        if self.method == GroupMethod::Rloo {
            // TRL's RLOO reports the KL in its reward per token.
            metrics.push((
                names::GROUP_KL,
                sequence_kl.iter().sum::<f32>() as f64 / tokens.max(1.0),
            ));
        }
        let shown = without_eos(&responses, self.eos);
        let at = (self.config.seed, self.iteration);
        metrics.extend(self.prompts.report(&policy, &asked, &shown, at, &mut self.failures));
        let batch = Batch {
            queries,
            responses,
            logprobs: generated.logprobs,
            reference,
            advantages,
            tokens: tokens as usize,
        };
        (batch, metrics)
    }

    /// One rollout and its epochs of updates; `steer` sees (and may change)
    /// the live parameters before the rollout and before every optimizer
    /// step. `None` when `steer` stopped it part way.
    pub fn step(&mut self, steer: &mut Steer) -> Option<Vec<(&'static str, f64)>> {
        let point = StepPoint::Rollout {
            iteration: self.iteration,
        };
        self.steer_at(steer, point)?;
        let temperature = self.params.temperature;
        let (batch, mut metrics) = self.rollout(temperature);
        let n = batch.queries.len();
        let mut steps = Vec::new();
        let (epochs, size) = (self.config.epochs, self.config.minibatch_size);
        for chunk in minibatches(n, epochs, size, &mut self.rng) {
            let point = StepPoint::Optimizer {
                iteration: self.iteration,
                step: self.optimizer_steps,
            };
            self.steer_at(steer, point)?;
            let lr = self.params.lr;
            let (stats, grads) = self.minibatch_gradients(&batch, &chunk, temperature);
            let norm = self.opt.step(lr, &mut self.policy, stats.loss, grads);
            self.optimizer_steps += 1;
            steps.push(StepStats {
                grad_norm: norm,
                ..stats
            });
        }
        self.iteration += 1;
        self.episodes += n;
        let s = steps
            .iter()
            .fold(StepStats::default(), |a, &b| a.add(b))
            .scaled(1.0 / steps.len().max(1) as f64);
        metrics.extend([
            (names::LOSS, s.loss),
            (names::CLIP_RATIO_LOW, s.clip_low),
            (names::CLIP_RATIO_HIGH, s.clip_high),
            (names::CLIP_RATIO_REGION, s.clip_low + s.clip_high),
            (names::ENTROPY, s.entropy),
            (names::GRAD_NORM, s.grad_norm),
            (names::LR, self.params.lr),
            (names::TEMPERATURE, temperature as f64),
            (names::EPISODES, self.episodes as f64),
        ]);
        if self.method == GroupMethod::Grpo {
            metrics.push((names::GROUP_KL, s.kl));
        }
        Some(metrics)
    }

    /// One minibatch's loss and its gradient, over shards that run in
    /// parallel (see `shards`), each weighted so they add up to the
    /// minibatch's loss.
    fn minibatch_gradients(&self, batch: &Batch, chunk: &[usize], temperature: f32) -> (StepStats, GradientsParams) {
        let device = self.policy.device();
        let n = shards::count(&device, chunk.len());
        let ranges = shards::ranges(chunk.len(), n);
        let tokens: usize = chunk.iter().map(|&i| batch.responses[i].len()).sum();
        let sizes = Normalisers {
            max_response_tokens: self.config.max_new_tokens,
            batch_tokens: batch.tokens,
        };
        let how = self.config.loss_type;
        let epsilon = (
            self.config.epsilon,
            self.config.epsilon_high.unwrap_or(self.config.epsilon),
        );
        let beta = self.params.kl.beta();
        let (method, pad_id) = (self.method, self.pad);
        let (grads, parts) = shards::gradients(&self.policy, n, |policy, s| {
            let rows = &chunk[ranges[s].clone()];
            let (queries, responses) = (pick(&batch.queries, rows), pick(&batch.responses, rows));
            let shard_tokens = responses.iter().map(Vec::len).sum::<usize>();
            let qr = QueryResponse::new(&queries, &responses, pad_id);
            let pad = |values: &Vec<Vec<f32>>| padded(rows.iter().map(|&i| &values[i]), qr.r, &device);
            let column = |values: Vec<f32>| Tensor::<2>::from_data(TensorData::new(values, [rows.len(), 1]), &device);
            let mask = qr.mask_tensor(&device);
            let (logp, entropy) = response_logprobs_and_entropy(policy, &qr, temperature);
            let (out, weight) = match method {
                GroupMethod::Grpo => {
                    let advantages: Vec<Vec<f32>> = rows
                        .iter()
                        .map(|&i| vec![batch.advantages[i]; batch.responses[i].len()])
                        .collect();
                    let out = grpo_loss(
                        logp,
                        pad(&batch.logprobs),
                        Some(pad(&batch.reference)),
                        padded(advantages.iter(), qr.r, &device),
                        mask,
                        epsilon,
                        beta,
                        (how, sizes),
                    );
                    let weight = shard_weight(how, (rows.len(), chunk.len()), (shard_tokens, tokens));
                    (out, weight)
                }
                GroupMethod::Rloo => {
                    let old = rows.iter().map(|&i| batch.logprobs[i].iter().sum()).collect();
                    let advantages = pick(&batch.advantages, rows);
                    let out = rloo_loss(logp, column(old), column(advantages), mask, epsilon.0);
                    (out, rows.len() as f32 / chunk.len() as f32)
                }
            };
            let entropy = entropy.detach().into_data().try_to_vec::<f32>().expect("f32");
            let token_share = shard_tokens as f64 / tokens.max(1) as f64;
            let stats = StepStats {
                loss: out.loss.clone().into_scalar::<f32>() as f64 * weight as f64,
                clip_low: out.clip_low as f64 * token_share,
                clip_high: out.clip_high as f64 * token_share,
                entropy: masked_mean(&entropy, &qr.mask) as f64 * token_share,
                kl: out.kl as f64 * token_share,
                grad_norm: 0.0,
            };
            (out.loss * weight, stats)
        });
        let stats = parts.into_iter().fold(StepStats::default(), StepStats::add);
        (stats, grads)
    }

    fn steer_at(&mut self, steer: &mut Steer, point: StepPoint) -> Option<()> {
        let models = Models {
            policy: &self.policy,
            reference: &self.reference,
            reward: &self.reward,
            tokenizer: self.prompts.tokenizer(),
            steps_per_iteration: self.config.steps_per_iteration(self.group_size()),
        };
        steer(&mut self.params, point, &models).continue_value()
    }

    pub fn inference_policy(&self) -> CausalLm {
        self.policy.valid()
    }

    pub fn reference(&self) -> &CausalLm {
        &self.reference
    }

    pub fn reward(&self) -> &ScalarModel {
        &self.reward
    }

    /// Writes into a checkpoint directory (which already holds the
    /// policy) the optimizer's state, and returns the counters, generator
    /// and live parameters for the checkpoint's state file.
    pub fn save_state(&self, dir: &Path) -> anyhow::Result<GroupState> {
        let policy_ids = self.opt.save(&self.policy, &dir.join(OPTIMIZER))?;
        Ok(GroupState {
            iteration: self.iteration,
            episodes: self.episodes,
            optimizer_steps: self.optimizer_steps,
            cursor: self.cursor,
            params: self.params.clone(),
            rng: RngState::of(&self.rng),
            policy_ids,
        })
    }

    /// Continues from a checkpoint `save_state` wrote, this trainer having
    /// been built with the checkpoint's policy, reference and reward model.
    pub fn restore(&mut self, dir: &Path, state: &GroupState) -> anyhow::Result<()> {
        self.policy = self
            .opt
            .load(self.policy.clone(), &state.policy_ids, &dir.join(OPTIMIZER))?;
        self.iteration = state.iteration;
        self.episodes = state.episodes;
        self.optimizer_steps = state.optimizer_steps;
        self.cursor = state.cursor;
        self.params = state.params.clone();
        self.rng = state.rng.restore()?;
        Ok(())
    }
}

/// Each of `xs` `k` times in a row: a prompt's group side by side.
fn repeated<T: Clone>(xs: Vec<T>, k: usize) -> Vec<T> {
    xs.into_iter().flat_map(|x| std::iter::repeat_n(x, k)).collect()
}
