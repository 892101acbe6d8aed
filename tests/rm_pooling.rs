//! A reward model pooled over the response's tokens (`rm.pooling: Mean`)
//! instead of at the last token: it trains on the built-in world's pairs
//! to a held-out accuracy above 0.8, its checkpoint says how it pools, and
//! reads back and scores as it trained (and so PPO reads it).

mod common;

use burn::tensor::Device;
use rlhf_tui::model::hf;
use rlhf_tui::model::scalar::{POOLING_KEY, Pooling};
use rlhf_tui::rlhf::reward::score_sequences;

use common::cli::train;

#[test]
fn a_mean_pooled_reward_model_trains_saves_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("mean.ron");
    std::fs::write(
        &config,
        "(sft: (steps: 60), rm: (steps: 200, pooling: Mean), ppo: (iterations: 2, batch_size: 8, minibatch_size: 4, ppo_epochs: 1))",
    )
    .unwrap();
    let train = |stage: &str| train(tmp.path(), "mean", &config, stage);
    train("sft");
    let summary = train("rm");
    let accuracy = summary["eval/accuracy"].as_f64().unwrap();
    eprintln!("mean-pooled reward model: held-out accuracy {accuracy:.3}");
    assert!(accuracy > 0.8, "held-out accuracy {accuracy}");

    let dir = tmp.path().join("mean/checkpoints/rm-200");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config[POOLING_KEY], "mean");
    let device = Device::flex();
    let (rm, tokenizer) = hf::load_scalar_model(&dir, &device, None).unwrap();
    assert_eq!(rm.pooling, Pooling::Mean);
    // The same sequence scores differently once its response starts later:
    // only the response's tokens are averaged.
    let ids = tokenizer
        .try_encode("\n\nHuman: Where is the moon?\n\nAssistant: The moon is in the sky.")
        .unwrap();
    let score = |start: usize| -> f32 { score_sequences(&rm, std::slice::from_ref(&ids), &[start], 0).into_scalar() };
    assert_ne!(score(0), score(ids.len() - 3));
    train("ppo");
}
