//! The trainer thread for tests: the built-in base model, a reward model
//! made from it with a fresh head, and a worker spawned on a run.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use rlhf_tui::model::weights::SeededInit;
use rlhf_tui::model::{ScalarModel, hf};
use rlhf_tui::run::{RunConfig, RunDir};
use rlhf_tui::trainer::protocol::{Event, StageState};
use rlhf_tui::trainer::run_data::RunData;
use rlhf_tui::trainer::worker::{TrainerHandle, WorkerSetup, spawn};

pub fn base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/base")
}

/// The base model with a fresh, seeded scalar head, saved to `dir/rm`.
pub fn fresh_reward_model(dir: &Path) -> PathBuf {
    fresh_reward_model_of(&base(), dir)
}

/// The model in `base` with a fresh, seeded scalar head, saved to `dir/rm`.
pub fn fresh_reward_model_of(base: &Path, dir: &Path) -> PathBuf {
    let device = Device::flex();
    let (body, tokenizer) = hf::load_language_model(base, &device).unwrap();
    let rm = ScalarModel::build(body, &mut SeededInit::new(3), &device).unwrap();
    let rm_dir = dir.join("rm");
    hf::save_scalar_model(&rm_dir, &rm, &tokenizer).unwrap();
    rm_dir
}

/// A trainer thread on `run` on the CPU, labelling as "ann".
pub fn spawn_worker(run: RunDir, config: RunConfig) -> TrainerHandle {
    spawn(WorkerSetup {
        data: RunData::of(&config).unwrap(),
        config,
        run,
        device: Device::flex(),
        device_label: "cpu".into(),
        annotator: "ann".into(),
        panic_at_step: None,
    })
    .unwrap()
}

/// The checkpoint a stage's `Done` (or, stopped before its end,
/// `Stopped`) event names; `None` for any other event.
pub fn done_checkpoint(event: &Event) -> Option<&str> {
    match event {
        Event::Stage {
            state: StageState::Done { checkpoint } | StageState::Stopped { checkpoint },
            ..
        } => Some(checkpoint),
        _ => None,
    }
}
