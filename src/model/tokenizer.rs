//! The tokenizer, read from a Hugging Face `tokenizer.json` through the
//! `tokenizers` crate; the file's text is kept so export writes it back
//! byte for byte.

use std::path::Path;

use super::hf::ImportError;

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

    /// Token ids of `text`, without added special tokens (GPT-2 adds none).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, false).unwrap_or_default()
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
