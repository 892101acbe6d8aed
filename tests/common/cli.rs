//! The command line as a person runs it: the built binary, from the
//! repository's root, on the CPU.

use std::path::Path;
use std::process::{Command, Output};

/// `rlhf-tui train --stage STAGE --run RUN --config CONFIG --runs-dir
/// RUNS --device cpu`, as it ended.
pub fn train_output(runs: &Path, run: &str, config: &Path, stage: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["train", "--stage", stage, "--run", run, "--device", "cpu", "--config"])
        .arg(config)
        .arg("--runs-dir")
        .arg(runs)
        .output()
        .unwrap()
}

/// The same, which must succeed: its JSON summary line.
pub fn train(runs: &Path, run: &str, config: &Path, stage: &str) -> serde_json::Value {
    let out = train_output(runs, run, config, stage);
    assert!(
        out.status.success(),
        "{stage}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A number from a summary line, which must have it.
pub fn figure(summary: &serde_json::Value, key: &str) -> f64 {
    summary[key]
        .as_f64()
        .unwrap_or_else(|| panic!("the summary has no {key}: {summary}"))
}
