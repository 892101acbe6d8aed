//! DPO on the built-in world through the real command: from the run's SFT
//! policy, on the judge's labelled pairs, with no reward model and no
//! sampling, the held-out judge score rises above SFT's while the policy
//! stays near it (KL per response bounded), and the implied reward orders
//! most held-out pairs as the judge does.

mod common;

use common::cli::{figure, train};

#[test]
fn dpo_raises_the_judge_score_over_sft_with_kl_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let config = tmp.path().join("dpo.ron");
    std::fs::write(&config, "()").unwrap();
    let sft = train(&runs, "dpo", &config, "sft");
    let dpo = train(&runs, "dpo", &config, "dpo");
    let (before, after) = (
        figure(&dpo, "eval/judge_score_mean_before"),
        figure(&dpo, "eval/judge_score_mean"),
    );
    let (kl, accuracy) = (figure(&dpo, "eval/kl"), figure(&dpo, "eval/rewards/accuracies"));
    eprintln!(
        "DPO: held-out judge {before:.3} -> {after:.3}, KL {kl:.3} nats per response, held-out pairs ordered {accuracy:.3}, \
         parse rate {:.3} -> {:.3}; last step: loss {:.3}, rewards/chosen {:.3}, rewards/rejected {:.3}, margins {:.3}",
        figure(&dpo, "eval/judge_parse_rate_before"),
        figure(&dpo, "eval/judge_parse_rate"),
        figure(&dpo, "loss"),
        figure(&dpo, "rewards/chosen"),
        figure(&dpo, "rewards/rejected"),
        figure(&dpo, "rewards/margins"),
    );
    // It started from the SFT checkpoint: the same held-out figures.
    assert!((before - figure(&sft, "eval/judge_score_mean")).abs() < 1e-9);
    assert!(after > before + 0.02, "judge {before} -> {after}");
    assert!(kl < 2.0, "KL {kl}");
    assert!(accuracy > 0.65, "held-out pairs ordered {accuracy}");
    assert!(figure(&dpo, "eval/judge_parse_rate") > 0.85);
    for key in [
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    ] {
        figure(&dpo, key);
    }
    assert!(runs.join("dpo/checkpoints/dpo-200/model.safetensors").exists());
}
