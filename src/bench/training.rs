//! The training workloads at a shape (random weights): `sft`, one optimizer step on 16 × 128 tokens, reported as tokens/s and
//! model FLOPs utilisation (6·N·tokens against the matmul peak measured in
//! the same run); `rm`, one reward-model step on 16 pairs of 96 tokens a
//! side, reported as pairs/s.

use std::time::Instant;

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::matmul::Operands;
use super::median;
use super::shape::Shape;
use crate::device::Selected;
use crate::model::weights::SeededInit;
use crate::model::{CausalLm, ScalarModel};
use crate::rlhf::lm::lm_gradients;
use crate::rlhf::optim::GuardedAdamW;
use crate::rlhf::reward::{TokenPair, pair_gradients};

/// `rows` rows of `len` tokens drawn from the shape's vocabulary.
pub(super) fn random_rows(shape: Shape, rows: usize, len: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows)
        .map(|_| (0..len).map(|_| rng.random_range(0..shape.vocab() as u32)).collect())
        .collect()
}

/// A model of the shape to train.
pub(super) fn bench_model(shape: Shape, device: &Device) -> CausalLm {
    shape.model(0, &device.clone().autodiff())
}

pub fn sft(selected: &Selected, shape: Shape, repeats: usize) -> Value {
    const BATCH: usize = 16;
    const LEN: usize = 128;
    let mut model = bench_model(shape, &selected.device);
    // The trainers' optimizer: the NaN guard and the clipping are part of
    // a training step's cost.
    let mut optim = GuardedAdamW::new(0.0, 1.0, true);
    // 129 tokens a row give 128 inputs and 128 targets.
    let rows = random_rows(shape, BATCH, LEN + 1, 1);
    let counts = vec![vec![true; LEN + 1]; BATCH];
    let mut step = || {
        let start = Instant::now();
        let (out, grads) = lm_gradients(&model, &rows, &counts, 0);
        optim.step(1e-4, &mut model, out.loss as f64, grads);
        model.sync();
        start.elapsed().as_secs_f64()
    };
    let tokens = (BATCH * LEN) as f64;
    let flops = 6.0 * shape.matmul_params() * tokens;
    // The peak is probed between steps, so that a machine whose speed
    // drifts during the run (a shared host) moves both sides of each ratio.
    let operands = Operands::new(selected);
    // Two steps of warm-up, in which the heap grows to hold the optimizer's
    // moments beside a step's tensors; the steps after them reuse it.
    // `scripts/bench_trl.py sft` skips two as well.
    step();
    step();
    operands.rates();
    let (mut seconds, mut peaks, mut mfus) = (vec![], vec![], vec![]);
    for _ in 0..repeats.max(1) {
        let s = step();
        let (whole, threads) = operands.rates();
        let peak = whole.max(threads);
        mfus.push(flops / s / 1e9 / peak);
        seconds.push(s);
        peaks.push(peak);
    }
    let (seconds, peak, mfu) = (median(&mut seconds), median(&mut peaks), median(&mut mfus));
    json!({
        "workload": "sft", "shape": shape.name(), "device": selected.label, "tokens_per_s": tokens / seconds, "seconds_per_step": seconds,
        "model_gflop_per_s": flops / seconds / 1e9, "matmul_peak_gflop_per_s": peak, "mfu": mfu,
    })
}

pub fn rm(selected: &Selected, shape: Shape, repeats: usize) -> Value {
    const PAIRS: usize = 16;
    const LEN: usize = 96;
    let device = selected.device.clone().autodiff();
    let mut model = ScalarModel::build(bench_model(shape, &selected.device), &mut SeededInit::new(1), &device)
        .expect("a head builds");
    let mut optim = GuardedAdamW::new(0.0, 1.0, true);
    let seqs = random_rows(shape, 2 * PAIRS, LEN, 2);
    let pairs: Vec<TokenPair> = (0..PAIRS)
        .map(|i| TokenPair {
            chosen: seqs[i].clone(),
            rejected: seqs[PAIRS + i].clone(),
            // Prompts of a quarter of each side.
            chosen_start: LEN / 4,
            rejected_start: LEN / 4,
            gap: 0.0,
        })
        .collect();
    let seconds = super::median_seconds(repeats, || {
        let (out, grads) = pair_gradients(&model, &pairs, false, 0.0, 0);
        optim.step(1e-4, &mut model, out.loss as f64, grads);
        let _ = model.score.val().into_data();
    });
    json!({ "workload": "rm", "shape": shape.name(), "device": selected.label, "pairs_per_s": PAIRS as f64 / seconds, "seconds_per_step": seconds })
}
