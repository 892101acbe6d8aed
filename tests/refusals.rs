//! Model directories that do not fit are refused with an error naming the
//! file and the key: a non-GPT-2 model type, a missing tensor, a shape
//! mismatch, a vocabulary that differs from the tokenizer's, and more.

mod common;

use std::path::Path;

use burn::tensor::Device;
use rlhf_tui::model::hf::{self, ImportError, safetensors_io};

use common::fixture;

/// A copy of a fixture directory to spoil.
fn copy_of(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

fn edit_weights(
    dir: &Path,
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, rlhf_tui::model::weights::HostTensor>),
) {
    let path = dir.join("model.safetensors");
    let mut tensors = safetensors_io::read(&path).unwrap().tensors;
    edit(&mut tensors);
    let list: Vec<_> = tensors.into_iter().map(|(n, t)| (n, t.shape, t.values)).collect();
    safetensors_io::write(&path, &list).unwrap();
}

fn open_lm(dir: &Path) -> ImportError {
    hf::load_language_model(dir, &Device::flex()).expect_err("the directory must be refused")
}

fn assert_names(err: &ImportError, file: &str, key: &str) {
    let text = err.to_string();
    assert!(text.contains(file), "{text:?} does not name {file}");
    assert_eq!(err.key(), Some(key), "{text}");
}

#[test]
fn a_model_type_not_read_here_is_refused() {
    let dir = copy_of("tiny-gpt2");
    edit_config(dir.path(), |c| c["model_type"] = "mistral".into());
    let err = open_lm(dir.path());
    assert_names(&err, "config.json", "model_type");
    assert!(err.to_string().contains("\"mistral\""), "{err}");
    assert!(err.to_string().contains("\"llama\" and \"qwen2\""), "{err}");
}

#[test]
fn a_missing_tensor_is_refused() {
    let dir = copy_of("tiny-gpt2");
    edit_weights(dir.path(), |t| {
        t.remove("h.1.mlp.c_fc.bias").unwrap();
    });
    assert_names(&open_lm(dir.path()), "model.safetensors", "h.1.mlp.c_fc.bias");
}

#[test]
fn a_tensor_of_the_wrong_shape_is_refused() {
    let dir = copy_of("tiny-gpt2");
    edit_weights(dir.path(), |t| {
        let wpe = t.get_mut("wpe.weight").unwrap();
        wpe.shape = vec![32, 64];
        wpe.values.truncate(32 * 64);
    });
    let err = open_lm(dir.path());
    assert_names(&err, "model.safetensors", "wpe.weight");
    assert!(
        err.to_string().contains("[32, 64]") && err.to_string().contains("[64, 64]"),
        "{err}"
    );
}

#[test]
fn a_vocab_size_that_differs_from_the_tokenizer_is_refused() {
    let dir = copy_of("tiny-gpt2");
    edit_config(dir.path(), |c| c["vocab_size"] = 2050.into());
    let err = open_lm(dir.path());
    assert_names(&err, "config.json", "vocab_size");
    assert!(err.to_string().contains("2048"), "{err}");
}

#[test]
fn an_unknown_tensor_is_refused() {
    let dir = copy_of("tiny-gpt2");
    edit_weights(dir.path(), |t| {
        t.insert(
            "h.0.attn.rotary.weight".into(),
            rlhf_tui::model::weights::HostTensor {
                shape: vec![2],
                values: vec![0.0; 2],
            },
        );
    });
    assert_names(&open_lm(dir.path()), "model.safetensors", "h.0.attn.rotary.weight");
}

#[test]
fn unsupported_attention_variants_and_activations_are_refused() {
    let dir = copy_of("tiny-gpt2");
    edit_config(dir.path(), |c| c["scale_attn_by_inverse_layer_idx"] = true.into());
    assert_names(&open_lm(dir.path()), "config.json", "scale_attn_by_inverse_layer_idx");
    edit_config(dir.path(), |c| {
        c["scale_attn_by_inverse_layer_idx"] = false.into();
        c["activation_function"] = "relu".into();
    });
    assert_names(&open_lm(dir.path()), "config.json", "activation_function");
}

#[test]
fn broken_json_is_reported_with_its_line_and_column() {
    let dir = copy_of("tiny-gpt2");
    std::fs::write(
        dir.path().join("config.json"),
        "{\n  \"model_type\": \"gpt2\",\n  \"n_embd\": oops\n}",
    )
    .unwrap();
    let err = open_lm(dir.path());
    let text = err.to_string();
    assert!(text.contains("config.json:3:"), "{text}");
}

#[test]
fn heads_must_match_what_is_asked_for() {
    // A reward model is not a language model ...
    let err = open_lm(&fixture("tiny-gpt2-rm"));
    assert_names(&err, "config.json", "architectures");
    // ... and a language model has no score head unless a fresh one is asked for.
    let err = hf::load_scalar_model(&fixture("tiny-gpt2"), &Device::flex(), None).unwrap_err();
    assert_names(&err, "model.safetensors", "score.weight");
    let (rm, _) = hf::load_scalar_model(&fixture("tiny-gpt2"), &Device::flex(), Some(3)).unwrap();
    assert_eq!(rm.score.val().dims(), [1, 64]);
}

#[test]
fn a_missing_directory_or_file_names_the_path() {
    let err = open_lm(Path::new("/nonexistent/model"));
    assert!(err.to_string().contains("/nonexistent/model"), "{err}");
    let dir = copy_of("tiny-gpt2");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    assert!(open_lm(dir.path()).to_string().contains("tokenizer.json"));
}
