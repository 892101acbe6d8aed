//! SL-CAI, the supervised half of Constitutional AI: responses sampled
//! from the starting policy on training prompts are critiqued and revised
//! against principles drawn at random, and the policy is fine-tuned on the
//! revisions (prompt-masked, as SFT). At its end the critic labels pairs
//! of answers under a principle drawn at random (RL-CAI's AI feedback),
//! for the reward model and PPO that follow.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::constitution::Constitution;
use super::critic::{Critic, Revised, revise, summary};
use crate::fsutil::write_atomic;
use crate::model::{CausalLm, Tokenizer, hf};
use crate::rlhf::data::{Demonstration, Evaluator, LabelledPair, Prompt, Sources, Split};
use crate::rlhf::held_out::sample_answers;
use crate::rlhf::sft::{SftConfig, SftTrainer};
use crate::run::config::{at_least_one, positive};
use crate::run::names;
use crate::trainer::protocol::{CaiView, Choice};

/// The `cai` section of a run config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaiConfig {
    /// The policy to sample from and fine-tune; `None` takes the run's
    /// latest SFT checkpoint, else `sft.init` (the base model).
    pub init: Option<PathBuf>,
    /// A constitution (RON, as `assets/constitution.ron`); `None`: the
    /// built-in world's five principles.
    pub constitution: Option<PathBuf>,
    /// Responses sampled on training prompts and revised: SL-CAI's data.
    pub samples: usize,
    /// Critique-and-revise rounds per response, each under a principle
    /// drawn at random (none twice for one response).
    pub rounds: usize,
    /// Tokens a sampled response may run to.
    pub max_new_tokens: usize,
    /// Fine-tuning on the revisions; the rest (weight decay, clipping,
    /// the held-out loss's schedule) is the `sft` section's.
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    /// Pairs the critic labels at the end (the fine-tuned policy's answer
    /// against its own or the starting policy's), each under a principle
    /// drawn at random, ties dropped, for `rm: (constitution_pairs:
    /// true)`; 0 labels none.
    pub feedback_pairs: usize,
    pub seed: u64,
}

impl Default for CaiConfig {
    fn default() -> Self {
        Self {
            init: None,
            constitution: None,
            samples: 1024,
            rounds: 4,
            max_new_tokens: 64,
            steps: 150,
            batch_size: 32,
            lr: 1e-3,
            warmup_steps: 10,
            feedback_pairs: 2000,
            seed: 0,
        }
    }
}

impl CaiConfig {
    pub fn validate(&self) -> Result<(), String> {
        at_least_one(&[
            ("samples", self.samples),
            ("rounds", self.rounds),
            ("max_new_tokens", self.max_new_tokens),
            ("steps", self.steps),
            ("batch_size", self.batch_size),
        ])?;
        positive(&[("lr", self.lr)], false)
    }
}

/// Responses sampled per generation batch.
const CHUNK: usize = 64;

/// The revisions as SFT's demonstrations: training ones from training
/// prompts, held-out ones (for the eval loss) from held-out prompts.
struct Revisions {
    train: Vec<Demonstration>,
    held: Vec<Demonstration>,
    inner: Arc<dyn Sources>,
}

impl Sources for Revisions {
    fn prompts(&self, split: Split) -> Vec<Prompt> {
        self.inner.prompts(split)
    }

    fn demonstrations(&self, split: Split, n: usize, _: u64) -> Vec<Demonstration> {
        let all = match split {
            Split::Train => &self.train,
            Split::HeldOut => &self.held,
        };
        all.iter().take(n).cloned().collect()
    }

    fn preference_pairs(&self, split: Split, n: usize, seed: u64) -> Vec<LabelledPair> {
        self.inner.preference_pairs(split, n, seed)
    }
}

/// What the stage needs besides its config.
pub struct CaiParts<'a> {
    pub sft: &'a SftConfig,
    /// The policy sampled and revised.
    pub init: &'a Path,
    /// The weights fine-tuned: `init`'s, or a checkpoint's when resumed.
    pub weights: &'a Path,
    pub sources: Arc<dyn Sources>,
    pub evaluator: Option<Arc<dyn Evaluator>>,
    pub critic: Arc<dyn Critic>,
    /// Where the revisions are written (`cai_revisions.jsonl`).
    pub revisions_path: PathBuf,
}

/// The SL-CAI stage between steps: SFT on the revisions.
pub struct CaiTrainer {
    pub sft: SftTrainer,
    pub config: CaiConfig,
    pub constitution: Constitution,
    critic: Arc<dyn Critic>,
    sources: Arc<dyn Sources>,
    /// The policy the stage started from, for RL-CAI's pairs.
    start: CausalLm,
    /// What the training revisions came to, for the pane and the metrics.
    pub view: CaiView,
}

impl CaiTrainer {
    pub fn new(config: &CaiConfig, parts: CaiParts, device: &burn::tensor::Device) -> anyhow::Result<Self> {
        config.validate().map_err(|e| anyhow::anyhow!("cai.{e}"))?;
        let constitution = Constitution::load(config.constitution.as_deref())?;
        parts.critic.check(&constitution).map_err(anyhow::Error::msg)?;
        let (model, tokenizer) = hf::load_language_model(parts.init, device)?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let drawn = |split, n, rng: &mut ChaCha8Rng| {
            let mut all = parts.sources.prompts(split);
            all.shuffle(rng);
            (0..n).map(|i| all[i % all.len()].clone()).collect::<Vec<_>>()
        };
        let train_prompts = drawn(Split::Train, config.samples, &mut rng);
        let held_prompts = drawn(Split::HeldOut, parts.sft.eval_examples.max(1), &mut rng);
        let reviser = Reviser {
            model: &model,
            tokenizer: &tokenizer,
            config,
            constitution: &constitution,
            critic: parts.critic.as_ref(),
            evaluator: parts.evaluator.as_deref(),
        };
        let train = reviser.revise_all(&train_prompts, config.seed)?;
        let held = reviser.revise_all(&held_prompts, config.seed ^ 0xe7a1)?;
        let lines: Vec<String> = train
            .iter()
            .map(|(_, r)| serde_json::to_string(r))
            .collect::<Result<_, _>>()?;
        write_lines(&parts.revisions_path, &lines)?;

        let demos = |set: &[(Prompt, Revised)]| {
            set.iter()
                .map(|(prompt, r)| Demonstration {
                    prompt: prompt.clone(),
                    response: r.revision().to_string(),
                })
                .collect::<Vec<_>>()
        };
        let revisions = Revisions {
            train: demos(&train),
            held: demos(&held),
            inner: parts.sources.clone(),
        };
        let sft_config = SftConfig {
            init: parts.weights.to_path_buf(),
            steps: config.steps,
            batch_size: config.batch_size,
            lr: config.lr,
            warmup_steps: config.warmup_steps,
            data: None,
            demonstrations: revisions.train.len(),
            eval_examples: revisions.held.len(),
            seed: config.seed,
            ..parts.sft.clone()
        };
        let sft = SftTrainer::new(&sft_config, &revisions, device)?;
        let revised: Vec<Revised> = train.into_iter().map(|(_, r)| r).collect();
        Ok(Self {
            view: summary(&constitution, &revised, parts.evaluator.is_some()),
            sft,
            config: config.clone(),
            constitution,
            critic: parts.critic,
            sources: parts.sources,
            start: model,
        })
    }

    /// The revision figures: the shares changed and won overall, and per
    /// principle the rounds that drew it, changed the response and beat it.
    pub fn revision_metrics(&self) -> Vec<(&'static str, f64)> {
        let mut metrics = vec![(names::CAI_CHANGED, self.view.changed)];
        metrics.extend(self.view.won.map(|w| (names::CAI_WON, w)));
        for c in &self.view.counts {
            for (what, n) in [("drawn", c.drawn), ("revised", c.revised), ("beat", c.beat)] {
                metrics.push((names::interned(format!("cai/{}/{what}", c.name)), n as f64));
            }
        }
        metrics
    }

    /// RL-CAI's AI feedback: pairs of answers to training prompts (in
    /// turn, shuffled, as often as needed), compared by the critic under a
    /// principle drawn at random; ties dropped. One answer of each pair is
    /// the fine-tuned `policy`'s, the other its own again or, half the
    /// time, the starting policy's: the world's harmful prompts are few
    /// and the fine-tuned policy rarely misbehaves on them, so pairs of its
    /// answers alone would teach the reward model little of what the
    /// revisions removed. Written to `path` in TRL's conversational
    /// preference format with the principle named; returns how many.
    pub fn label_feedback(&self, policy: &CausalLm, tokenizer: &Tokenizer, path: &Path) -> anyhow::Result<usize> {
        if self.config.feedback_pairs == 0 {
            return Ok(0);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0xfeed);
        let mut prompts = self.sources.prompts(Split::Train);
        let mut lines = Vec::new();
        // Four passes' worth of the pairs asked for at most: policies that
        // are already clean under a principle tie under it.
        let passes = 4 * self.config.feedback_pairs.div_ceil(prompts.len().max(1));
        let max_new = self.config.max_new_tokens;
        for _ in 0..passes {
            prompts.shuffle(&mut rng);
            for chunk in prompts.chunks(CHUNK) {
                let seed = rng.random::<u64>();
                let sample =
                    |model, seed| sample_answers(model, tokenizer, chunk, max_new, seed).map_err(anyhow::Error::msg);
                let tuned = sample(policy, seed)?;
                let again = sample(policy, seed.wrapping_add(1))?;
                let start = sample(&self.start, seed.wrapping_add(2))?;
                for (i, prompt) in chunk.iter().enumerate() {
                    let other = if rng.random_bool(0.5) { &start[i] } else { &again[i] };
                    let (a, b) = match rng.random_bool(0.5) {
                        true => (&tuned[i], other),
                        false => (other, &tuned[i]),
                    };
                    let principle = self.constitution.principles.choose(&mut rng).expect("validated");
                    let (chosen, rejected) = match self
                        .critic
                        .compare(prompt, a, b, principle)
                        .map_err(anyhow::Error::msg)?
                    {
                        Choice::Left => (a, b),
                        Choice::Right => (b, a),
                        _ => continue,
                    };
                    lines.push(feedback_line(prompt, chosen, rejected, &principle.name).to_string());
                    if lines.len() == self.config.feedback_pairs {
                        return write_lines(path, &lines);
                    }
                }
            }
        }
        write_lines(path, &lines)
    }
}

/// `lines` as a JSON Lines file, written atomically; returns how many.
fn write_lines(path: &Path, lines: &[String]) -> anyhow::Result<usize> {
    write_atomic(path, (lines.join("\n") + "\n").as_bytes()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(lines.len())
}

/// One labelled pair as TRL reads it: the prompt's turns and each side's
/// assistant turn (or plain text for a laid-out prompt).
fn feedback_line(prompt: &Prompt, chosen: &str, rejected: &str, principle: &str) -> Value {
    let turn = |text: &str| json!([{"role": "assistant", "content": text.trim()}]);
    match prompt {
        Prompt::Chat(turns) => json!({
            "prompt": turns,
            "chosen": turn(chosen),
            "rejected": turn(rejected),
            "principle": principle,
        }),
        Prompt::Text(text) => json!({"prompt": text, "chosen": chosen, "rejected": rejected, "principle": principle}),
    }
}

/// Samples and revises a set of prompts.
struct Reviser<'a> {
    model: &'a CausalLm,
    tokenizer: &'a Tokenizer,
    config: &'a CaiConfig,
    constitution: &'a Constitution,
    critic: &'a dyn Critic,
    evaluator: Option<&'a dyn Evaluator>,
}

impl Reviser<'_> {
    /// One response per prompt, revised, with the judge's score of each
    /// version where the run has a judge.
    fn revise_all(&self, prompts: &[Prompt], seed: u64) -> anyhow::Result<Vec<(Prompt, Revised)>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(prompts.len());
        for (i, chunk) in prompts.chunks(CHUNK).enumerate() {
            let answers = sample_answers(
                self.model,
                self.tokenizer,
                chunk,
                self.config.max_new_tokens,
                seed.wrapping_add(i as u64),
            )
            .map_err(anyhow::Error::msg)?;
            for (prompt, answer) in chunk.iter().zip(answers) {
                let revised = revise(
                    self.critic,
                    self.constitution,
                    prompt,
                    &answer,
                    self.config.rounds,
                    &mut rng,
                )
                .map_err(anyhow::Error::msg)?;
                out.push((prompt.clone(), revised));
            }
        }
        if let Some(judge) = self.evaluator {
            let (asked, texts): (Vec<Prompt>, Vec<String>) = out
                .iter()
                .flat_map(|(p, r)| r.befores().map(|t| (p.clone(), t.to_string())).collect::<Vec<_>>())
                .unzip();
            let mut scores = judge.scores(&asked, &texts).map_err(anyhow::Error::msg)?.into_iter();
            for (_, r) in &mut out {
                r.scores = scores.by_ref().take(r.steps.len() + 1).collect();
            }
        }
        Ok(out)
    }
}
