//! The `gen` workload at a shape (random weights): 32 prompts of 16
//! tokens; 48 new tokens each, sampled at T = 1.0 with the KV cache.
//! Reports generated tokens per second. `scripts/bench_gen_transformers.py`
//! runs the same workload through transformers' `generate`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::shape::Shape;
use crate::device::Selected;
use crate::model::sampling::SamplingParams;
use crate::model::{GenerateConfig, generate};

pub const PROMPTS: usize = 32;
pub const PROMPT_LEN: usize = 16;
pub const NEW_TOKENS: usize = 48;

/// Forward matmul FLOPs of the workload counted as 2·N per token over all
/// prompt and generated positions (N = block weights + LM head), the usual
/// way of stating it; attention scores add a few percent more.
pub fn workload_flops(shape: Shape) -> f64 {
    2.0 * shape.matmul_params() * (PROMPTS * (PROMPT_LEN + NEW_TOKENS)) as f64
}

pub fn run(selected: &Selected, shape: Shape, repeats: usize) -> Value {
    let model = shape.model(0, &selected.device);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let prompts: Vec<Vec<u32>> = (0..PROMPTS)
        .map(|_| {
            (0..PROMPT_LEN)
                .map(|_| rng.random_range(0..shape.vocab() as u32))
                .collect()
        })
        .collect();
    let gen_config = GenerateConfig {
        max_new_tokens: NEW_TOKENS,
        sampling: SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        },
        // No EOS: every row generates exactly NEW_TOKENS, as the peer script forces.
        eos_token_id: None,
        pad_token_id: 0,
        seed: 2,
    };
    let mut generated = 0;
    let seconds = super::median_seconds(repeats, || {
        let out = generate(&model, &prompts, &gen_config);
        generated = out.tokens.iter().map(Vec::len).sum::<usize>();
    });
    json!({
        "workload": "gen",
        "shape": shape.name(),
        "device": selected.label,
        "threads": rayon_threads(),
        "generated_tokens": generated,
        "seconds": seconds,
        "tokens_per_s": generated as f64 / seconds,
        "workload_gflop": workload_flops(shape) / 1e9,
        "gflop_per_s": workload_flops(shape) / 1e9 / seconds,
    })
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
