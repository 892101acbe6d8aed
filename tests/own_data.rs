//! A person's own model and data (tests/fixtures/user, made by
//! scripts/make_user_data_fixture.py): a GPT-2 made by transformers with its
//! own tokenizer and ChatML template, TRL conversational demonstrations,
//! prompts and preference pairs, named by a config beside them. SFT, the
//! reward model and PPO run on them through the real binary, and learn.

mod common;

use std::path::Path;
use std::process::Command;

use common::cli::{figure, train_output};
use rlhf_tui::run::metrics::read_log;

fn user_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/user")
        .join(name)
}

fn train(stage: &str, runs: &Path) {
    train_with(stage, runs, "own", &user_fixture("run.ron"));
}

fn train_with(stage: &str, runs: &Path, run: &str, config: &Path) -> serde_json::Value {
    let out = train_output(runs, run, config, stage);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "train --stage {stage}: {stderr}");
    // No line of these files is bad: nothing was skipped.
    assert!(!stderr.contains("skipped"), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
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
    // One iteration's KL, over 32 answers of 12 tokens, swings by a few
    // nats whatever the rounding of the run; its mean over the run says
    // whether the penalty held the policy near the SFT model.
    let (mean_kl, most_kl) = (mean(&kl), kl.iter().map(|(_, v)| *v).fold(0.0, f64::max));
    println!(
        "PPO RM score {early:.3} (first 5 iterations) → {late:.3} (last 10), KL {mean_kl:.3} on average, at most {most_kl:.3}"
    );
    assert!(late > early + 0.2, "PPO's RM score {scores:?}");
    assert!(mean_kl < 3.0, "KL {kl:?}");
    // No evaluator was named: no judge figures, rather than the world's
    // judge on prompts it does not know.
    assert!(series(runs.path(), "ppo", "eval/judge_score_mean").is_empty());
    // What PPO changed: the evasions SFT learned from one demonstration in
    // ten give way to answers, in the model's own chat format.
    let evasions = |run: &str, checkpoint: &str| {
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
            .arg(runs.path().join(run).join("checkpoints").join(checkpoint))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).matches("I am not sure.").count()
    };
    let (before, after) = (evasions("own", "sft-800"), evasions("own", "ppo-60"));
    println!("evasions in 32 answers: SFT {before}, PPO {after}");
    assert!(after < before, "evasions: SFT {before}, PPO {after}");

    // Constitutional AI on the same files from the same SFT policy, with a
    // judge program as critic and evaluator: it knows the demonstrations'
    // facts, critiques a "not sure" under each principle and revises it to
    // the fact; the policy fine-tuned on the revisions evades less.
    let cai_run = runs.path().join("cai/checkpoints/sft-800");
    std::fs::create_dir_all(&cai_run).unwrap();
    for file in std::fs::read_dir(runs.path().join("own/checkpoints/sft-800")).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), cai_run.join(file.file_name())).unwrap();
    }
    let fixture = user_fixture("");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/judge_command.py");
    let config = runs.path().join("cai.ron");
    let own = std::fs::read_to_string(user_fixture("run.ron")).unwrap();
    let own = own
        .rsplit_once(')')
        .unwrap()
        .0
        .replace("Some(\"", &format!("Some(\"{}", fixture.display()));
    let own = own.replace("init: \"model\"", &format!("init: \"{}model\"", fixture.display()));
    std::fs::write(
        &config,
        format!(
            "{own}    cai: (samples: 256, rounds: 2, max_new_tokens: 12, steps: 60, batch_size: 16, lr: 0.001, feedback_pairs: 64),\n    \
             judge: (kind: Command((program: \"python3\", args: [\"{}\", \"--facts\", \"{}demos.jsonl\"], timeout_secs: 10.0))),\n)\n",
            script.display(),
            fixture.display()
        ),
    )
    .unwrap();
    let cai = train_with("cai", runs.path(), "cai", &config);
    let figure = |key: &str| figure(&cai, key);
    let revisions = std::fs::read_to_string(runs.path().join("cai/cai_revisions.jsonl")).unwrap();
    let fixed = revisions
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| {
            let last = r["steps"].as_array().unwrap().last().unwrap()["revision"]
                .as_str()
                .unwrap()
                .to_string();
            r["original"].as_str().unwrap().contains("not sure") && !last.contains("not sure") && last.ends_with('.')
        })
        .count();
    let (judged_before, judged_after) = (figure("eval/judge_score_mean_before"), figure("eval/judge_score_mean"));
    let cai_evasions = evasions("cai", "cai-60");
    println!(
        "CAI: {fixed} evasions revised to the fact; {:.3} of responses changed; held-out judge {judged_before:.3} -> {judged_after:.3}; evasions in 32 answers: SFT {before}, CAI {cai_evasions}",
        figure("cai/changed")
    );
    assert!(fixed > 5, "{revisions}");
    assert!(judged_after > judged_before, "{judged_before} -> {judged_after}");
    assert!(cai_evasions < before, "evasions: SFT {before}, CAI {cai_evasions}");
}
