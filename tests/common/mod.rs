//! Shared helpers for the integration tests: fixture paths and the
//! expected outputs the parity script saved from transformers.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use rlhf_tui::model::hf::safetensors_io;
use rlhf_tui::model::weights::HostTensor;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `tests/fixtures/parity.json`: token ids and transformers' outputs.
pub struct Expected {
    pub json: serde_json::Value,
    pub single_logits: HostTensor,
    pub batch_logits: HostTensor,
}

impl Expected {
    pub fn load() -> Self {
        let json = serde_json::from_str(&std::fs::read_to_string(fixture("parity.json")).unwrap()).unwrap();
        let mut tensors = safetensors_io::read(&fixture("parity_logits.safetensors"))
            .unwrap()
            .tensors;
        Self {
            json,
            single_logits: tensors.remove("single_logits").unwrap(),
            batch_logits: tensors.remove("batch_logits").unwrap(),
        }
    }

    pub fn ids(&self, key: &str) -> Vec<Vec<u32>> {
        serde_json::from_value(self.json[key].clone()).unwrap()
    }

    pub fn tokens(&self, key: &str) -> Vec<u32> {
        serde_json::from_value(self.json[key].clone()).unwrap()
    }

    pub fn floats(&self, key: &str) -> Vec<f32> {
        serde_json::from_value(self.json[key].clone()).unwrap()
    }
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
pub mod cli;
pub mod tmux;
pub mod trainer;
pub mod ui;
