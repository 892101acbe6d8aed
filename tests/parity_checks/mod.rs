//! The parity checks themselves, written once and run on each device by
//! `parity.rs` (CPU) and `parity_wgpu.rs` (wgpu).

#![allow(dead_code)] // parity_wgpu.rs runs a subset

use burn::tensor::{Device, Int, Tensor, TensorData};
use rlhf_tui::model::batch::{PaddedBatch, attention_mask};
use rlhf_tui::model::hf;
use rlhf_tui::model::sampling::SamplingParams;
use rlhf_tui::model::{CausalLm, GenerateConfig, generate};

use crate::common::{Expected, fixture, max_abs_diff};

fn lm(device: &Device) -> CausalLm {
    hf::load_language_model(&fixture("tiny-gpt2"), device).unwrap().0
}

fn full_logits(model: &CausalLm, batch: &PaddedBatch, device: &Device) -> Vec<f32> {
    let hidden = model.forward(
        batch.ids_tensor(device),
        batch.positions_tensor(device),
        batch.mask_tensor(device),
        None,
    );
    model.lm_logits(hidden).into_data().try_to_vec::<f32>().unwrap()
}

pub fn single_logits(device: &Device, tol: f32) {
    let expected = Expected::load();
    let ids = &expected.ids("ids")[0];
    let got = full_logits(
        &lm(device),
        &PaddedBatch::left_padded(std::slice::from_ref(ids), 0),
        device,
    );
    let diff = max_abs_diff(&got, &expected.single_logits.values);
    eprintln!("single sequence: max |Δlogit| vs transformers = {diff:e}");
    assert!(diff < tol, "max |Δlogit| = {diff}");
}

pub fn batch_logits(device: &Device, tol: f32) {
    let expected = Expected::load();
    let seqs: Vec<Vec<u32>> = expected.ids("ids")[..2].to_vec();
    let batch = PaddedBatch::left_padded(&seqs, expected.json["eos_token_id"].as_u64().unwrap() as u32);
    assert_eq!(
        batch.ids,
        expected
            .ids("batch_ids")
            .concat()
            .iter()
            .map(|&x| x as i64)
            .collect::<Vec<_>>()
    );
    let got = full_logits(&lm(device), &batch, device);
    let want = &expected.batch_logits.values;
    let vocab = *expected.batch_logits.shape.last().unwrap();
    // Only real tokens are compared: padding positions' outputs are unused
    // and backends may fill them differently.
    let mut compared = 0;
    let mut worst = 0.0f32;
    for (pos, &valid) in batch.valid.iter().enumerate() {
        if valid {
            let range = pos * vocab..(pos + 1) * vocab;
            let diff = max_abs_diff(&got[range.clone()], &want[range]);
            assert!(diff < tol, "position {pos}: max |Δlogit| = {diff}");
            worst = worst.max(diff);
            compared += 1;
        }
    }
    assert_eq!(compared, seqs.iter().map(Vec::len).sum::<usize>());
    eprintln!("left-padded batch: max |Δlogit| vs transformers = {worst:e}");
}

pub fn greedy(device: &Device) {
    let expected = Expected::load();
    let model = lm(device);
    let eos = expected.json["eos_token_id"].as_u64().unwrap() as u32;
    let config = GenerateConfig {
        max_new_tokens: 20,
        sampling: SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        },
        eos_token_id: None,
        pad_token_id: eos,
        seed: 0,
    };
    let ids = expected.ids("ids");
    let single = generate(&model, &ids[..1], &config);
    assert_eq!(single.tokens[0], expected.tokens("greedy_single"));
    let batch = generate(&model, &ids[..2], &config);
    assert_eq!(batch.tokens, expected.ids("greedy_batch"));
    // Each reported log-probability is the chosen token's under the model.
    assert!(single.logprobs[0].iter().all(|&lp| lp <= 0.0 && lp.is_finite()));
}

/// Logits from one full forward pass against logits from a prefill plus
/// one-token steps through the KV cache. The bound `tol` holds on a model at
/// GPT-2's own initialisation scale. The fixture model's weights are drawn
/// 15x wider (so greedy parity is not decided by near-ties), which puts its
/// float rounding noise near 1e-5 on any change of summation order (its
/// logits differ from transformers' by about that much too), so there the
/// bound is the transformers-parity one, 1e-4.
pub fn cached_vs_uncached(device: &Device, tol: f32) {
    let expected = Expected::load();
    let ids = expected.ids("ids")[2].clone();
    let config = rlhf_tui::model::Gpt2Config::new(2048, 64, 64, 2, 4);
    let fresh = CausalLm::seeded(&config, 5, device);
    let (full, incremental) = full_and_incremental(&fresh, &ids, device);
    let diff = max_abs_diff(&full, &incremental);
    eprintln!("GPT-2-scale model: max |cached − uncached| = {diff:e}");
    assert!(diff < tol, "max |cached − uncached| = {diff}");

    let (full, incremental) = full_and_incremental(&lm(device), &ids, device);
    let diff = max_abs_diff(&full, &incremental);
    eprintln!("fixture model: max |cached − uncached| = {diff:e}");
    assert!(diff < 1e-4, "max |cached − uncached| = {diff}");
}

/// `[t, V]` logits of `ids` computed at once, and through the cache
/// (a 5-token prefill, then one token per step).
fn full_and_incremental(model: &CausalLm, ids: &[u32], device: &Device) -> (Vec<f32>, Vec<f32>) {
    let t = ids.len();
    let full = full_logits(model, &PaddedBatch::left_padded(&[ids.to_vec()], 0), device);
    let prefix = 5;
    let mut cache = model.new_cache();
    let batch = PaddedBatch::left_padded(&[ids[..prefix].to_vec()], 0);
    let hidden = model.forward(
        batch.ids_tensor(device),
        batch.positions_tensor(device),
        batch.mask_tensor(device),
        Some(&mut cache),
    );
    let mut incremental = model.lm_logits(hidden).into_data().try_to_vec::<f32>().unwrap();
    for (pos, &token) in ids.iter().enumerate().skip(prefix) {
        let k = pos + 1;
        let mask = attention_mask(&vec![true; k], 1, 1, k);
        let hidden = model.forward(
            Tensor::<2, Int>::from_data(TensorData::new(vec![token as i64], [1, 1]), device),
            Tensor::<2, Int>::from_data(TensorData::new(vec![pos as i64], [1, 1]), device),
            Tensor::from_data(TensorData::new(mask, [1, 1, 1, k]), device),
            Some(&mut cache),
        );
        incremental.extend(model.lm_logits(hidden).into_data().try_to_vec::<f32>().unwrap());
    }
    assert_eq!(cache.len(), t);
    assert_eq!(incremental.len(), full.len());
    (full, incremental)
}

pub fn scalar_head(device: &Device, tol: f32) {
    let expected = Expected::load();
    let (model, _) = hf::load_scalar_model(&fixture("tiny-gpt2-rm"), device, None).unwrap();
    let pad = model.transformer.pad_token_id().unwrap();
    let batch = PaddedBatch::right_padded(&expected.ids("ids"), pad);
    // Pooling runs the last block at each row's last real token only.
    let got = model
        .pooled(
            batch.ids_tensor(device),
            batch.positions_tensor(device),
            batch.mask_tensor(device),
            &batch.last_real().into_iter().map(|last| (0, last)).collect::<Vec<_>>(),
        )
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let diff = max_abs_diff(&got, &expected.floats("rm_scores"));
    eprintln!("scalar head: max |Δscore| vs transformers = {diff:e}");
    assert!(diff < tol, "scores {got:?} vs {:?}", expected.floats("rm_scores"));
}

pub fn round_trip(device: &Device) {
    let tmp = tempfile::tempdir().unwrap();
    let (model, tokenizer) = hf::load_language_model(&fixture("tiny-gpt2"), device).unwrap();
    hf::save_language_model(tmp.path(), &model, &tokenizer).unwrap();
    let (again, tokenizer2) = hf::load_language_model(tmp.path(), device).unwrap();
    assert_eq!(tokenizer.json(), tokenizer2.json());
    let head = rlhf_tui::model::HeadKind::LanguageModel;
    assert_eq!(model.config_json(head), again.config_json(head));
    let (a, b) = (model.named_tensors(head), again.named_tensors(head));
    assert_eq!(a.len(), b.len());
    for ((name_a, data_a), (name_b, data_b)) in a.iter().zip(&b) {
        assert_eq!(name_a, name_b);
        assert_eq!(data_a.shape(), data_b.shape(), "{name_a}");
        assert_eq!(
            data_a.as_bytes(),
            data_b.as_bytes(),
            "{name_a} differs after the round trip"
        );
    }
    // The written tensors equal the ones transformers wrote, bit for bit.
    let original = hf::safetensors_io::read(&fixture("tiny-gpt2/model.safetensors"))
        .unwrap()
        .tensors;
    let written = hf::safetensors_io::read(&tmp.path().join("model.safetensors"))
        .unwrap()
        .tensors;
    assert_eq!(original, written);

    let (rm, rm_tok) = hf::load_scalar_model(&fixture("tiny-gpt2-rm"), device, None).unwrap();
    hf::save_scalar_model(&tmp.path().join("rm"), &rm, &rm_tok).unwrap();
    let original = hf::safetensors_io::read(&fixture("tiny-gpt2-rm/model.safetensors"))
        .unwrap()
        .tensors;
    let written = hf::safetensors_io::read(&tmp.path().join("rm/model.safetensors"))
        .unwrap()
        .tensors;
    assert_eq!(original, written);
}
