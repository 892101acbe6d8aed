//! The reward model and PPO through the real command, after a short SFT
//! run: the reward model ranks held-out judge-labelled pairs as the judge
//! does at least 80% of the time and writes its calibration table and a
//! `GPT2ForSequenceClassification` checkpoint; PPO against it reports TRL's
//! metrics and raises the judge's score of the policy's answers clearly
//! above the SFT policy's while the KL stays bounded; and in a blind
//! comparison (`rlhf-tui eval`) the judge prefers the PPO policy over the
//! SFT policy and over the base model.

use std::process::Command;

use burn::tensor::Device;
use rlhf_tui::model::hf;

fn train(root: &str, runs: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .current_dir(root)
        .args([
            "train",
            "--run",
            "rm-ci",
            "--device",
            "cpu",
            "--runs-dir",
            runs.to_str().unwrap(),
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn reward_model_learns_the_judges_preferences_and_ppo_improves_on_sft() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path();

    // Without an SFT checkpoint the stage says what to run first.
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .current_dir(root)
        .args([
            "train",
            "--stage",
            "rm",
            "--run",
            "empty",
            "--device",
            "cpu",
            "--runs-dir",
            runs.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("train --stage sft --run empty"));
    assert!(
        !runs.join("empty").exists(),
        "a run that could not start is not left behind"
    );

    train(root, runs, &["--stage", "sft", "--steps", "60"]);
    // The default config: 600 steps of 32 pairs.
    let summary = train(root, runs, &["--stage", "rm"]);
    let accuracy = summary["eval/accuracy"].as_f64().unwrap();
    let ece = summary["eval/ece"].as_f64().unwrap();
    eprintln!("reward model: held-out accuracy {accuracy:.4}, ECE {ece:.4}");
    assert!(accuracy >= 0.8, "held-out accuracy {accuracy}");

    let run = runs.join("rm-ci");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let rm_line: serde_json::Value =
        serde_json::from_str(metrics.lines().find(|l| l.contains("\"stage\":\"rm\"")).unwrap()).unwrap();
    for key in [
        "loss",
        "accuracy",
        "margin",
        "mean_reward",
        "min_reward",
        "max_reward",
        "lr",
    ] {
        assert!(rm_line[key].is_number(), "rm metrics lack {key}");
    }
    let calibration: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("rm_calibration.json")).unwrap()).unwrap();
    let bins = calibration["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 10);
    assert_eq!(bins.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), 400);

    let (rm, _) = hf::load_scalar_model(&run.join("checkpoints/rm-600"), &Device::flex(), None).unwrap();
    assert_eq!(rm.score.val().dims(), [1, 128]);

    // PPO with the default config: 40 iterations of 32 episodes.
    let summary = train(root, runs, &["--stage", "ppo"]);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let ppo: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["stage"] == "ppo" && l["objective/kl"].is_number())
        .collect();
    assert_eq!(ppo.len(), 40);
    for key in [
        "objective/kl",
        "objective/entropy",
        "objective/non_score_reward",
        "objective/rlhf_reward",
        "objective/scores",
        "objective/kl_coef",
        "policy/approxkl_avg",
        "policy/clipfrac_avg",
        "loss/policy_avg",
        "loss/value_avg",
        "val/clipfrac_avg",
        "policy/entropy_avg",
        "val/ratio",
        "lr",
        "eps",
        "judge/score_mean",
    ] {
        assert!(ppo[39][key].is_number(), "ppo metrics lack {key}");
    }
    assert_eq!(ppo[39]["eps"].as_f64(), Some(40.0 * 32.0));
    // The first epoch starts at the rollout's own policy: the ratio stays near 1.
    let ratio = ppo[0]["val/ratio"].as_f64().unwrap();
    assert!((ratio - 1.0).abs() < 0.05, "val/ratio {ratio}");

    // Convergence: the judge (which PPO never sees) scores the policy's
    // answers higher, on held-out prompts and on the training batches,
    // while the KL to the SFT policy stays bounded.
    let before = summary["eval/judge_score_mean_before"].as_f64().unwrap();
    let after = summary["eval/judge_score_mean"].as_f64().unwrap();
    let series = |key: &str| ppo.iter().map(|l| l[key].as_f64().unwrap()).collect::<Vec<_>>();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let judge = series("judge/score_mean");
    let kl = series("objective/kl");
    let (first, last) = (mean(&judge[..3]), mean(&judge[30..]));
    let max_kl = kl.iter().copied().fold(f64::MIN, f64::max);
    eprintln!(
        "ppo: held-out judge {before:.3} -> {after:.3}; batch judge {first:.3} (iterations 1-3) -> {last:.3} (31-40); \
         RM score {:.2} -> {:.2}; KL max {max_kl:.2}, last {:.2}",
        ppo[0]["objective/scores"].as_f64().unwrap(),
        ppo[39]["objective/scores"].as_f64().unwrap(),
        kl[39]
    );
    assert!(after > before + 0.04, "held-out judge {before} -> {after}");
    assert!(last > first + 0.03, "batch judge {first} -> {last}");
    assert!(max_kl < 8.0, "objective/kl reached {max_kl}");
    // The same drift on held-out prompts, measured as DPO's is.
    let held_out_kl = summary["eval/kl"].as_f64().unwrap();
    assert!((0.0..10.0).contains(&held_out_kl), "eval/kl {held_out_kl}");
    hf::load_language_model(&run.join("checkpoints/ppo-40"), &Device::flex()).unwrap();

    // InstructGPT's headline, blind: the judge prefers the PPO policy's
    // answers over the SFT policy's and over the base model's, with the
    // whole 95% interval above a coin toss.
    let ppo_dir = run.join("checkpoints/ppo-40");
    for (against, dir) in [
        ("SFT", run.join("checkpoints/sft-60")),
        ("base", std::path::PathBuf::from("assets/base")),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
            .current_dir(root)
            .args([
                "eval", "--judge", "world", "--n", "100", "--json", "--device", "cpu", "--a",
            ])
            .arg(&ppo_dir)
            .arg("--b")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (rate, low, high) = (
            line["win_rate_a"].as_f64().unwrap(),
            line["ci_low"].as_f64().unwrap(),
            line["ci_high"].as_f64().unwrap(),
        );
        eprintln!(
            "PPO over {against}: {rate:.3} (95% {low:.3}-{high:.3}, {} ties)",
            line["ties"]
        );
        assert!(low > 0.5, "PPO over {against}: {line}");
    }
}
