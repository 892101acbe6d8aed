//! A person's own model and data (tests/fixtures/user, made by
//! scripts/make_user_data_fixture.py): a GPT-2 made by transformers with its
//! own tokenizer and ChatML template, TRL conversational demonstrations,
//! prompts and preference pairs, named by a config beside them. SFT, the
//! reward model and PPO run on them through the real binary, and learn.

mod common;

use std::path::Path;
use std::process::Command;

use rlhf_tui::run::metrics::read_log;

fn user_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/user")
        .join(name)
}

fn train(stage: &str, runs: &Path) {
    let config = user_fixture("run.ron");
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .args(["train", "--stage", stage, "--run", "own", "--device", "cpu", "--config"])
        .arg(&config)
        .arg("--runs-dir")
        .arg(runs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "train --stage {stage}: {stderr}");
    // No line of these files is bad: nothing was skipped.
    assert!(!stderr.contains("skipped"), "{stderr}");
}

/// `(step, value)` of a stage's metric, in order.
fn series(runs: &Path, stage: &str, key: &str) -> Vec<(usize, f64)> {
    let (logged, _) = read_log(&runs.join("own/metrics.jsonl"));
    logged
        .into_iter()
        .filter(|(s, _, _)| s == stage)
        .filter_map(|(_, step, values)| values.iter().find(|(k, _)| k == key).map(|(_, v)| (step, *v)))
        .collect()
}

#[test]
fn sft_rm_and_ppo_learn_on_your_own_model_and_files() {
    let runs = tempfile::tempdir().unwrap();
    train("sft", runs.path());
    let eval_loss = series(runs.path(), "sft", "eval/loss");
    let (first, last) = (eval_loss[0].1, eval_loss.last().unwrap().1);
    println!("SFT held-out loss {first:.3} → {last:.3}");
    assert!(last < first * 0.3, "SFT's held-out loss {first} → {last}");
    // The checkpoint reads conversations as the base model does.
    let sft = runs.path().join("own/checkpoints/sft-800");
    let template = std::fs::read_to_string(sft.join("chat_template.jinja")).unwrap();
    assert_eq!(
        template,
        std::fs::read_to_string(user_fixture("model/chat_template.jinja")).unwrap()
    );

    train("rm", runs.path());
    let accuracy = series(runs.path(), "rm", "eval/accuracy");
    println!("RM held-out accuracy {:.3}", accuracy[0].1);
    assert!(accuracy[0].1 > 0.9, "RM held-out accuracy {accuracy:?}");

    train("ppo", runs.path());
    let scores = series(runs.path(), "ppo", "objective/scores");
    let kl = series(runs.path(), "ppo", "objective/kl");
    let mean = |s: &[(usize, f64)]| s.iter().map(|(_, v)| v).sum::<f64>() / s.len() as f64;
    let (early, late) = (mean(&scores[..5]), mean(&scores[scores.len() - 10..]));
    let most_kl = kl.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    println!("PPO RM score {early:.3} (first 5 iterations) → {late:.3} (last 10), KL at most {most_kl:.3}");
    assert!(late > early + 0.1, "PPO's RM score {scores:?}");
    assert!(most_kl < 5.0, "KL {kl:?}");
    // No evaluator was named: no judge figures, rather than the world's
    // judge on prompts it does not know.
    assert!(series(runs.path(), "ppo", "eval/judge_score_mean").is_empty());
    // What PPO changed: the evasions SFT learned from one demonstration in
    // ten give way to answers, in the model's own chat format.
    let evasions = |checkpoint: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
            .args([
                "generate",
                "--chat",
                "--num",
                "32",
                "--max-new-tokens",
                "12",
                "--device",
                "cpu",
            ])
            .args(["--prompt", "What color is the frog?", "--model"])
            .arg(runs.path().join("own/checkpoints").join(checkpoint))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).matches("I am not sure.").count()
    };
    let (before, after) = (evasions("sft-800"), evasions("ppo-30"));
    println!("evasions in 32 answers: SFT {before}, PPO {after}");
    assert!(after < before, "evasions: SFT {before}, PPO {after}");
}
