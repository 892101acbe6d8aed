//! The reward model trained from preference files through the real
//! command: HH-RLHF's dialogues (the shipped harmless-base test split) and
//! a TRL file with a malformed line, which is reported with its file and
//! line number while the other pairs train.

use std::process::Command;

fn train_rm(runs: &std::path::Path, run: &str, data: &std::path::Path, steps: &str) -> std::process::Output {
    let root = env!("CARGO_MANIFEST_DIR");
    let config = runs.join(format!("{run}.ron"));
    // The base model stands in for an SFT checkpoint (a config's paths
    // are relative to it, so this one is absolute).
    let base = std::path::Path::new(root).join("assets/base");
    std::fs::write(
        &config,
        format!("(rm: (init: Some({base:?}), batch_size: 8, warmup_steps: 1))"),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .current_dir(root)
        .args([
            "train", "--stage", "rm", "--run", run, "--device", "cpu", "--steps", steps,
        ])
        .args([
            "--config",
            config.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ])
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

#[test]
fn the_reward_model_trains_on_hh_rlhf_and_trl_files() {
    let tmp = tempfile::tempdir().unwrap();
    let hh = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hh-rlhf-harmless/test.jsonl.gz");
    let out = train_rm(tmp.path(), "hh", &hh, "4");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let accuracy = summary["eval/accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy), "{summary}");
    // 20% of 2,312 pairs held out.
    let calibration: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("hh/rm_calibration.json")).unwrap()).unwrap();
    let held_out: u64 = calibration["bins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(held_out, 462);

    let trl = tmp.path().join("prefs.jsonl");
    let mut lines: Vec<String> = (0..20)
        .map(|i| {
            serde_json::json!({
                "prompt": "\n\nHuman: What is rain?\n\nAssistant:",
                "chosen": format!(" Rain is water that falls from the clouds. ({i})"),
                "rejected": format!(" Whatever. ({i})"),
            })
            .to_string()
        })
        .collect();
    lines.insert(6, r#"{"prompt": "p", "chosen": "only one side"}"#.to_string());
    std::fs::write(&trl, lines.join("\n")).unwrap();
    let out = train_rm(tmp.path(), "trl", &trl, "2");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:7: skipped", trl.display())) && stderr.contains("rejected"),
        "{stderr}"
    );
}
