//! The `gen` workload: GPT-2 shape 4 layers, 4 heads, d_model 256, vocab
//! 4096, context 256, random weights; 32 prompts of 16 tokens; 48 new
//! tokens each, sampled at T = 1.0 with the KV cache. Reports generated
//! tokens per second. `scripts/bench_gen_transformers.py` runs the same
//! workload through transformers' `generate`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::device::Selected;
use crate::model::sampling::SamplingParams;
use crate::model::{CausalLm, GenerateConfig, Gpt2Config, generate};

pub const LAYERS: usize = 4;
pub const HEADS: usize = 4;
pub const D_MODEL: usize = 256;
pub const VOCAB: usize = 4096;
pub const CONTEXT: usize = 256;
pub const PROMPTS: usize = 32;
pub const PROMPT_LEN: usize = 16;
pub const NEW_TOKENS: usize = 48;

/// Forward matmul FLOPs of the workload counted as 2·N per token over all
/// prompt and generated positions (N = block weights + LM head), the usual
/// way of stating it; attention scores add about 2% more.
pub fn workload_flops() -> f64 {
    let per_token = 2.0 * (LAYERS * 12 * D_MODEL * D_MODEL + D_MODEL * VOCAB) as f64;
    per_token * (PROMPTS * (PROMPT_LEN + NEW_TOKENS)) as f64
}

pub fn run(selected: &Selected, repeats: usize) -> Value {
    let config = Gpt2Config::new(VOCAB, CONTEXT, D_MODEL, LAYERS, HEADS);
    let model = CausalLm::seeded(&config, 0, &selected.device);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let prompts: Vec<Vec<u32>> = (0..PROMPTS)
        .map(|_| (0..PROMPT_LEN).map(|_| rng.random_range(0..VOCAB as u32)).collect())
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
        "device": selected.label,
        "threads": rayon_threads(),
        "generated_tokens": generated,
        "seconds": seconds,
        "tokens_per_s": generated as f64 / seconds,
        "workload_gflop": workload_flops() / 1e9,
        "gflop_per_s": workload_flops() / 1e9 / seconds,
    })
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
