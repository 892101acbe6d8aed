//! Supervised fine-tuning: next-token prediction on (prompt, response)
//! demonstrations with the loss masked on the prompt tokens (InstructGPT's
//! SFT), AdamW with warmup and cosine decay and gradient clipping.
//!
//! The trainer advances one optimizer step per `step` call and takes the
//! learning rate as an argument, so whoever drives it (the command line or
//! the workbench's trainer thread) can change it between steps.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::data::{Demonstration, Sources, Split, kept};
use super::epochs::Epochs;
use super::lm::{LmBatch, lm_forward, lm_gradients};
use super::optim::GuardedAdamW;
use super::schedule::warmup_cosine;
use super::state::{ModelState, OPTIMIZER};
use crate::model::{CausalLm, Tokenizer, hf};
use crate::run::config::{at_least_one, fraction, positive};
use crate::run::names;

/// The `sft` section of a run config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// The model to fine-tune: a Hugging Face GPT-2, Llama or Qwen2 directory.
    pub init: PathBuf,
    /// Optimizer steps.
    pub steps: usize,
    /// Demonstrations per step.
    pub batch_size: usize,
    /// Peak learning rate, reached after the warmup.
    pub lr: f64,
    /// Steps of linear warmup before the cosine decay to lr/10.
    pub warmup_steps: usize,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// The gradients are rescaled to at most this global norm over every
    /// parameter, as TRL clips them.
    pub max_grad_norm: f32,
    /// When a step's loss or gradients are not finite, also undo the
    /// update before it (a learning rate far too high gives a finite loss
    /// once and a NaN the step after). The weights before are computed
    /// from the moments, with no copy kept (at a learning rate above 1 the
    /// update keeps one). `false` only refuses the bad update.
    pub undo_last_update: bool,
    /// A demonstrations file (JSON Lines, plain or `.gz`): TRL's
    /// `{"messages"}`, `{"prompt", "completion"}` or `{"text"}`. `None`:
    /// the built-in world's.
    pub data: Option<PathBuf>,
    /// With `data`: the share of its demonstrations held out for the eval
    /// loss (a seeded draw).
    pub eval_fraction: f64,
    /// Demonstrations generated from the built-in world (about 10k in InstructGPT's spirit).
    pub demonstrations: usize,
    /// Held-out demonstrations the eval loss is computed on.
    pub eval_examples: usize,
    /// Compute the eval loss every this many steps (and at the end).
    pub eval_every: usize,
    pub seed: u64,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            init: PathBuf::from("assets/base"),
            steps: 300,
            batch_size: 32,
            lr: 1e-3,
            warmup_steps: 20,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            undo_last_update: true,
            data: None,
            eval_fraction: 0.1,
            demonstrations: 10_000,
            eval_examples: 62,
            eval_every: 50,
            seed: 0,
        }
    }
}

impl SftConfig {
    pub fn validate(&self) -> Result<(), String> {
        at_least_one(&[
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("demonstrations", self.demonstrations),
            ("eval_every", self.eval_every),
        ])?;
        positive(&[("lr", self.lr), ("max_grad_norm", self.max_grad_norm as f64)], false)?;
        fraction("eval_fraction", self.eval_fraction)
    }

    pub fn lr_at(&self, step: usize) -> f64 {
        warmup_cosine(step, self.steps, self.warmup_steps, self.lr, self.lr * 0.1)
    }
}

/// One demonstration as training tokens: the prompt as the model reads
/// it (its chat format), the response and the end-of-turn token; only the
/// response and that token count in the loss. Longer than the model's
/// `context`, it keeps its start: the prompt and as much of the response
/// as fits. A conversation the chat template refuses, or text the
/// tokenizer cannot encode, is the error.
pub fn demonstration(
    tokenizer: &Tokenizer,
    demo: &Demonstration,
    eos: u32,
    context: usize,
) -> Result<(Vec<u32>, Vec<bool>), String> {
    let mut tokens = tokenizer.encode_prompt(&demo.prompt)?;
    let prompt_len = tokens.len();
    tokens.extend(tokenizer.try_encode(&tokenizer.chat().response_text(&demo.prompt, &demo.response)?)?);
    tokens.push(eos);
    tokens.truncate(context);
    let counts = (0..tokens.len()).map(|i| i >= prompt_len).collect();
    Ok((tokens, counts))
}

/// The SFT stage's state between steps.
pub struct SftTrainer {
    pub config: SftConfig,
    pub model: CausalLm,
    pub tokenizer: Tokenizer,
    optim: GuardedAdamW<CausalLm>,
    train: Epochs<(Vec<u32>, Vec<bool>)>,
    eval: Vec<(Vec<u32>, Vec<bool>)>,
    eos: u32,
    /// Steps taken so far.
    pub step: usize,
    /// Response tokens trained on so far.
    pub tokens_seen: usize,
    /// Demonstrations skipped, each naming which and why.
    pub warnings: Vec<String>,
}

impl SftTrainer {
    pub fn new(config: &SftConfig, sources: &dyn Sources, device: &Device) -> anyhow::Result<Self> {
        config.validate().map_err(|e| anyhow::anyhow!("sft.{e}"))?;
        let train_device = device.clone().autodiff();
        let (model, tokenizer) = hf::load_language_model(&config.init, &train_device)?;
        let eos = tokenizer
            .eos_id()
            .ok_or_else(|| anyhow::anyhow!("{}: the model names no end-of-sequence token", config.init.display()))?;
        let context = model.context();
        let tokenized =
            |demos: Vec<Demonstration>, what| kept(&demos, what, |d| demonstration(&tokenizer, d, eos, context));
        let (train, mut warnings) = tokenized(
            sources.demonstrations(Split::Train, config.demonstrations, config.seed),
            "training demonstration",
        );
        // Demonstrations on held-out prompts: the loss on prompts SFT never saw.
        let (eval, skipped) = tokenized(
            sources.demonstrations(Split::HeldOut, config.eval_examples, config.seed ^ 0xe7a1),
            "held-out demonstration",
        );
        warnings.extend(skipped);
        if train.is_empty() || eval.is_empty() {
            anyhow::bail!(
                "SFT needs training and held-out demonstrations; it has {} and {}{}",
                train.len(),
                eval.len(),
                warnings.first().map_or(String::new(), |w| format!(" ({w})"))
            );
        }
        let train = Epochs::new(train, config.seed);
        let optim = GuardedAdamW::new(config.weight_decay, config.max_grad_norm, config.undo_last_update);
        Ok(Self {
            config: config.clone(),
            model,
            tokenizer,
            optim,
            train,
            eval,
            eos,
            step: 0,
            tokens_seen: 0,
            warnings,
        })
    }

    /// One optimizer step at learning rate `lr`. Returns the step's
    /// metrics under TRL's SFT names.
    pub fn step(&mut self, lr: f64) -> Vec<(&'static str, f64)> {
        let rows = self.train.next(self.config.batch_size);
        let (tokens, counts): (Vec<_>, Vec<_>) = rows.iter().cloned().unzip();
        let (out, grads) = lm_gradients(&self.model, &tokens, &counts, self.eos);
        let norm = self.optim.step(lr, &mut self.model, out.loss as f64, grads);
        self.step += 1;
        self.tokens_seen += out.tokens as usize;
        vec![
            (names::LOSS, out.loss as f64),
            (names::MEAN_TOKEN_ACCURACY, out.accuracy as f64),
            (names::ENTROPY, out.entropy as f64),
            (names::NUM_TOKENS, self.tokens_seen as f64),
            (names::GRAD_NORM, norm),
            (names::LR, lr),
        ]
    }

    /// Loss on the held-out demonstrations, without gradient.
    pub fn eval_loss(&self) -> f64 {
        let model = self.model.valid();
        let (tokens, counts): (Vec<_>, Vec<_>) = self.eval.iter().cloned().unzip();
        let batch = LmBatch::new(&tokens, &counts, self.eos);
        lm_forward(&model, &batch).loss.into_scalar::<f32>() as f64
    }

    /// The model as it is now, for sampling or saving (no gradient state).
    /// Writes the optimizer's state into a checkpoint directory (which
    /// holds the model) and returns the trainer's place.
    pub fn save_state(&self, dir: &std::path::Path) -> anyhow::Result<ModelState> {
        Ok(ModelState {
            step: self.step,
            ids: self.optim.save(&self.model, &dir.join(OPTIMIZER))?,
            tokens_seen: self.tokens_seen,
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
        self.tokens_seen = state.tokens_seen;
        Ok(())
    }

    pub fn inference_model(&self) -> CausalLm {
        self.model.valid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::data::Prompt;

    #[test]
    fn only_the_response_and_eos_count() {
        let tokenizer = Tokenizer::from_file(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/tokenizer.json"
        )))
        .unwrap();
        let eos = tokenizer.eos_id().unwrap();
        let demo = Demonstration {
            prompt: Prompt::question("What is tea?"),
            response: "Tea is hot.".into(),
        };
        let (tokens, counts) = demonstration(&tokenizer, &demo, eos, 128).unwrap();
        let prompt_len = tokenizer.encode("\n\nHuman: What is tea?\n\nAssistant:").len();
        assert!(counts[..prompt_len].iter().all(|c| !c));
        assert!(counts[prompt_len..].iter().all(|&c| c));
        assert_eq!(*tokens.last().unwrap(), eos);
        assert_eq!(tokenizer.decode(&tokens[prompt_len..tokens.len() - 1]), " Tea is hot.");
        // A context shorter than the whole keeps the prompt and the response's start.
        let (short, counts) = demonstration(&tokenizer, &demo, eos, prompt_len + 1).unwrap();
        assert_eq!(short, tokens[..prompt_len + 1]);
        assert_eq!(counts.iter().filter(|&&c| c).count(), 1);
        // Laid-out text is used as it is: all of a `text` demonstration counts.
        let text = Demonstration {
            prompt: Prompt::Text(String::new()),
            response: "Tea is hot.".into(),
        };
        let (tokens, counts) = demonstration(&tokenizer, &text, eos, 128).unwrap();
        assert_eq!(tokenizer.decode(&tokens[..tokens.len() - 1]), "Tea is hot.");
        assert!(counts.iter().all(|&c| c));
    }

    #[test]
    fn bad_values_are_named() {
        let config = SftConfig {
            lr: 0.0,
            ..SftConfig::default()
        };
        assert!(config.validate().unwrap_err().starts_with("lr:"));
        let config = SftConfig {
            batch_size: 0,
            ..SftConfig::default()
        };
        assert!(config.validate().unwrap_err().starts_with("batch_size:"));
    }
}
