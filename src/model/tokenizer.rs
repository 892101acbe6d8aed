//! The tokenizer, read from a Hugging Face `tokenizer.json` through the
//! `tokenizers` crate; the file's text is kept so export writes it back
//! byte for byte.

use std::path::Path;

use super::hf::ImportError;

#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    json: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer(vocab {})", self.vocab_size())
    }
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Self, ImportError> {
        let json = std::fs::read_to_string(path).map_err(|e| ImportError::io(path, e))?;
        Self::from_json(&json).map_err(|e| {
            ImportError::refused(
                path,
                "model",
                format!("is not a tokenizer the `tokenizers` library can load: {e}"),
            )
        })
    }

    pub fn from_json(json: &str) -> Result<Self, tokenizers::Error> {
        let inner: tokenizers::Tokenizer = json.parse()?;
        Ok(Self {
            inner,
            json: json.to_string(),
        })
    }

    /// The `tokenizer.json` text this tokenizer was read from.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Token ids of `text`, without added special tokens (GPT-2 adds none),
    /// for text the world or this program wrote, which every byte-level
    /// tokenizer encodes.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.try_encode(text)
            .unwrap_or_else(|e| panic!("cannot tokenize {text:?}: {e}"))
    }

    /// Token ids of text from outside (a prompt on the command line): a
    /// tokenizer without a byte-level fallback may have no ids for it.
    pub fn try_encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| e.to_string())
    }

    /// Text of ids this tokenizer produced (or a model over its vocabulary
    /// sampled); an id outside the vocabulary is a bug, not input.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.inner
            .decode(ids, false)
            .unwrap_or_else(|e| panic!("cannot decode {ids:?}: {e}"))
    }

    /// Each token's text on its own (for colouring tokens one by one).
    pub fn token_texts(&self, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&id| self.decode(&[id])).collect()
    }

    /// Size of the vocabulary including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}
