//! The model shapes the workloads run at (`--shape`), random weights:
//! DESIGN.md's small GPT-2, the default, and SmolLM2-135M's Llama shape.
//!
//! A workload's numbers (prompts, lengths, batches) are the same at every
//! shape except PPO's, which at 135M parameters is cut to fit an
//! iteration in under a minute on a 2-core machine (`PpoWorkload`).

use std::path::Path;

use burn::tensor::Device;

use crate::model::llama::Llama;
use crate::model::llama_config::LlamaConfig;
use crate::model::weights::SeededInit;
use crate::model::{CausalLm, Gpt2Config};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// GPT-2, 4 layers, 4 heads, d_model 256, vocab 4096, context 256.
    #[default]
    #[value(name = "gpt2-4x256")]
    Gpt2,
    /// Llama (SmolLM2-135M): 30 layers, d 576, 9 heads on 3 key/value
    /// heads, FFN 1536, vocab 49152, tied embeddings.
    #[value(name = "smollm2-135m")]
    Smollm2,
}

/// SmolLM2-135M's `config.json`, as its Hugging Face directory has it.
const SMOLLM2_135M: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
  "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
  "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
  "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000.0,
  "tie_word_embeddings": true, "bos_token_id": 0, "eos_token_id": 0
}"#;

/// PPO's iteration at a shape: `prompts` prompts of `prompt_len` tokens,
/// `new_tokens` sampled for each, `epochs` passes over minibatches of
/// `minibatch`.
#[derive(Debug, Clone, Copy)]
pub struct PpoWorkload {
    pub prompts: usize,
    pub prompt_len: usize,
    pub new_tokens: usize,
    pub epochs: usize,
    pub minibatch: usize,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Self::Gpt2 => "gpt2-4x256",
            Self::Smollm2 => "smollm2-135m",
        }
    }

    pub fn vocab(self) -> usize {
        match self {
            Self::Gpt2 => 4096,
            Self::Smollm2 => 49152,
        }
    }

    /// A model of this shape with weights drawn from `seed`.
    pub fn model(self, seed: u64, device: &Device) -> CausalLm {
        match self {
            Self::Gpt2 => CausalLm::seeded(&Gpt2Config::new(4096, 256, 256, 4, 4), seed, device),
            Self::Smollm2 => {
                let config =
                    LlamaConfig::parse(SMOLLM2_135M, Path::new("smollm2-135m")).expect("the shape's config reads");
                Llama::build(&config, &mut SeededInit::new(seed), device, true)
                    .expect("a seeded initializer has every tensor")
                    .into()
            }
        }
    }

    /// Parameters that take part in matrix products per token: the blocks'
    /// projections and the (tied) LM head.
    pub fn matmul_params(self) -> f64 {
        let per_layer = match self {
            Self::Gpt2 => 12 * 256 * 256,
            // q and o: d·d; k and v: d·(3·64); gate, up and down: d·1536.
            Self::Smollm2 => 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536,
        };
        let (layers, d) = match self {
            Self::Gpt2 => (4, 256),
            Self::Smollm2 => (30, 576),
        };
        (layers * per_layer + d * self.vocab()) as f64
    }

    pub fn ppo(self) -> PpoWorkload {
        match self {
            Self::Gpt2 => PpoWorkload {
                prompts: 32,
                prompt_len: 16,
                new_tokens: 48,
                epochs: 4,
                minibatch: 8,
            },
            Self::Smollm2 => PpoWorkload {
                prompts: 16,
                prompt_len: 16,
                new_tokens: 32,
                epochs: 2,
                minibatch: 8,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter count of the shapes' models against the count their
    /// matrices make by hand.
    #[test]
    fn the_smollm2_shape_has_135m_parameters() {
        let model = Shape::Smollm2.model(0, &Device::flex());
        let total: usize = model
            .named_tensors(crate::model::HeadKind::LanguageModel)
            .iter()
            .map(|(_, t)| t.num_elements())
            .sum();
        // 30 layers of (matrices + two norms), the embedding, the final norm.
        let by_hand = 30 * (3_538_944 + 2 * 576) + 49152 * 576 + 576;
        assert_eq!(total, by_hand);
        assert_eq!(total, 134_515_008);
        assert_eq!(Shape::Smollm2.matmul_params(), (30 * 3_538_944 + 49152 * 576) as f64);
    }
}
