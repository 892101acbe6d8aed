//! `rlhf-tui pretrain` end to end on a tiny config: it trains a tokenizer
//! and a model, the loss falls, and the directory it writes opens and
//! generates.

use std::process::Command;

use burn::tensor::Device;
use rlhf_tui::model::hf;
use rlhf_tui::world::corpus::held_out_prompts;
use rlhf_tui::world::eval::sample_responses;

#[test]
fn pretrain_runs_end_to_end_and_writes_a_loadable_model() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("base");
    let status = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .args([
            "pretrain",
            "--out",
            out.to_str().unwrap(),
            "--device",
            "cpu",
            "--steps",
            "12",
            "--documents",
            "400",
        ])
        .args(["--tokenizer-out", tmp.path().join("tokenizer.json").to_str().unwrap()])
        .args([
            "--d-model",
            "32",
            "--layers",
            "1",
            "--heads",
            "2",
            "--context",
            "64",
            "--batch-size",
            "8",
            "--lr",
            "1e-2",
        ])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["steps_done"], 12);
    assert_eq!(report["config"]["seed"], 0);

    // The loss printed at step 0 is above the final one.
    let log = String::from_utf8_lossy(&status.stderr);
    let first: f32 = log
        .lines()
        .find(|l| l.starts_with("step"))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let last = report["final_loss"].as_f64().unwrap() as f32;
    assert!(last < first, "loss {first} -> {last}");

    let (model, tokenizer) = hf::load_language_model(&out, &Device::flex()).unwrap();
    assert_eq!(model.hidden_size(), 32);
    assert!(out.join("pretrain.json").exists());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("tokenizer.json")).unwrap(),
        tokenizer.json()
    );
    let prompts = held_out_prompts();
    let responses = sample_responses(&model, &tokenizer, &prompts[..2], 8, 0);
    assert_eq!(responses.len(), 2);
}
