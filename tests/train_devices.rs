//! Training on the other backends against the CPU: SFT, the reward model
//! and PPO each take the same steps from the same weights and data on
//! both, and their losses, statistics and updated weights agree to a
//! stated tolerance. wgpu (on a machine without a GPU, Mesa's software
//! Vulkan driver, lavapipe, which `.ci/run` installs) in every build;
//! LibTorch in a build with `--features tch` (`.ci/run` runs it where a
//! Python with the torch tch expects is installed, and says so where
//! not). The runs are kept to a few small steps.
//!
//! Tolerance: 2e-3 relative (1e-3 absolute near 0) on every metric and
//! 2e-3 on the logits of the updated policy. The two backends sum in
//! different orders (the CPU's shards add their gradients; wgpu runs the
//! batch whole): on lavapipe the metrics agreed to 3e-5 and the updated
//! policies' logits to 6e-4 (SFT) and 2e-4 (PPO); on LibTorch (torch
//! 2.9.0's CPU kernels) to 1.4e-5 and 7e-5 / 4e-5. Far below what a wrong
//! gradient, a skipped update or a mask read the wrong way round gives
//! (burn-tch's attention read ours so: held-out loss 3.84 for 0.30).

#![cfg(any(feature = "wgpu", feature = "tch"))]

mod common;

use burn::tensor::Device;
use common::trainer::{base, fresh_reward_model};
use rlhf_tui::model::CausalLm;
use rlhf_tui::model::batch::PaddedBatch;
use rlhf_tui::run::{RunConfig, RunDir};
use rlhf_tui::trainer::protocol::Stage;
use rlhf_tui::trainer::stage::{Metrics, StageRun, no_steering};

const STEPS: usize = 2;

fn logits(model: &CausalLm, device: &Device) -> Vec<f32> {
    let ids: Vec<u32> = (5..29).collect();
    let batch = PaddedBatch::left_padded(&[ids], 0);
    let hidden = model.forward(
        batch.ids_tensor(device),
        batch.positions_tensor(device),
        batch.mask_tensor(device),
        None,
    );
    model.lm_logits(hidden).into_data().try_to_vec::<f32>().unwrap()
}

/// `STEPS` steps of `stage` on `device`; their metrics and, where the stage
/// trains a policy, its logits on a fixed sequence afterwards.
fn train(
    stage: Stage,
    config: &RunConfig,
    (dir, on): (&std::path::Path, &str),
    device: &Device,
) -> (Vec<Metrics>, Option<Vec<f32>>) {
    let run = RunDir::create(dir, &format!("{}-{on}", stage.name())).unwrap();
    let mut active = StageRun::start(stage, config, &run, device).unwrap();
    let metrics = (0..STEPS).map(|_| active.step(&mut no_steering).unwrap()).collect();
    let policy = active.policy().map(|p| logits(&p, &p.device()));
    (metrics, policy)
}

fn compare(stage: Stage, config: &RunConfig, dir: &std::path::Path, (device, on): (&Device, &str)) {
    let (cpu, cpu_logits) = train(stage, config, (dir, "cpu"), &Device::flex());
    let (gpu, gpu_logits) = train(stage, config, (dir, on), device);
    let mut largest = (0.0f64, "");
    for (a, b) in cpu.iter().zip(&gpu) {
        assert_eq!(a.len(), b.len());
        for ((key, x), (_, y)) in a.iter().zip(b) {
            let diff = (x - y).abs();
            assert!(diff <= 2e-3 * x.abs().max(0.5), "{stage:?} {key}: cpu {x}, {on} {y}");
            if diff > largest.0 {
                largest = (diff, key);
            }
        }
    }
    let logit_diff = cpu_logits
        .zip(gpu_logits)
        .map(|(a, b)| a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max));
    if let Some(diff) = logit_diff {
        assert!(diff < 2e-3, "{stage:?}: updated policy's logits differ by {diff}");
    }
    eprintln!(
        "{} on {on}: {STEPS} steps, largest metric difference {:e} ({}), updated policy's logits {:?}",
        stage.name(),
        largest.0,
        largest.1,
        logit_diff
    );
}

/// SFT, the reward model and PPO on `device` against the CPU.
fn sft_rm_and_ppo_as_on_the_cpu(device: &Device, on: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let rm_dir = fresh_reward_model(tmp.path());
    let mut config = RunConfig::parse(
        "(sft: (steps: 2, batch_size: 4, demonstrations: 16, eval_examples: 4, eval_every: 100, warmup_steps: 0),
          rm: (steps: 2, batch_size: 4, train_pairs: 16, eval_pairs: 4, warmup_steps: 0),
          ppo: (iterations: 2, batch_size: 4, minibatch_size: 2, ppo_epochs: 1, max_new_tokens: 6))",
    )
    .unwrap();
    config.rm.init = Some(base());
    config.ppo.policy_init = Some(base());
    config.ppo.reward_init = Some(rm_dir);
    for stage in [Stage::Sft, Stage::Rm, Stage::Ppo] {
        compare(stage, &config, tmp.path(), (device, on));
    }
}

#[cfg(feature = "wgpu")]
#[test]
fn sft_rm_and_ppo_train_on_wgpu_as_on_the_cpu() {
    sft_rm_and_ppo_as_on_the_cpu(&Device::wgpu(burn::tensor::DeviceKind::DefaultDevice), "wgpu");
}

#[cfg(feature = "tch")]
#[test]
fn sft_rm_and_ppo_train_on_libtorch_as_on_the_cpu() {
    sft_rm_and_ppo_as_on_the_cpu(&Device::libtorch(), "tch");
}
