//! The `grpo` workload: a policy (its start frozen as the reference) and a
//! reward model of a shape (random weights); one iteration draws 8 prompts
//! of 16 tokens, samples 4 responses to each at T = 1.0 (no EOS, so every
//! response is 48 tokens), scores them (reward model and reference
//! log-probs: rlhf-tui reports the KL even at β 0) and takes one
//! optimizer step over the 32 (one epoch, TRL's `num_iterations` 1).
//! Reports responses per second over the iterations after the first, and
//! peak resident memory. `scripts/bench_trl.py grpo` runs the same
//! workload through TRL's GRPO trainer.

use serde_json::{Value, json};

use super::ppo::peak_rss_mib;
use super::shape::Shape;
use super::training::{bench_model, random_rows};
use crate::device::Selected;
use crate::model::ScalarModel;
use crate::model::weights::SeededInit;
use crate::rlhf::grouped::config::{GroupConfig, GroupMethod};
use crate::rlhf::grouped::trainer::GroupTrainer;
use crate::rlhf::online::Prompts;

const PROMPTS: usize = 8;
const GROUP: usize = 4;
const PROMPT_LEN: usize = 16;
const NEW_TOKENS: usize = 48;

pub fn run(selected: &Selected, shape: Shape, repeats: usize) -> Value {
    let policy = bench_model(shape, &selected.device);
    let reward = ScalarModel::build(
        shape.model(1, &selected.device),
        &mut SeededInit::new(1),
        &selected.device,
    )
    .expect("a head builds");
    let config = GroupConfig {
        prompts_per_iteration: PROMPTS,
        group_size: GROUP,
        minibatch_size: PROMPTS * GROUP,
        epochs: 1,
        max_new_tokens: NEW_TOKENS,
        beta: Some(0.0),
        missing_eos_penalty: None,
        lr: 1e-5,
        ..GroupConfig::default()
    };
    // Enough distinct prompts for every iteration, as TRL's dataset has.
    let prompts = Prompts::Tokens(random_rows(shape, PROMPTS * (repeats + 1), PROMPT_LEN, 3));
    let mut trainer = GroupTrainer::from_models(GroupMethod::Grpo, &config, policy, reward, prompts, None, 0);
    let seconds = super::median_seconds(repeats, || {
        trainer.step(&mut |_, _, _| std::ops::ControlFlow::Continue(()));
    });
    let responses = PROMPTS * GROUP;
    json!({
        "workload": "grpo", "shape": shape.name(), "device": selected.label,
        "episodes_per_s": responses as f64 / seconds, "seconds_per_iteration": seconds,
        "peak_rss_mib": peak_rss_mib(),
    })
}
