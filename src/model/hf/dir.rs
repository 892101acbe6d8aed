//! Opening and writing a whole model directory, with every check that makes
//! a directory that does not fit fail by file and key before any tensor is
//! used.

use std::path::Path;

use burn::tensor::Device;

use super::{ImportError, safetensors_io};
use crate::data::turns::{ConfigIds, turns};
use crate::fsutil::write_atomic;
use crate::model::config::{Gpt2Config, HeadKind};
use crate::model::llama::Llama;
use crate::model::llama_config::LlamaConfig;
use crate::model::scalar::{POOLING_KEY, Pooling};
use crate::model::tokenizer::Tokenizer;
use crate::model::weights::{FileWeights, SeededInit};
use crate::model::{CausalLm, Gpt2, ScalarModel};

const CONFIG: &str = "config.json";
const WEIGHTS: &str = "model.safetensors";
const TOKENIZER: &str = "tokenizer.json";

/// A directory's config, by its `model_type`.
enum DirConfig {
    Gpt2(Gpt2Config),
    Llama(LlamaConfig),
}

impl DirConfig {
    fn read(path: &Path) -> Result<Self, ImportError> {
        let text = std::fs::read_to_string(path).map_err(|e| ImportError::io(path, e))?;
        let model_type = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("model_type")?.as_str().map(str::to_string));
        Ok(match model_type.as_deref() {
            Some("llama" | "qwen2") => Self::Llama(LlamaConfig::from_file(path)?),
            _ => Self::Gpt2(Gpt2Config::from_file(path)?),
        })
    }

    fn vocab_size(&self) -> usize {
        match self {
            Self::Gpt2(c) => c.vocab_size,
            Self::Llama(c) => c.vocab_size,
        }
    }

    fn ids(&self) -> ConfigIds {
        match self {
            Self::Gpt2(c) => ConfigIds {
                eos: c.eos_token_id,
                pad: c.pad_token_id,
            },
            Self::Llama(c) => ConfigIds {
                eos: c.eos_token_id,
                pad: c.pad_token_id,
            },
        }
    }

    fn scalar(&self) -> bool {
        match self {
            Self::Gpt2(c) => c.head_kind() == Some(HeadKind::Scalar),
            Self::Llama(c) => c.scalar,
        }
    }
}

/// Config and tokenizer of a directory, checked against each other, the
/// tokenizer carrying how the model takes turns.
fn config_and_tokenizer(dir: &Path) -> Result<(DirConfig, Tokenizer), ImportError> {
    if !dir.is_dir() {
        return Err(ImportError::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such model directory"),
        ));
    }
    let config_path = dir.join(CONFIG);
    let config = DirConfig::read(&config_path)?;
    if let DirConfig::Gpt2(gpt2) = &config
        && gpt2
            .extra
            .get("tie_word_embeddings")
            .and_then(serde_json::Value::as_bool)
            == Some(false)
    {
        return Err(ImportError::refused(
            &config_path,
            "tie_word_embeddings",
            "is false; GPT-2's LM head is the token embedding",
        ));
    }
    let mut tokenizer = Tokenizer::from_file(&dir.join(TOKENIZER))?;
    tokenizer.read_companions(dir)?;
    let turns = turns(dir, &tokenizer, config.ids()).map_err(ImportError::Turns)?;
    tokenizer.set_turns(turns);
    // GPT-2's embedding has exactly the tokenizer's rows; Llama-family
    // models often pad theirs (Qwen2's to a multiple of 128).
    let (vocab, tokens) = (config.vocab_size(), tokenizer.vocab_size());
    let fits = match config {
        DirConfig::Gpt2(_) => vocab == tokens,
        DirConfig::Llama(_) => vocab >= tokens,
    };
    if !fits {
        return Err(ImportError::refused(
            &config_path,
            "vocab_size",
            format!("is {vocab} but {TOKENIZER} has {tokens} tokens; the embedding needs a row for each"),
        ));
    }
    Ok((config, tokenizer))
}

/// A directory's tokenizer alone, for laying text out as its model reads it.
pub fn load_tokenizer(dir: &Path) -> Result<Tokenizer, ImportError> {
    Ok(config_and_tokenizer(dir)?.1)
}

/// Config, tokenizer and weights of a directory, checked against each other.
fn open(dir: &Path) -> Result<(DirConfig, Tokenizer, FileWeights), ImportError> {
    let (config, tokenizer) = config_and_tokenizer(dir)?;
    let weights_path = dir.join(WEIGHTS);
    if !weights_path.exists() && dir.join("pytorch_model.bin").exists() {
        return Err(ImportError::refused(
            &weights_path,
            WEIGHTS,
            "is missing (only pytorch_model.bin is there); re-save the model with safe_serialization=True",
        ));
    }
    let mut weights = safetensors_io::read(&weights_path)?;
    if let DirConfig::Gpt2(_) = config {
        // GPT-2's LM head is the token embedding; a file that stores it
        // too stores the same values twice.
        weights.tensors.remove("lm_head.weight");
    }
    Ok((config, tokenizer, weights))
}

/// The body a directory describes, built from its weights (with its own
/// LM head where it has one and `lm_head` asks for it).
fn body(
    config: &DirConfig,
    weights: &mut FileWeights,
    device: &Device,
    lm_head: bool,
) -> Result<CausalLm, ImportError> {
    Ok(match config {
        DirConfig::Gpt2(c) => Gpt2::build(c, weights, device)?.into(),
        DirConfig::Llama(c) => {
            let model = Llama::build(c, weights, device, lm_head)?;
            // A scalar head's body does not use a language model's head.
            weights.tensors.remove("lm_head.weight");
            model.into()
        }
    })
}

/// Opens a language model (`GPT2LMHeadModel`, `LlamaForCausalLM`,
/// `Qwen2ForCausalLM`).
pub fn load_language_model(dir: &Path, device: &Device) -> Result<(CausalLm, Tokenizer), ImportError> {
    let (config, tokenizer, mut weights) = open(dir)?;
    if config.scalar() {
        return Err(ImportError::refused(
            &dir.join(CONFIG),
            "architectures",
            "names a sequence-classification model; a language model is needed here",
        ));
    }
    let model = body(&config, &mut weights, device, true)?;
    weights.finish()?;
    Ok((model, tokenizer))
}

/// Opens a reward or value model. A language-model directory is accepted
/// when `fresh_head_seed` is given: its body is kept and a new scalar head
/// is drawn (how a reward model starts from the SFT model).
pub fn load_scalar_model(
    dir: &Path,
    device: &Device,
    fresh_head_seed: Option<u64>,
) -> Result<(ScalarModel, Tokenizer), ImportError> {
    let (config, tokenizer, mut weights) = open(dir)?;
    let body = body(&config, &mut weights, device, false)?;
    let model = if weights.tensors.contains_key("score.weight") {
        ScalarModel::build(body, &mut weights, device)?
    } else if let Some(seed) = fresh_head_seed {
        ScalarModel::build(body, &mut SeededInit::new(seed), device)?
    } else {
        return Err(ImportError::refused(
            &dir.join(WEIGHTS),
            "score.weight",
            "is missing; this is a language model, not a reward or value model",
        ));
    };
    weights.finish()?;
    Ok((
        ScalarModel {
            pooling: pooling_of(dir)?,
            ..model
        },
        tokenizer,
    ))
}

/// How a reward model directory pools: `Mean` where its `config.json`
/// says so (`POOLING_KEY`), else at the last token, as transformers does.
fn pooling_of(dir: &Path) -> Result<Pooling, ImportError> {
    let path = dir.join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| ImportError::io(&path, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ImportError::refused(&path, "config.json", e.to_string()))?;
    match value.get(POOLING_KEY) {
        None => Ok(Pooling::Last),
        Some(v) if v == "last" => Ok(Pooling::Last),
        Some(v) if v == "mean" => Ok(Pooling::Mean),
        Some(other) => Err(ImportError::refused(
            &path,
            POOLING_KEY,
            format!("is {other}; \"last\" and \"mean\" are read here"),
        )),
    }
}

/// Whether a directory holds a reward or value model (its `architectures`
/// name a sequence-classification head).
pub fn is_scalar_model(dir: &Path) -> Result<bool, ImportError> {
    Ok(DirConfig::read(&dir.join(CONFIG))?.scalar())
}

fn write_dir(
    dir: &Path,
    config: &serde_json::Value,
    tokenizer: &Tokenizer,
    tensors: Vec<(String, burn::tensor::TensorData)>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
        .into_iter()
        .map(|(name, data)| {
            let shape = data.shape().to_vec();
            let values = data.try_to_vec::<f32>().expect("parameters are f32");
            (name, shape, values)
        })
        .collect();
    safetensors_io::write(&dir.join(WEIGHTS), &tensors)?;
    write_atomic(
        &dir.join(CONFIG),
        serde_json::to_string_pretty(config)
            .map_err(std::io::Error::other)?
            .as_bytes(),
    )?;
    write_atomic(&dir.join(TOKENIZER), tokenizer.json().as_bytes())?;
    for (name, text) in tokenizer.companions() {
        write_atomic(&dir.join(name), text.as_bytes())?;
    }
    Ok(())
}

/// Writes a language-model directory transformers opens as it is.
pub fn save_language_model(dir: &Path, model: &CausalLm, tokenizer: &Tokenizer) -> std::io::Result<()> {
    let head = HeadKind::LanguageModel;
    write_dir(dir, &model.config_json(head), tokenizer, model.named_tensors(head))
}

/// Writes a `…ForSequenceClassification` directory with one label.
pub fn save_scalar_model(dir: &Path, model: &ScalarModel, tokenizer: &Tokenizer) -> std::io::Result<()> {
    let head = HeadKind::Scalar;
    let mut tensors = model.transformer.named_tensors(head);
    tensors.push(("score.weight".to_string(), model.score.val().into_data()));
    let mut config = model.transformer.config_json(head);
    if model.pooling == Pooling::Mean {
        config[POOLING_KEY] = "mean".into();
    }
    write_dir(dir, &config, tokenizer, tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pooling mark is read as written; anything else is refused with
    /// the file and the key, never taken for the default.
    #[test]
    fn the_pooling_mark_is_read_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pooling = |text: &str| {
            std::fs::write(dir.path().join(CONFIG), text).unwrap();
            pooling_of(dir.path())
        };
        assert_eq!(pooling("{}").unwrap(), Pooling::Last);
        assert_eq!(pooling(r#"{"rlhf_tui_pooling": "mean"}"#).unwrap(), Pooling::Mean);
        for bad in [r#"{"rlhf_tui_pooling": 1}"#, r#"{"rlhf_tui_pooling": "max"}"#, "{"] {
            let err = pooling(bad).unwrap_err().to_string();
            assert!(err.contains("config.json"), "{bad}: {err}");
        }
    }

    /// The files that say how the model takes turns are written into every
    /// directory saved from it, as they were, so a checkpoint reads
    /// conversations as its base model did.
    #[test]
    fn the_tokenizer_s_companion_files_travel_with_the_model() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2");
        let device = Device::flex();
        let (model, tokenizer) = load_language_model(&fixture, &device).unwrap();
        assert!(tokenizer.companion("tokenizer_config.json").is_some());
        let out = tempfile::tempdir().unwrap();
        save_language_model(out.path(), &model, &tokenizer).unwrap();
        for name in ["tokenizer_config.json", "generation_config.json"] {
            let read = |dir: &Path| std::fs::read_to_string(dir.join(name)).unwrap();
            assert_eq!(read(out.path()), read(&fixture), "{name}");
        }
        assert!(!out.path().join("chat_template.jinja").exists());
    }
}
