//! The `ppo` workload: policy, frozen reference, value model and reward
//! model of the benchmark shape (random weights); one iteration samples 48
//! tokens for each of 32 prompts of 16 tokens at T = 1.0 (no EOS, so every
//! response is full length), scores them under all four models, and runs 4
//! epochs over 4 minibatches of 8. Reports episodes per second over the
//! iterations after the first. `scripts/bench_trl.py ppo` runs the same
//! workload through TRL's PPO trainer.

use serde_json::{Value, json};

use super::generation::{NEW_TOKENS, PROMPT_LEN, PROMPTS};
use super::training::{bench_model, random_rows};
use crate::device::Selected;
use crate::model::ScalarModel;
use crate::model::weights::SeededInit;
use crate::rlhf::ppo::config::PpoConfig;
use crate::rlhf::ppo::trainer::{PpoTrainer, Prompts};

pub fn run(selected: &Selected, repeats: usize) -> Value {
    let device = selected.device.clone().autodiff();
    let policy = bench_model(&selected.device);
    let value =
        ScalarModel::build(bench_model(&selected.device), &mut SeededInit::new(1), &device).expect("a head builds");
    let config = PpoConfig {
        batch_size: PROMPTS,
        minibatch_size: 8,
        ppo_epochs: 4,
        max_new_tokens: NEW_TOKENS,
        missing_eos_penalty: None,
        lr: 1e-5,
        ..PpoConfig::default()
    };
    let prompts = Prompts::Tokens(random_rows(PROMPTS, PROMPT_LEN, 3));
    let mut trainer = PpoTrainer::from_models(&config, policy, value, prompts, None, 0);
    // The first iteration (warm-up) is not timed.
    let seconds = super::median_seconds(repeats, || {
        trainer.step(&mut |_, _, _| std::ops::ControlFlow::Continue(()));
    });
    json!({
        "workload": "ppo", "device": selected.label, "episodes_per_s": PROMPTS as f64 / seconds,
        "seconds_per_iteration": seconds,
    })
}
