//! The `dpo` workload: a policy and its frozen copy as the reference, of a
//! shape (random weights); one step takes 16 pairs, a prompt of 16 tokens
//! and chosen and rejected responses of 49 (48 and the end-of-sequence
//! token TRL appends), scores both sides under both models and takes one
//! optimizer step of DPO's loss. Reports pairs per second over the steps
//! after the first. `scripts/bench_trl.py dpo` runs the same workload
//! through TRL's DPO trainer.

use serde_json::{Value, json};

use super::shape::Shape;
use super::training::{bench_model, random_rows};
use crate::device::Selected;
use crate::rlhf::dpo::loss::DpoLossKind;
use crate::rlhf::dpo::trainer::{DpoPair, gradients};
use crate::rlhf::optim::GuardedAdamW;

const PAIRS: usize = 16;
const PROMPT_LEN: usize = 16;
const RESPONSE_LEN: usize = 49;

pub fn run(selected: &Selected, shape: Shape, repeats: usize) -> Value {
    let mut policy = bench_model(shape, &selected.device);
    let reference = shape.model(0, &selected.device);
    // The trainer's optimizer, with its NaN guard and clipping.
    let mut optim = GuardedAdamW::new(0.0, 5.0, true);
    let rows = |len, seed| random_rows(shape, PAIRS, len, seed);
    let (prompts, chosen, rejected) = (rows(PROMPT_LEN, 4), rows(RESPONSE_LEN, 5), rows(RESPONSE_LEN, 6));
    let pairs: Vec<DpoPair> = (0..PAIRS)
        .map(|i| DpoPair {
            prompt: prompts[i].clone(),
            chosen: chosen[i].clone(),
            rejected: rejected[i].clone(),
        })
        .collect();
    let seconds = super::median_seconds(repeats, || {
        let (stats, grads) = gradients(&policy, &reference, &pairs, 0, (0.1, DpoLossKind::Sigmoid));
        optim.step(1e-5, &mut policy, stats[0], grads);
    });
    json!({
        "workload": "dpo", "shape": shape.name(), "device": selected.label,
        "pairs_per_s": PAIRS as f64 / seconds, "seconds_per_step": seconds,
    })
}
