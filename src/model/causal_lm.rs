//! The model interface: a causal language model of any architecture the
//! workbench reads. Sampling, generation, scoring, the stages, the
//! workbench and the benchmarks see only this type (and `ScalarModel`,
//! its scalar head).
//!
//! A closed enum rather than a trait: burn's `Module` derive (parameters,
//! records, autodiff, device moves, the shards' replicas) works on an enum
//! of modules and not on `dyn Trait`, and a trait for generic code would
//! put a type parameter through every stage. The architectures are ours to
//! list, so adding one is a variant here, its model file, and its mapping
//! from a Hugging Face directory in `hf/`.

use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::config::{Gpt2Config, HeadKind};
use super::gpt2::Gpt2;
use super::kv_cache::KvCache;
use super::llama::Llama;
use super::weights::SeededInit;
use super::window::Window;

#[derive(Module, Debug)]
pub enum CausalLm {
    Gpt2(Gpt2),
    /// Llama and Qwen2.
    Llama(Llama),
}

impl From<Gpt2> for CausalLm {
    fn from(model: Gpt2) -> Self {
        Self::Gpt2(model)
    }
}

impl From<Llama> for CausalLm {
    fn from(model: Llama) -> Self {
        Self::Llama(model)
    }
}

impl CausalLm {
    /// A new model of `config` with weights drawn from `seed`, as the
    /// architecture initialises them.
    pub fn seeded(config: &Gpt2Config, seed: u64, device: &Device) -> Self {
        Gpt2::build(config, &mut SeededInit::new(seed), device)
            .expect("a seeded initializer has every tensor")
            .into()
    }

    /// The final hidden states `[b, q, d]` of `q` new positions.
    ///
    /// `tokens`, `positions`: `[b, q]`; `mask`: `[b, 1, q, k]`, true where
    /// query i may not see key j (see `batch::attention_mask`). With a
    /// cache, `k` counts the cached positions too and the new keys and
    /// values are appended.
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        match self {
            Self::Gpt2(m) => m.forward(tokens, positions, mask, cache),
            Self::Llama(m) => m.forward(tokens, positions, mask, cache),
        }
    }

    /// `forward` without a cache, at `window`'s columns only: `[b, len, d]`.
    /// Only those columns run through the last block (see `window`).
    pub fn forward_window(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
        window: &Window,
    ) -> Tensor<3> {
        match self {
            Self::Gpt2(m) => m.forward_window(tokens, positions, mask, window),
            Self::Llama(m) => m.forward_window(tokens, positions, mask, window),
        }
    }

    /// Next-token logits: `[b, q, d]` → `[b, q, V]`.
    pub fn lm_logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Gpt2(m) => m.lm_logits(hidden),
            Self::Llama(m) => m.lm_logits(hidden),
        }
    }

    /// A cache for generation, one entry per layer.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers())
    }

    /// Every parameter under its name in the architecture's Hugging Face
    /// files, as a directory of `head` stores it (GPT-2's under
    /// `transformer.`; a scalar head's body without an LM head).
    pub fn named_tensors(&self, head: HeadKind) -> Vec<(String, TensorData)> {
        match self {
            Self::Gpt2(m) => m
                .named_tensors()
                .into_iter()
                .map(|(n, t)| (format!("transformer.{n}"), t))
                .collect(),
            Self::Llama(m) => m
                .named_tensors()
                .into_iter()
                .filter(|(n, _)| head == HeadKind::LanguageModel || n != "lm_head.weight")
                .collect(),
        }
    }

    /// `config.json` for a directory of `head`.
    pub fn config_json(&self, head: HeadKind) -> serde_json::Value {
        match self {
            Self::Gpt2(m) => serde_json::to_value(m.config.for_head(head)).expect("the config serialises"),
            Self::Llama(m) => m.config.to_json(head == HeadKind::Scalar),
        }
    }

    /// The longest sequence the model reads.
    pub fn context(&self) -> usize {
        match self {
            Self::Gpt2(m) => m.config.n_positions,
            Self::Llama(m) => m.config.max_positions,
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Gpt2(m) => m.config.vocab_size,
            Self::Llama(m) => m.config.vocab_size,
        }
    }

    /// The width of the hidden states, what a scalar head reads.
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Gpt2(m) => m.config.n_embd,
            Self::Llama(m) => m.config.hidden_size,
        }
    }

    pub fn layers(&self) -> usize {
        match self {
            Self::Gpt2(m) => m.config.n_layer,
            Self::Llama(m) => m.config.layers,
        }
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        match self {
            Self::Gpt2(m) => m.config.eos_token_id,
            Self::Llama(m) => m.config.eos_token_id,
        }
    }

    pub fn pad_token_id(&self) -> Option<u32> {
        match self {
            Self::Gpt2(m) => m.config.pad_token_id,
            Self::Llama(m) => m.config.pad_token_id,
        }
    }

    /// Waits until the operations writing the parameters have run (a GPU
    /// runs them asynchronously): benchmarks time steps with it.
    pub fn sync(&self) {
        let _ = self.embedding().slice([0..1, 0..1]).into_data();
    }

    /// Where the parameters live.
    pub fn device(&self) -> Device {
        self.embedding().device()
    }

    /// The token embedding `[V, d]`.
    fn embedding(&self) -> Tensor<2> {
        match self {
            Self::Gpt2(m) => m.wte.val(),
            Self::Llama(m) => m.embed_tokens.val(),
        }
    }
}
