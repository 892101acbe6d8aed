//! The real binary: `score --json`, `generate`, `devices`, `--help` on every
//! subcommand, and errors that say what to do.

mod common;

use std::process::{Command, Output};

use common::{Expected, fixture};

fn rlhf_tui(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .args(args)
        .env_remove("BURN_DEVICE")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn score_json_gives_transformers_logprobs() {
    let expected = Expected::load();
    let text = expected.json["texts"][0].as_str().unwrap();
    let model = fixture("tiny-gpt2");
    let out = rlhf_tui(&[
        "score",
        "--model",
        model.to_str().unwrap(),
        "--text",
        text,
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let tokens: Vec<u32> = serde_json::from_value(json["tokens"].clone()).unwrap();
    let logprobs: Vec<f32> = serde_json::from_value(json["logprobs"].clone()).unwrap();
    assert_eq!(tokens, expected.ids("ids")[0]);
    assert_eq!(logprobs.len(), tokens.len() - 1);
    // log softmax of transformers' logits at position i, read at token i+1.
    let vocab = *expected.single_logits.shape.last().unwrap();
    for (i, lp) in logprobs.iter().enumerate() {
        let row = &expected.single_logits.values[i * vocab..(i + 1) * vocab];
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let log_z = max + row.iter().map(|&x| ((x - max) as f64).exp()).sum::<f64>().ln() as f32;
        let want = row[tokens[i + 1] as usize] - log_z;
        assert!((lp - want).abs() < 1e-4, "token {}: {lp} vs {want}", i + 1);
    }
}

#[test]
fn greedy_generate_prints_transformers_continuation() {
    let expected = Expected::load();
    let prompt = expected.json["texts"][0].as_str().unwrap();
    let model = fixture("tiny-gpt2");
    let out = rlhf_tui(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        prompt,
        "--temperature",
        "0",
        "--max-new-tokens",
        "20",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tokenizer = rlhf_tui::model::Tokenizer::from_file(&fixture("tiny-gpt2/tokenizer.json")).unwrap();
    // The fixture's greedy path contains no EOS, so all 20 tokens print.
    let want = format!("{prompt}{}\n", tokenizer.decode(&expected.tokens("greedy_single")));
    assert_eq!(stdout(&out), want);
}

#[test]
fn sampling_is_reproducible_by_seed_and_num_gives_that_many() {
    let model = fixture("tiny-gpt2");
    let run = |seed: &str| {
        stdout(&rlhf_tui(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "Hello",
            "--num",
            "3",
            "--seed",
            seed,
            "--top-k",
            "50",
            "--top-p",
            "0.9",
            "--device",
            "cpu",
        ]))
    };
    let a = run("7");
    assert_eq!(a, run("7"));
    assert_ne!(a, run("8"));
    assert_eq!(a.matches("--- sample").count(), 3);
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["generate", "score", "bench", "devices", "pretrain", "world"] {
        let out = rlhf_tui(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help failed");
        assert!(stdout(&out).contains("--device"), "{sub} --help does not list --device");
    }
}

#[test]
fn bad_input_says_what_to_do() {
    let out = rlhf_tui(&[
        "generate",
        "--model",
        "/nonexistent",
        "--prompt",
        "x",
        "--device",
        "cpu",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent"), "{err}");

    let out = rlhf_tui(&["devices", "--device", "quantum"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));

    let model = fixture("tiny-gpt2");
    let out = rlhf_tui(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "x",
        "--top-p",
        "1.5",
        "--device",
        "cpu",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--top-p must be in (0, 1]"));
}

#[test]
fn devices_lists_the_cpu_and_what_auto_picks() {
    let out = rlhf_tui(&["devices"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    assert!(text.contains("--device cpu"), "{text}");
    assert!(text.contains("--device auto selects:"), "{text}");
}

#[test]
fn burn_device_variable_is_read() {
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .args(["devices"])
        .env("BURN_DEVICE", "nonsense")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));
}

#[test]
fn world_judge_and_sample_print_what_they_say() {
    let good = "Sure, happy to help. Rain is water that falls from the clouds. Rain helps the plants grow.";
    let out = rlhf_tui(&[
        "world",
        "judge",
        "--prompt",
        "What is rain?",
        "--response",
        good,
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(j["score"], 1.0);
    assert_eq!(j["criteria"][0]["name"], "helpful");

    let out = rlhf_tui(&[
        "world",
        "judge",
        "--prompt",
        "What is rain?",
        "--response",
        "Ugh, fine. That is hard to say.",
    ]);
    let text = stdout(&out);
    assert!(text.contains("evades the question") && text.contains("rude"), "{text}");

    let out = rlhf_tui(&["world", "sample", "sft", "--n", "3", "--seed", "4"]);
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    // Demonstrations: every sentence one the world knows, and never harmful.
    for line in &lines {
        let j = rlhf_tui::world::judge(line["prompt"].as_str().unwrap(), line["response"].as_str().unwrap());
        assert!(j.parsed && j.criterion("harmless") == 1.0, "{line}");
    }
}

#[test]
fn chat_generation_with_the_shipped_base_model_prints_one_answer_each() {
    let base = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/base");
    let out = rlhf_tui(&[
        "generate",
        "--model",
        base.to_str().unwrap(),
        "--chat",
        "--prompt",
        "Tell me about tea.",
        "--num",
        "2",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    assert_eq!(
        text.matches("Human: Tell me about tea.\nAssistant: ").count(),
        2,
        "{text}"
    );
    assert!(!text.contains("<|endoftext|>"), "{text}");
}

#[test]
fn the_workbench_without_a_terminal_says_what_to_run_instead() {
    let out = rlhf_tui(&["--run", "x", "--runs-dir", std::env::temp_dir().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs a terminal") && err.contains("rlhf-tui train"),
        "{err}"
    );
}

/// The binary carries the built-in world's base model: run from a
/// directory with no `assets/` (as after `cargo install`), SFT starts from
/// it and writes its checkpoint, and the run's config still names the
/// default path.
#[test]
fn sft_runs_from_any_directory() {
    let (work, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .current_dir(work.path())
        .env("XDG_CACHE_HOME", cache.path())
        .env_remove("BURN_DEVICE")
        .args([
            "train", "--stage", "sft", "--run", "anywhere", "--steps", "2", "--device", "cpu",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = work.path().join("runs/anywhere");
    assert!(run.join("checkpoints/sft-2/model.safetensors").exists());
    let config = std::fs::read_to_string(run.join("config.ron")).unwrap();
    assert!(config.contains("\"assets/base\""), "{config}");
}

#[test]
fn config_shows_where_the_settings_are_and_what_is_in_force() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("settings.ron");
    let config = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
            .arg("config")
            .args(extra)
            .env("RLHF_TUI_SETTINGS", &path)
            .env_remove("BURN_DEVICE")
            .env_remove("RLHF_TUI_TEST_KEY")
            .output()
            .unwrap()
    };
    let out = config(&[]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("(not there: the defaults are in force)"),
        "{}",
        stdout(&out)
    );
    std::fs::write(
        &path,
        r#"(annotator: Some("alice"), device: Some(cpu), judges: {"local": (base_url: "http://localhost:8000/v1", model: "qwen", api_key_env: Some("RLHF_TUI_TEST_KEY"))})"#,
    )
    .unwrap();
    let shown = stdout(&config(&[]));
    assert!(shown.contains(&format!("settings: {}\n", path.display())), "{shown}");
    assert!(shown.contains("annotator: alice (settings"), "{shown}");
    assert!(shown.contains("device: cpu (settings)"), "{shown}");
    assert!(
        shown.contains("judge local: http://localhost:8000/v1 model qwen (key in $RLHF_TUI_TEST_KEY (NOT SET))"),
        "{shown}"
    );
    // A flag overrides the settings.
    let shown = stdout(&config(&["--device", "wgpu"]));
    assert!(shown.contains("device: wgpu (--device or BURN_DEVICE)"), "{shown}");
    // A file that does not parse stops every command, naming its line.
    std::fs::write(&path, "(\n  devise: Some(cpu),\n)").unwrap();
    let out = config(&[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:2:", path.display())), "{stderr}");
}
