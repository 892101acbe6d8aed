//! The model: GPT-2 on burn, its KV cache, sampling, tokenizer, and Hugging
//! Face directory import and export.

#[cfg(feature = "flex")]
pub mod attention;
pub mod batch;
pub mod config;
#[cfg(feature = "flex")]
pub mod cpu_tensor;
pub mod gelu;
#[cfg(all(feature = "flex", target_arch = "x86_64"))]
mod gemm_avx2;
pub mod generate;
pub mod gpt2;
pub mod hf;
pub mod kv_cache;
#[cfg(feature = "flex")]
pub mod layer_norm;
#[cfg(feature = "flex")]
pub mod linear;
pub mod logprobs;
pub mod sampling;
pub mod simd;
#[cfg(feature = "flex")]
pub mod token_logprobs;
pub mod tokenizer;
pub mod weights;
pub mod window;

pub use config::{Gpt2Config, HeadKind};
pub use generate::{GenerateConfig, Generated, generate};
pub use gpt2::{Gpt2, ScalarModel};
pub use tokenizer::Tokenizer;
pub use window::Window;
