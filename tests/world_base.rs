//! The base model shipped in assets/base: it loads, speaks the world's
//! sentences, and leaves room for SFT and PPO to improve it.

use burn::tensor::Device;
use rlhf_tui::model::hf;
use rlhf_tui::world::corpus::sft_pairs;
use rlhf_tui::world::eval::held_out_report;
use rlhf_tui::world::judge;

fn assets(path: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(path)
}

#[test]
fn the_shipped_base_model_speaks_the_world_but_is_not_yet_good() {
    let (model, tokenizer) = hf::load_language_model(&assets("base"), &Device::flex()).unwrap();
    let size = std::fs::metadata(assets("base/model.safetensors")).unwrap().len();
    assert!(size <= 10 * 1024 * 1024, "model.safetensors is {size} bytes");

    // Every held-out prompt, four times, with different seeds.
    let report = held_out_report(&model, &tokenizer, 4);

    let sft = sft_pairs(0, 2_000);
    let sft_mean = sft.iter().map(|(p, r)| judge(p, r).score).sum::<f32>() / sft.len() as f32;
    eprintln!("base model on held-out prompts: {report:?}; SFT set mean score {sft_mean:.3}");
    assert!(report.parse_rate >= 0.9, "parse rate {}", report.parse_rate);
    assert!(
        report.mean_score < sft_mean - 0.15,
        "base mean {} vs SFT mean {sft_mean}",
        report.mean_score
    );
}

#[test]
fn the_shipped_tokenizer_is_the_base_models() {
    let shipped = std::fs::read_to_string(assets("tokenizer.json")).unwrap();
    let base = std::fs::read_to_string(assets("base/tokenizer.json")).unwrap();
    assert_eq!(shipped, base);
}
