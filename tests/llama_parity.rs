//! The Llama family against transformers: tiny random LlamaForCausalLM
//! (grouped-query attention 6:2, head_dim 8, untied embeddings, Llama 3's
//! rope scaling) and Qwen2ForCausalLM (q/k/v biases, 3:1, tied), made and
//! run by scripts/make_llama_fixture.py; the logits at every position of
//! each text agree to 1e-4.

use std::path::Path;

use burn::tensor::Device;
use rlhf_tui::model::batch::PaddedBatch;
use rlhf_tui::model::hf::safetensors_io;
use rlhf_tui::model::llama::Llama;
use rlhf_tui::model::llama_config::LlamaConfig;

fn dir(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llama")
        .join(name)
}

fn check(name: &str) {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir("logits.json")).unwrap()).unwrap();
    let device = Device::flex();
    let config = LlamaConfig::from_file(&dir(name).join("config.json")).unwrap();
    let mut weights = safetensors_io::read(&dir(name).join("model.safetensors")).unwrap();
    let model = Llama::build(&config, &mut weights, &device).unwrap();
    weights.finish().unwrap();
    let case = &expected[name];
    let mut worst = 0.0f32;
    for (ids, logits) in case["ids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(case["logits"].as_array().unwrap())
    {
        let ids: Vec<u32> = serde_json::from_value(ids.clone()).unwrap();
        let batch = PaddedBatch::right_padded(std::slice::from_ref(&ids), 0);
        let hidden = model.forward(
            batch.ids_tensor(&device),
            batch.positions_tensor(&device),
            batch.mask_tensor(&device),
        );
        let got: Vec<f32> = model.lm_logits(hidden).into_data().try_to_vec().unwrap();
        let want: Vec<f32> = logits
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
            .collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            worst = worst.max((g - w).abs());
        }
    }
    println!("{name}: largest logit difference {worst:.2e}");
    assert!(worst < 1e-4, "{name}: {worst}");
}

#[test]
fn llama_logits_match_transformers() {
    check("tiny-llama");
}

#[test]
fn qwen2_logits_match_transformers() {
    check("tiny-qwen2");
}
