//! SFT on the built-in world through the real command: the run directory
//! is written, the loss falls, and the fine-tuned model answers held-out
//! prompts better than the base model by the judge.

use std::process::Command;

use burn::tensor::Device;
use rlhf_tui::model::hf;
use rlhf_tui::run::RunConfig;
use rlhf_tui::world::eval::{HELD_OUT_SAMPLES, held_out_report};

/// Mean judge score and parse rate on the held-out prompts, as `train`
/// reports them.
fn held_out_score(dir: &std::path::Path) -> (f32, f32) {
    let (model, tokenizer) = hf::load_language_model(dir, &Device::flex()).unwrap();
    let report = held_out_report(&model, &tokenizer, HELD_OUT_SAMPLES);
    (report.mean_score, report.parse_rate)
}

#[test]
fn sft_raises_the_judge_score_over_the_base_model() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .current_dir(root)
        .args([
            "train", "--stage", "sft", "--run", "ci", "--steps", "60", "--device", "cpu",
        ])
        .args(["--runs-dir", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sft_score = summary["eval/judge_score_mean"].as_f64().unwrap() as f32;

    let run = tmp.path().join("ci");
    let config = RunConfig::from_file(&run.join("config.ron")).unwrap();
    assert_eq!(config.sft.steps, 60);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        62,
        "the held-out loss before training, one line per step and the final judge line"
    );
    for key in ["loss", "mean_token_accuracy", "entropy", "num_tokens", "lr"] {
        assert!(lines[1][key].is_number(), "step 1 lacks {key}");
    }
    // Most tokens of a demonstration are already likely under the base
    // model, which saw every style in pretraining; SFT moves the choices
    // between styles, a few tokens a response, so the loss falls by little
    // while behaviour changes much (the judge's score below).
    let first = lines[0]["eval/loss"].as_f64().unwrap();
    let last = lines[60]["eval/loss"].as_f64().unwrap();
    eprintln!("held-out SFT loss {first:.4} -> {last:.4}");
    assert!(last < first * 0.95, "held-out loss {first} -> {last}");

    // The checkpoint is a model directory and scores what `train` said.
    let checkpoint = run.join("checkpoints/sft-60");
    let (again, _) = held_out_score(&checkpoint);
    assert!((again - sft_score).abs() < 1e-6);

    let base = std::path::Path::new(root).join("assets/base");
    let (base_score, _) = held_out_score(&base);
    eprintln!("held-out judge score: base {base_score:.3}, after 60 SFT steps {sft_score:.3}");
    assert!(sft_score > base_score + 0.12, "base {base_score} vs SFT {sft_score}");
}
