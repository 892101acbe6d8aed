//! The `config.json` of a Llama-family model (`LlamaForCausalLM`, which
//! covers SmolLM2 and TinyLlama, and `Qwen2ForCausalLM`), as transformers
//! writes it: the rotary parameters either as `rope_theta` and
//! `rope_scaling` or, from transformers 5, as `rope_parameters`. What the
//! model here does not implement (another rope type, sliding windows,
//! biases it does not expect) is refused by key.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::hf::ImportError;
use crate::data::turns::first_id;

/// Llama 3's frequency-dependent rescaling of the rotary frequencies.
#[derive(Clone, Debug, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

/// Which family, for the biases and the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Llama,
    Qwen2,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub max_positions: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Scaling>,
    /// Query, key and value projections with biases (Qwen2's).
    pub qkv_bias: bool,
    pub tie_word_embeddings: bool,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// Whether `architectures` names a sequence-classification model.
    pub scalar: bool,
    /// The file as read, written back (with the head's architecture) on export.
    pub raw: Value,
}

#[derive(Deserialize)]
struct Raw {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    max_position_embeddings: usize,
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    rope_parameters: Option<Value>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    use_sliding_window: bool,
    hidden_act: Option<String>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    eos_token_id: Value,
    pad_token_id: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
}

impl LlamaConfig {
    pub fn from_file(path: &Path) -> Result<Self, ImportError> {
        let text = std::fs::read_to_string(path).map_err(|e| ImportError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// The config in `text`, whose errors name `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ImportError> {
        let json_error = |e: serde_json::Error| ImportError::Json {
            file: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        };
        let value: Value = serde_json::from_str(text).map_err(json_error)?;
        let raw: Raw = serde_json::from_value(value.clone()).map_err(json_error)?;
        let refuse = |key: &str, message: String| ImportError::refused(path, key, message);
        let family = match raw.model_type.as_str() {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            other => {
                return Err(refuse(
                    "model_type",
                    format!("is {other:?}; \"llama\" and \"qwen2\" are read here"),
                ));
            }
        };
        if raw.hidden_act.as_deref().is_some_and(|a| a != "silu") {
            return Err(refuse(
                "hidden_act",
                format!("is {:?}; only SwiGLU's \"silu\" is implemented", raw.hidden_act),
            ));
        }
        if raw.mlp_bias {
            return Err(refuse("mlp_bias", "is true; MLP biases are not implemented".into()));
        }
        if raw.use_sliding_window {
            return Err(refuse(
                "use_sliding_window",
                "is true; sliding-window attention is not implemented".into(),
            ));
        }
        let qkv_bias = match family {
            Family::Qwen2 => true,
            Family::Llama => raw.attention_bias,
        };
        // transformers 5 writes rope_parameters (with rope_theta inside);
        // earlier versions rope_theta and rope_scaling.
        let rope = raw.rope_parameters.clone().or(raw.rope_scaling.clone());
        let rope_theta = raw
            .rope_theta
            .or_else(|| raw.rope_parameters.as_ref()?.get("rope_theta")?.as_f64())
            .unwrap_or(10_000.0);
        let rope_scaling = match rope.as_ref() {
            None | Some(Value::Null) => None,
            Some(params) => {
                let kind = params
                    .get("rope_type")
                    .or_else(|| params.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                let number = |key: &str| {
                    params
                        .get(key)
                        .and_then(Value::as_f64)
                        .ok_or_else(|| refuse("rope_scaling", format!("of type llama3 has no number {key:?}")))
                };
                match kind {
                    "default" => None,
                    "llama3" => Some(Llama3Scaling {
                        factor: number("factor")?,
                        low_freq_factor: number("low_freq_factor")?,
                        high_freq_factor: number("high_freq_factor")?,
                        original_max_position_embeddings: number("original_max_position_embeddings")?,
                    }),
                    other => {
                        return Err(refuse(
                            "rope_scaling",
                            format!("has rope_type {other:?}; \"default\" and \"llama3\" are implemented"),
                        ));
                    }
                }
            }
        };
        let heads = raw.num_attention_heads;
        let kv_heads = raw.num_key_value_heads.unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(refuse(
                "num_key_value_heads",
                format!("is {kv_heads}, which does not divide num_attention_heads {heads}"),
            ));
        }
        let head_dim = raw.head_dim.unwrap_or(raw.hidden_size / heads);
        if !head_dim.is_multiple_of(2) {
            return Err(refuse(
                "head_dim",
                format!("is {head_dim}; rotary embeddings need an even one"),
            ));
        }
        Ok(Self {
            family,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            layers: raw.num_hidden_layers,
            heads,
            kv_heads,
            head_dim,
            max_positions: raw.max_position_embeddings,
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta,
            rope_scaling,
            qkv_bias,
            tie_word_embeddings: raw.tie_word_embeddings,
            eos_token_id: first_id(&raw.eos_token_id),
            pad_token_id: raw.pad_token_id,
            scalar: raw
                .architectures
                .iter()
                .any(|a| a.ends_with("ForSequenceClassification")),
            raw: value,
        })
    }

    /// `config.json` for a directory of `head`: the file as read, naming
    /// that head's architecture (with one label for a scalar head).
    pub fn to_json(&self, scalar: bool) -> Value {
        let family = match self.family {
            Family::Llama => "Llama",
            Family::Qwen2 => "Qwen2",
        };
        let mut json = self.raw.clone();
        let object = json.as_object_mut().expect("config.json is an object");
        for key in ["id2label", "label2id", "num_labels"] {
            object.remove(key);
        }
        let architecture = match scalar {
            true => {
                object.insert("id2label".into(), serde_json::json!({"0": "LABEL_0"}));
                object.insert("label2id".into(), serde_json::json!({"LABEL_0": 0}));
                format!("{family}ForSequenceClassification")
            }
            false => format!("{family}ForCausalLM"),
        };
        object.insert("architectures".into(), serde_json::json!([architecture]));
        json
    }

    /// The rotary inverse frequencies, one per pair of a head's dimensions,
    /// with Llama 3's rescaling when the config asks for it.
    pub fn inv_freq(&self) -> Vec<f64> {
        let half = self.head_dim / 2;
        let base: Vec<f64> = (0..half)
            .map(|i| 1.0 / self.rope_theta.powf((2 * i) as f64 / self.head_dim as f64))
            .collect();
        let Some(s) = &self.rope_scaling else {
            return base;
        };
        let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
        let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
        base.into_iter()
            .map(|f| {
                let wavelen = 2.0 * std::f64::consts::PI / f;
                if wavelen < high_wavelen {
                    f
                } else if wavelen > low_wavelen {
                    f / s.factor
                } else {
                    let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * f / s.factor + smooth * f
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<LlamaConfig, ImportError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let text = format!(
            r#"{{"model_type": "llama", "vocab_size": 10, "hidden_size": 12, "intermediate_size": 20,
                "num_hidden_layers": 1, "num_attention_heads": 3, "max_position_embeddings": 16,
                "rms_norm_eps": 1e-5{extra}}}"#
        );
        std::fs::write(&path, text).unwrap();
        LlamaConfig::from_file(&path)
    }

    #[test]
    fn both_rope_layouts_are_read_and_variants_refused_by_key() {
        let plain = config("").unwrap();
        assert_eq!((plain.kv_heads, plain.head_dim, plain.rope_theta), (3, 4, 10_000.0));
        let old = config(r#", "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#).unwrap();
        let new = config(r#", "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#).unwrap();
        assert_eq!((old.rope_theta, &old.rope_scaling), (new.rope_theta, &new.rope_scaling));
        assert_eq!(new.rope_theta, 500_000.0);
        let key = |e: ImportError| e.key().map(str::to_string);
        let err = config(r#", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}"#).unwrap_err();
        assert_eq!(key(err), Some("rope_scaling".into()));
        let err = config(r#", "use_sliding_window": true"#).unwrap_err();
        assert_eq!(key(err), Some("use_sliding_window".into()));
        let err = config(r#", "num_key_value_heads": 2"#).unwrap_err();
        assert_eq!(key(err), Some("num_key_value_heads".into()));
    }

    /// Llama 3's rescaling by hand, for original context 32, factors 8, 1
    /// and 4 and head_dim 8 at θ 10,000: frequencies 1, 0.1, 0.01 and
    /// 0.001; wavelengths 6.28 (below 8: kept), 62.8 (above 32: divided by
    /// 8), 628 and 6283 (divided by 8).
    #[test]
    fn llama3_rescales_long_wavelengths() {
        let mut c = config(r#", "head_dim": 8"#).unwrap();
        c.hidden_size = 24;
        c.rope_scaling = Some(Llama3Scaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 32.0,
        });
        let f = c.inv_freq();
        let want = [1.0, 0.1 / 8.0, 0.01 / 8.0, 0.001 / 8.0];
        for (got, want) in f.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{f:?}");
        }
        // A wavelength between 8 and 32 is blended: at θ chosen so the
        // second frequency's wavelength is 16, smooth = (32/16 − 1)/3 = 1/3.
        c.rope_theta = (2.0 * std::f64::consts::PI / 16.0f64).recip().powf(4.0);
        let f2 = c.inv_freq()[1];
        let base = 2.0 * std::f64::consts::PI / 16.0;
        let want = (1.0 - 1.0 / 3.0) * base / 8.0 + base / 3.0;
        assert!((f2 - want).abs() < 1e-12, "{f2} vs {want}");
    }
}
