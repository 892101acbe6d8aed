//! The model: GPT-2 on burn, its KV cache, sampling, tokenizer, and Hugging
//! Face directory import and export.

pub mod batch;
pub mod config;
pub mod generate;
pub mod gpt2;
pub mod hf;
pub mod kv_cache;
pub mod logprobs;
pub mod sampling;
pub mod tokenizer;
pub mod weights;
pub mod window;

pub use config::{Gpt2Config, HeadKind};
pub use generate::{GenerateConfig, Generated, generate};
pub use gpt2::{Gpt2, ScalarModel};
pub use tokenizer::Tokenizer;
pub use window::Window;
