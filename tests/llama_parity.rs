//! The Llama family against transformers: tiny random LlamaForCausalLM
//! (grouped-query attention 6:2, head_dim 8, untied embeddings, Llama 3's
//! rope scaling) and Qwen2ForCausalLM (q/k/v biases, 3:1, tied), made and
//! run by scripts/make_llama_fixture.py: the logits at every position of
//! each text, a left-padded batch's logits and greedy tokens from
//! transformers' cached `generate`, and the scores of transformers' own
//! reward models (`…ForSequenceClassification`) agree to 1e-4 (tokens
//! exactly); the cache, saving and reopening (language and reward models),
//! and the three stages through `train`.

mod common;

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

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir("logits.json")).unwrap()).unwrap()
}

/// The fixture's model `name`, every tensor of its file used.
fn built(name: &str, device: &Device) -> (LlamaConfig, Llama) {
    let config = LlamaConfig::from_file(&dir(name).join("config.json")).unwrap();
    let mut weights = safetensors_io::read(&dir(name).join("model.safetensors")).unwrap();
    let model = Llama::build(&config, &mut weights, device, true).unwrap();
    weights.finish().unwrap();
    (config, model)
}

/// transformers' logits for text `i` of model `name`, flattened.
fn transformers_logits(expected: &serde_json::Value, name: &str, i: usize) -> Vec<f32> {
    expected[name]["logits"][i]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect()
}

/// The largest difference between two runs of logits of one length.
fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max)
}

fn check(name: &str) {
    let expected = expected();
    let device = Device::flex();
    let (_, model) = built(name, &device);
    let mut largest = 0.0f32;
    for (i, ids) in expected[name]["ids"].as_array().unwrap().iter().enumerate() {
        let ids: Vec<u32> = serde_json::from_value(ids.clone()).unwrap();
        let batch = PaddedBatch::right_padded(std::slice::from_ref(&ids), 0);
        let hidden = model.forward(
            batch.ids_tensor(&device),
            batch.positions_tensor(&device),
            batch.mask_tensor(&device),
            None,
        );
        let got: Vec<f32> = model.lm_logits(hidden).into_data().try_to_vec().unwrap();
        largest = largest.max(worst(&got, &transformers_logits(&expected, name, i)));
    }
    println!("{name}: largest logit difference {largest:.2e}");
    assert!(largest < 1e-4, "{name}: {largest}");
}

#[test]
fn llama_logits_match_transformers() {
    check("tiny-llama");
}

#[test]
fn qwen2_logits_match_transformers() {
    check("tiny-qwen2");
}

/// Decoding with the cache, one position at a time after the prompt, gives
/// the logits of the whole sequence run at once; and in a left-padded batch
/// the longer row gets its own logits.
#[test]
fn the_cache_and_left_padding_give_the_same_logits() {
    use burn::tensor::{Bool, Int, Tensor, TensorData};
    use rlhf_tui::model::kv_cache::KvCache;
    let device = Device::flex();
    for name in ["tiny-llama", "tiny-qwen2"] {
        let (config, model) = built(name, &device);
        let ids: Vec<u32> = vec![5, 17, 300, 42, 9, 1000, 7, 64];
        let run = |batch: &PaddedBatch, cache: Option<&mut KvCache>| -> Vec<f32> {
            let hidden = model.forward(
                batch.ids_tensor(&device),
                batch.positions_tensor(&device),
                batch.mask_tensor(&device),
                cache,
            );
            model.lm_logits(hidden).into_data().try_to_vec().unwrap()
        };
        let whole = run(&PaddedBatch::right_padded(std::slice::from_ref(&ids), 0), None);
        // The prompt's 5 positions, then one position a step.
        let mut cache = KvCache::new(config.layers);
        let mut stepped = run(&PaddedBatch::right_padded(&[ids[..5].to_vec()], 0), Some(&mut cache));
        for (pos, &token) in ids.iter().enumerate().skip(5) {
            let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![token as i64], [1, 1]), &device);
            let positions = Tensor::<2, Int>::from_data(TensorData::new(vec![pos as i64], [1, 1]), &device);
            let mask = Tensor::<4, Bool>::from_data(TensorData::new(vec![false; pos + 1], [1, 1, 1, pos + 1]), &device);
            let hidden = model.forward(tokens, positions, mask, Some(&mut cache));
            stepped.extend(model.lm_logits(hidden).into_data().try_to_vec::<f32>().unwrap());
        }
        let cached = worst(&whole, &stepped);
        assert!(cached < 1e-4, "{name}: cached decoding differs by {cached}");
        // A shorter row left-padded beside it gets its own logits at its
        // real positions (and the longer row its own).
        let short = vec![8, 9, 10];
        let alone = run(&PaddedBatch::right_padded(std::slice::from_ref(&short), 0), None);
        let both = run(&PaddedBatch::left_padded(&[ids.clone(), short.clone()], 0), None);
        let (first_row, second_row) = both.split_at(whole.len());
        let padded = &second_row[(ids.len() - short.len()) * config.vocab_size..];
        let padding = worst(&whole, first_row).max(worst(&alone, padded));
        assert!(padding < 1e-4, "{name}: a left-padded batch differs by {padding}");
    }
}

/// Through the model interface: a Llama-family directory opens as a
/// `CausalLm` with transformers' logits, saves and reopens bit for bit,
/// and a reward model drawn on its body saves as
/// `…ForSequenceClassification` and reopens with the same scores.
#[test]
fn llama_directories_open_save_and_reopen_through_the_model_interface() {
    use rlhf_tui::model::{HeadKind, hf};
    use rlhf_tui::rlhf::reward::score_sequences;
    let device = Device::flex();
    let expected = expected();
    for name in ["tiny-llama", "tiny-qwen2"] {
        let (model, tokenizer) = hf::load_language_model(&dir(name), &device).unwrap();
        let ids: Vec<u32> = serde_json::from_value(expected[name]["ids"][0].clone()).unwrap();
        let batch = PaddedBatch::right_padded(std::slice::from_ref(&ids), 0);
        let logits = |m: &rlhf_tui::model::CausalLm| -> Vec<f32> {
            let hidden = m.forward(
                batch.ids_tensor(&device),
                batch.positions_tensor(&device),
                batch.mask_tensor(&device),
                None,
            );
            m.lm_logits(hidden).into_data().try_to_vec().unwrap()
        };
        let got = logits(&model);
        let largest = worst(&got, &transformers_logits(&expected, name, 0));
        assert!(largest < 1e-4, "{name}: {largest}");

        let tmp = tempfile::tempdir().unwrap();
        hf::save_language_model(tmp.path(), &model, &tokenizer).unwrap();
        let (again, _) = hf::load_language_model(tmp.path(), &device).unwrap();
        let head = HeadKind::LanguageModel;
        assert_eq!(model.config_json(head), again.config_json(head));
        assert_eq!(logits(&again), got, "{name}: reopened");

        let (rm, _) = hf::load_scalar_model(&dir(name), &device, Some(3)).unwrap();
        let rm_dir = tmp.path().join("rm");
        hf::save_scalar_model(&rm_dir, &rm, &tokenizer).unwrap();
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(rm_dir.join("config.json")).unwrap()).unwrap();
        assert!(
            config["architectures"][0]
                .as_str()
                .unwrap()
                .ends_with("ForSequenceClassification")
        );
        assert!(hf::is_scalar_model(&rm_dir).unwrap());
        let (rm_again, _) = hf::load_scalar_model(&rm_dir, &device, None).unwrap();
        let score = |m| -> Vec<f32> {
            score_sequences(m, &[ids.clone(), ids[..4].to_vec()], &[0, 0], 0)
                .into_data()
                .try_to_vec()
                .unwrap()
        };
        assert_eq!(score(&rm), score(&rm_again), "{name}: reward model reopened");
    }
}

/// SFT, the reward model and PPO through `train` on a Qwen2 model: each
/// stage runs, SFT's held-out loss falls, and the checkpoints are the
/// family's own (`Qwen2ForCausalLM`, `Qwen2ForSequenceClassification`).
#[test]
fn the_three_stages_run_on_a_qwen2_model() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("q.ron");
    let init = dir("tiny-qwen2");
    std::fs::write(
        &config,
        format!(
            "(sft: (init: {init:?}, steps: 20, batch_size: 4, demonstrations: 64, eval_examples: 8, eval_every: 10),
              rm: (steps: 10, batch_size: 4, train_pairs: 32, eval_pairs: 16),
              ppo: (iterations: 2, batch_size: 4, minibatch_size: 2, ppo_epochs: 1, max_new_tokens: 8))"
        ),
    )
    .unwrap();
    for stage in ["sft", "rm", "ppo"] {
        let summary = common::cli::train(tmp.path(), "q", &config, stage);
        if stage == "sft" {
            let (before, after) = (
                summary["eval/loss_before"].as_f64().unwrap(),
                summary["eval/loss"].as_f64().unwrap(),
            );
            assert!(after < before, "SFT's held-out loss {before} → {after}");
        }
    }
    let architecture = |checkpoint: &str| -> String {
        let path = tmp.path().join("q/checkpoints").join(checkpoint).join("config.json");
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        config["architectures"][0].as_str().unwrap().to_string()
    };
    assert_eq!(architecture("sft-20"), "Qwen2ForCausalLM");
    assert_eq!(architecture("rm-10"), "Qwen2ForSequenceClassification");
    assert_eq!(architecture("ppo-2"), "Qwen2ForCausalLM");
}

/// transformers' greedy `generate` with its cache on a left-padded batch
/// of prompts of unequal length: the same logits at each row's last
/// prompt position, and the same ten new tokens in every row.
#[test]
fn greedy_decoding_of_a_left_padded_batch_matches_transformers() {
    use rlhf_tui::model::sampling::SamplingParams;
    use rlhf_tui::model::{GenerateConfig, generate, hf};
    let device = Device::flex();
    let expected = expected();
    for name in ["tiny-llama", "tiny-qwen2"] {
        let want = &expected[name]["greedy"];
        let pad = expected[name]["pad"].as_u64().unwrap() as u32;
        let prompts: Vec<Vec<u32>> = serde_json::from_value(want["prompts"].clone()).unwrap();
        let (model, _) = hf::load_language_model(&dir(name), &device).unwrap();

        let batch = PaddedBatch::left_padded(&prompts, pad);
        let hidden = model.forward(
            batch.ids_tensor(&device),
            batch.positions_tensor(&device),
            batch.mask_tensor(&device),
            None,
        );
        let [b, q, _] = hidden.dims();
        let last: Vec<f32> = model
            .lm_logits(hidden.narrow(1, q - 1, 1))
            .into_data()
            .try_to_vec()
            .unwrap();
        let theirs: Vec<f32> = (0..b)
            .flat_map(|i| {
                want["last_logits"][i]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let largest = worst(&last, &theirs);
        assert!(largest < 1e-4, "{name}: left-padded logits differ by {largest}");

        let new: Vec<Vec<u32>> = serde_json::from_value(want["new_tokens"].clone()).unwrap();
        let config = GenerateConfig {
            max_new_tokens: new[0].len(),
            sampling: SamplingParams {
                temperature: 0.0,
                top_k: 0,
                top_p: 1.0,
            },
            eos_token_id: None,
            pad_token_id: pad,
            seed: 0,
        };
        let got = generate(&model, &prompts, &config);
        assert_eq!(got.tokens, new, "{name}: greedy tokens");
        eprintln!("{name}: left-padded logits within {largest:.1e}; greedy tokens identical");
    }
}

/// The reward models transformers wrote (`…ForSequenceClassification`,
/// one label, a pad token) score a right-padded batch as transformers
/// does, pooling at each text's last token.
#[test]
fn reward_models_score_as_transformers_does() {
    use rlhf_tui::model::hf;
    use rlhf_tui::rlhf::reward::score_sequences;
    let device = Device::flex();
    let expected = expected();
    for name in ["tiny-llama", "tiny-qwen2"] {
        let ids: Vec<Vec<u32>> = serde_json::from_value(expected[name]["ids"].clone()).unwrap();
        let pad = expected[name]["pad"].as_u64().unwrap() as u32;
        let want: Vec<f32> = serde_json::from_value(expected[name]["scores"].clone()).unwrap();
        let (rm, _) = hf::load_scalar_model(&dir(&format!("{name}-rm")), &device, None).unwrap();
        let got: Vec<f32> = score_sequences(&rm, &ids, &[0, 0], pad)
            .into_data()
            .try_to_vec()
            .unwrap();
        let largest = worst(&got, &want);
        assert!(largest < 1e-4, "{name}: scores {got:?}, transformers {want:?}");
        eprintln!("{name}: reward model scores within {largest:.1e}");
    }
}
