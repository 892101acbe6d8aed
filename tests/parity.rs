//! The model against transformers' own outputs (tests/fixtures, made by
//! scripts/make_parity_fixture.py): logits, greedy decoding with the KV
//! cache, the scalar head, and export/import round trips, on the CPU.

mod common;
mod parity_checks;

use burn::tensor::Device;

fn cpu() -> Device {
    Device::flex()
}

#[test]
fn single_sequence_logits_match_transformers() {
    parity_checks::single_logits(&cpu(), 1e-4);
}

#[test]
fn left_padded_batch_logits_match_transformers() {
    parity_checks::batch_logits(&cpu(), 1e-4);
}

#[test]
fn greedy_generation_with_kv_cache_matches_transformers() {
    parity_checks::greedy(&cpu());
}

#[test]
fn cached_and_uncached_logits_agree() {
    parity_checks::cached_vs_uncached(&cpu(), 1e-5);
}

#[test]
fn scalar_head_matches_sequence_classification() {
    parity_checks::scalar_head(&cpu(), 1e-4);
}

#[test]
fn export_then_import_is_bit_identical() {
    parity_checks::round_trip(&cpu());
}
