//! The GPT-2 configuration, read from and written to Hugging Face's
//! `config.json` with GPT-2's own key names, and checked before any tensor is
//! built so that a directory that does not fit is refused by name.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::hf::ImportError;

/// What the model's head computes; decides `architectures` in `config.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadKind {
    /// `GPT2LMHeadModel`: next-token logits through the tied embedding.
    LanguageModel,
    /// `GPT2ForSequenceClassification` with `num_labels: 1`: a scalar per
    /// position, used for reward and value models.
    Scalar,
}

impl HeadKind {
    pub fn architecture(self) -> &'static str {
        match self {
            HeadKind::LanguageModel => "GPT2LMHeadModel",
            HeadKind::Scalar => "GPT2ForSequenceClassification",
        }
    }
}

/// GPT-2's hyper-parameters under the names transformers uses. Keys this
/// crate does not interpret are kept in `extra` and written back unchanged,
/// so a directory round-trips without losing what other tools put there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Rows of the token embedding (and columns of the tied LM head).
    pub vocab_size: usize,
    /// Longest sequence the learned position table covers.
    #[serde(default = "default_n_positions")]
    pub n_positions: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block; must divide `n_embd`.
    pub n_head: usize,
    /// Hidden width of the MLP; `None` means GPT-2's 4·n_embd.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// GPT-2 uses the tanh approximation of GELU (`gelu_new`).
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// LayerNorm's ε; GPT-2's value is 1e-5.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// Needed by the scalar head to find the last real token of a padded row.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn default_model_type() -> String {
    "gpt2".into()
}
fn default_n_positions() -> usize {
    1024
}
fn default_activation() -> String {
    "gelu_new".into()
}
fn default_eps() -> f64 {
    1e-5
}

/// Activation names that mean GPT-2's tanh-approximated GELU in transformers.
const TANH_GELU: [&str; 3] = ["gelu_new", "gelu_pytorch_tanh", "gelu_fast"];

impl Gpt2Config {
    /// A config for a fresh model of the given shape, with GPT-2's defaults.
    pub fn new(vocab_size: usize, n_positions: usize, n_embd: usize, n_layer: usize, n_head: usize) -> Self {
        Self {
            model_type: default_model_type(),
            vocab_size,
            n_positions,
            n_embd,
            n_layer,
            n_head,
            n_inner: None,
            activation_function: default_activation(),
            layer_norm_epsilon: default_eps(),
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
            architectures: None,
            extra: BTreeMap::new(),
        }
    }

    pub fn d_mlp(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// The head the directory's `architectures` names, if any.
    pub fn head_kind(&self) -> Option<HeadKind> {
        let archs = self.architectures.as_ref()?;
        if archs.iter().any(|a| a == "GPT2ForSequenceClassification") {
            Some(HeadKind::Scalar)
        } else if archs.iter().any(|a| a == "GPT2LMHeadModel" || a == "GPT2Model") {
            Some(HeadKind::LanguageModel)
        } else {
            None
        }
    }

    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, ImportError> {
        let text = std::fs::read_to_string(path).map_err(|e| ImportError::io(path, e))?;
        let config: Self = serde_json::from_str(&text).map_err(|e| ImportError::Json {
            file: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Refuses what this GPT-2 implementation does not compute, naming the key.
    pub fn validate(&self, path: &Path) -> Result<(), ImportError> {
        let refuse = |key: &str, message: String| Err(ImportError::refused(path, key, message));
        if self.model_type != "gpt2" {
            return refuse(
                "model_type",
                format!(
                    "is {:?}; \"gpt2\", \"llama\" and \"qwen2\" models can be opened",
                    self.model_type
                ),
            );
        }
        for (key, value) in [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
        ] {
            if value == 0 {
                return refuse(key, "must be at least 1".into());
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return refuse(
                "n_head",
                format!("{} does not divide n_embd = {}", self.n_head, self.n_embd),
            );
        }
        if !TANH_GELU.contains(&self.activation_function.as_str()) {
            return refuse(
                "activation_function",
                format!("is {:?}; supported: {}", self.activation_function, TANH_GELU.join(", ")),
            );
        }
        for key in [
            "scale_attn_by_inverse_layer_idx",
            "reorder_and_upcast_attn",
            "add_cross_attention",
        ] {
            if self.extra.get(key).and_then(Value::as_bool) == Some(true) {
                return refuse(key, "is true; only GPT-2's standard attention is supported".into());
            }
        }
        if self.extra.get("scale_attn_weights").and_then(Value::as_bool) == Some(false) {
            return refuse(
                "scale_attn_weights",
                "is false; GPT-2 scales attention by 1/sqrt(head_dim)".into(),
            );
        }
        if self.head_kind() == Some(HeadKind::Scalar) {
            let labels = self.num_labels();
            if labels != 1 {
                return refuse(
                    "id2label",
                    format!("has {labels} labels; a reward or value model has num_labels 1"),
                );
            }
        }
        Ok(())
    }

    /// transformers stores `num_labels` implicitly as the size of `id2label`.
    pub fn num_labels(&self) -> usize {
        match self.extra.get("id2label") {
            Some(Value::Object(map)) => map.len(),
            _ => self.extra.get("num_labels").and_then(Value::as_u64).unwrap_or(2) as usize,
        }
    }

    /// The config to write for a model with the given head.
    pub fn for_head(&self, head: HeadKind) -> Self {
        let mut config = self.clone();
        config.architectures = Some(vec![head.architecture().to_string()]);
        config.extra.remove("num_labels");
        match head {
            HeadKind::Scalar => {
                config
                    .extra
                    .insert("id2label".into(), serde_json::json!({"0": "LABEL_0"}));
                config
                    .extra
                    .insert("label2id".into(), serde_json::json!({"LABEL_0": 0}));
            }
            HeadKind::LanguageModel => {
                config.extra.remove("id2label");
                config.extra.remove("label2id");
            }
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_gpt2s() {
        let c: Gpt2Config =
            serde_json::from_str(r#"{"vocab_size": 10, "n_embd": 8, "n_layer": 1, "n_head": 2}"#).unwrap();
        assert_eq!((c.n_positions, c.d_mlp(), c.head_dim()), (1024, 32, 4));
        assert_eq!(c.activation_function, "gelu_new");
        assert_eq!(c.layer_norm_epsilon, 1e-5);
        c.validate(Path::new("config.json")).unwrap();
    }

    #[test]
    fn unknown_keys_survive_a_round_trip() {
        let text = r#"{"vocab_size": 10, "n_embd": 8, "n_layer": 1, "n_head": 2, "torch_dtype": "float32"}"#;
        let c: Gpt2Config = serde_json::from_str(text).unwrap();
        let back: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(back["torch_dtype"], "float32");
    }

    #[test]
    fn heads_must_divide_the_width() {
        let c = Gpt2Config::new(10, 16, 10, 1, 3);
        let err = c.validate(Path::new("x/config.json")).unwrap_err();
        assert_eq!(err.key(), Some("n_head"));
        assert!(err.to_string().starts_with("x/config.json: `n_head`"), "{err}");
    }

    #[test]
    fn scalar_head_config_has_one_label() {
        let c = Gpt2Config::new(10, 16, 8, 1, 2).for_head(HeadKind::Scalar);
        assert_eq!(c.head_kind(), Some(HeadKind::Scalar));
        assert_eq!(c.num_labels(), 1);
        c.validate(Path::new("config.json")).unwrap();
        assert_eq!(c.for_head(HeadKind::LanguageModel).extra.get("id2label"), None);
    }
}
