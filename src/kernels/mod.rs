//! The operations a model and an optimizer step spend their time in, each
//! written once as burn's composed operations (what every GPU runs) and,
//! for the CPU backend, once more as a fused operation with its own
//! backward pass.
//!
//! One pattern throughout: a backend extension trait whose default method
//! is the composed version (`composed`, generic over the backend, so under
//! `Autodiff` burn derives its backward pass), implemented with that
//! default for every backend but the CPU's (`composed_elsewhere!`), and
//! overridden for `Flex` and `Autodiff<Flex>`. A model calls the tensor
//! function at the top of each file and never asks which device it is on.
//!
//! `RLHF_TUI_KERNELS=composed` (or `path::force`) sends the CPU through the
//! composed versions too, so the path GPUs take can be trained and checked
//! on a machine without one.
//!
//! The operations: `linear` (and the tied LM head, `linear_transposed`),
//! `attention` (queries in blocks that stop at their last visible key, and
//! windows of query columns), `cached_attention` (a decoding step's new
//! positions over the KV cache, on AVX-512 by `cached_avx512`),
//! `layer_norm`, `gelu`, `token_logprobs` (the target's log-probability,
//! entropy and argmax in one pass), `adamw` and `sum_of_squares` (the
//! optimizer step and the gradients' norms). The CPU versions write
//! outputs they fill whole without zeroing them first
//! (`cpu_tensor::written`), and their matrix products run on a packed
//! 6 × 16 AVX2/FMA kernel (`gemm_avx2`) where the CPU has those features
//! but not AVX-512, and for products of few rows where it does; products
//! of few rows against a weight stored `[out, in]` (a Llama model's
//! projections while decoding) run as dot products on an AVX-512 kernel
//! that needs no packing (`gemm_rows`), which threads decoding a shard
//! each compute together, each weight read once between them (`team`);
//! the rest on the gemm crate (`cpu_tensor::product`), split over the
//! thread pool unless the thread runs a shard of its own (`own_thread`).

pub mod adamw;
pub mod attention;
pub mod cached_attention;
#[cfg(all(feature = "flex", target_arch = "x86_64"))]
mod cached_avx512;
#[cfg(feature = "flex")]
pub mod cpu_tensor;
pub mod gelu;
#[cfg(all(feature = "flex", target_arch = "x86_64"))]
mod gemm_avx2;
#[cfg(all(feature = "flex", target_arch = "x86_64"))]
mod gemm_rows;
pub mod layer_norm;
pub mod linear;
pub mod own_thread;
pub mod path;
pub mod rms_norm;
pub mod rotary;
pub mod simd;
pub mod sum_of_squares;
pub mod swiglu;
pub mod team;
pub mod token_logprobs;

/// Implements an extension trait with its composed default on every
/// backend other than the CPU's, bare and under autodiff.
macro_rules! composed_elsewhere {
    ($extension:ident) => {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        impl $extension for burn::backend::Cube {}
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        impl<C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> $extension
            for burn::backend::Autodiff<burn::backend::Cube, C>
        {
        }
        #[cfg(feature = "tch")]
        impl $extension for burn::backend::LibTorch {}
        #[cfg(feature = "tch")]
        impl<C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> $extension
            for burn::backend::Autodiff<burn::backend::LibTorch, C>
        {
        }
    };
}
pub(crate) use composed_elsewhere;
