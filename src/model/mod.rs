//! The model: the interface every caller uses (`CausalLm`, and
//! `ScalarModel` for reward and value heads), GPT-2 as its first
//! architecture, the KV cache, sampling, tokenizer, and Hugging Face
//! directory import and export.

pub mod batch;
pub mod causal_lm;
pub mod config;
pub mod generate;
pub mod gpt2;
pub mod hf;
pub mod kv_cache;
pub mod llama;
pub mod llama_config;
pub mod logprobs;
pub mod sampling;
pub mod scalar;
pub mod tokenizer;
pub mod weights;
pub mod window;

pub use causal_lm::CausalLm;
pub use config::{Gpt2Config, HeadKind};
pub use generate::{GenerateConfig, Generated, generate};
pub use gpt2::Gpt2;
pub use scalar::ScalarModel;
pub use tokenizer::Tokenizer;
pub use window::Window;
