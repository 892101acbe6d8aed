//! The composed path, which every GPU runs, trains as the CPU's fused
//! operations do: from the same start, the first steps of SFT, the reward
//! model and PPO give the same metrics on both, to float tolerance, on
//! GPT-2 and on a Llama model (grouped-query attention, untied head). One
//! test in its own process, since the path is chosen for the whole process.

mod common;

use burn::tensor::Device;
use common::trainer::{base, fresh_reward_model_of};
use rlhf_tui::kernels::path;
use rlhf_tui::run::{RunConfig, RunDir};
use rlhf_tui::trainer::protocol::Stage;
use rlhf_tui::trainer::stage::{Metrics, StageRun, no_steering};

const STEPS: usize = 2;

fn config(base: &std::path::Path, rm: &std::path::Path) -> RunConfig {
    let mut config = RunConfig::parse(
        "(sft: (steps: 4, batch_size: 8, demonstrations: 64, eval_examples: 8, eval_every: 50),
          rm: (steps: 4, batch_size: 8, train_pairs: 64, eval_pairs: 16),
          ppo: (iterations: 4, batch_size: 4, minibatch_size: 2, ppo_epochs: 2, max_new_tokens: 12))",
    )
    .unwrap();
    config.sft.init = base.to_path_buf();
    config.rm.init = Some(base.to_path_buf());
    config.ppo.policy_init = Some(base.to_path_buf());
    config.ppo.reward_init = Some(rm.to_path_buf());
    config
}

/// `STEPS` steps of each stage on a fresh run, on the path chosen.
fn train(root: &std::path::Path, config: &RunConfig, composed: bool) -> Vec<(Stage, Metrics)> {
    path::force(composed);
    let run = RunDir::create(root, if composed { "composed" } else { "fused" }).unwrap();
    let mut out = Vec::new();
    for stage in [Stage::Sft, Stage::Rm, Stage::Ppo] {
        let mut running = StageRun::start(stage, config, &run, &Device::flex()).unwrap();
        for _ in 0..STEPS {
            out.push((stage, running.step(&mut no_steering).unwrap()));
        }
    }
    out
}

#[test]
fn sft_rm_and_ppo_steps_agree_on_the_composed_and_fused_paths() {
    let llama = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama/tiny-llama");
    for (name, model) in [("GPT-2", base()), ("Llama", llama)] {
        eprint!("{name}: ");
        compare(&model);
    }
}

fn compare(model: &std::path::Path) {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(model, &fresh_reward_model_of(model, tmp.path()));
    let fused = train(tmp.path(), &config, false);
    let composed = train(tmp.path(), &config, true);
    path::force(false);
    let mut largest = std::collections::BTreeMap::<String, f64>::new();
    for ((stage, a), (_, b)) in fused.iter().zip(&composed) {
        assert_eq!(a.len(), b.len(), "{stage:?}: the same metrics");
        for ((key, fa), (kb, cb)) in a.iter().zip(b) {
            assert_eq!(key, kb);
            // Relative to the value's size above 1.
            let diff = (fa - cb).abs() / fa.abs().max(1.0);
            assert!(diff <= 1e-3, "{stage:?} {key}: {fa} fused, {cb} composed");
            let worst = largest.entry(format!("{stage:?} {key}")).or_default();
            *worst = worst.max(diff);
        }
    }
    let (key, worst) = largest.iter().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
    eprintln!(
        "{} metrics compared; the largest relative difference is {worst:.2e} ({key})",
        largest.len()
    );
}
