//! The `ppo` workload: policy, frozen reference, value model and reward
//! model of a shape (random weights); one iteration samples tokens for
//! each prompt at T = 1.0 (no EOS, so every response is full length),
//! scores them under all four models, and runs epochs over minibatches,
//! in the numbers `Shape::ppo` gives (at the default shape 32 prompts of
//! 16 tokens, 48 new tokens, 4 epochs over 4 minibatches of 8). Reports
//! episodes per second over the iterations after the first, and the
//! process's peak resident memory. `scripts/bench_trl.py ppo` runs the
//! same workload through TRL's PPO trainer.

use serde_json::{Value, json};

use super::shape::Shape;
use super::training::{bench_model, random_rows};
use crate::device::Selected;
use crate::model::ScalarModel;
use crate::model::weights::SeededInit;
use crate::rlhf::ppo::config::PpoConfig;
use crate::rlhf::ppo::trainer::{PpoTrainer, Prompts};

pub fn run(selected: &Selected, shape: Shape, repeats: usize) -> Value {
    let device = selected.device.clone().autodiff();
    let work = shape.ppo();
    let policy = bench_model(shape, &selected.device);
    let value = ScalarModel::build(bench_model(shape, &selected.device), &mut SeededInit::new(1), &device)
        .expect("a head builds");
    let config = PpoConfig {
        batch_size: work.prompts,
        minibatch_size: work.minibatch,
        ppo_epochs: work.epochs,
        max_new_tokens: work.new_tokens,
        missing_eos_penalty: None,
        lr: 1e-5,
        ..PpoConfig::default()
    };
    let prompts = Prompts::Tokens(random_rows(shape, work.prompts, work.prompt_len, 3));
    let mut trainer = PpoTrainer::from_models(&config, policy, value, prompts, None, 0);
    // The first iteration (warm-up) is not timed.
    let seconds = super::median_seconds(repeats, || {
        trainer.step(&mut |_, _, _| std::ops::ControlFlow::Continue(()));
    });
    json!({
        "workload": "ppo", "shape": shape.name(), "device": selected.label,
        "episodes_per_s": work.prompts as f64 / seconds, "seconds_per_iteration": seconds,
        "peak_rss_mib": peak_rss_mib(),
    })
}

/// The process's peak resident memory in MiB, where Linux reports it.
pub(super) fn peak_rss_mib() -> Option<f64> {
    crate::memory::peak_resident_bytes().map(|bytes| bytes as f64 / f64::from(1 << 20))
}
