//! What unit tests share.

use burn::tensor::Device;

use crate::model::llama::Llama;
use crate::model::llama_config::LlamaConfig;
use crate::model::weights::SeededInit;

/// Asserts that `a` and `b` have one length and differ by at most `tol`
/// element by element, naming `what` and the first element that does not.
/// A NaN on either side is never close.
pub fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    if let Some(i) = a
        .iter()
        .zip(b)
        .position(|(x, y)| (x - y).is_nan() || (x - y).abs() > tol)
    {
        panic!("{what}: element {i} is {} against {} (tolerance {tol})", a[i], b[i]);
    }
}

/// A Llama model (vocabulary 4096, width 64, two layers of 4 query heads
/// over 2 key/value heads, context 256) whose MLP weights and tied LM head
/// are a megabyte each, so that a decoding step's few rows take
/// `gemm_rows`, as a full-sized model's do; weights drawn from `seed`.
pub fn megabyte_llama(seed: u64) -> (LlamaConfig, Llama) {
    let config = LlamaConfig::parse(
        r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
            "vocab_size": 4096, "hidden_size": 64, "intermediate_size": 4096,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 256, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
            "tie_word_embeddings": true}"#,
        std::path::Path::new("test"),
    )
    .unwrap();
    let model = Llama::build(&config, &mut SeededInit::new(seed), &Device::flex(), true).unwrap();
    (config, model)
}

mod tests {
    use super::assert_close;

    #[test]
    fn passes_within_the_tolerance() {
        assert_close("v", &[1.0, 2.0], &[1.05, 1.95], 0.1);
    }

    #[test]
    #[should_panic(expected = "element 1 is 2 against 2.5")]
    fn names_the_first_element_beyond_it() {
        assert_close("v", &[1.0, 2.0, 9.0], &[1.0, 2.5, 0.0], 0.1);
    }

    #[test]
    #[should_panic(expected = "element 0 is NaN")]
    fn a_nan_fails() {
        assert_close("v", &[f32::NAN], &[f32::NAN], 0.1);
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn a_shorter_side_fails() {
        assert_close("v", &[1.0], &[1.0, 2.0], 0.1);
    }
}
