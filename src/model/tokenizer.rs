//! The tokenizer, read from a Hugging Face `tokenizer.json` through the
//! `tokenizers` crate; the file's text is kept so export writes it back
//! byte for byte, and so are the files beside it that say how the model
//! reads a conversation (the chat template, the special tokens, the
//! generation defaults), which travel with it into every checkpoint.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use crate::data::chat::{ChatFormat, Prompt};
use crate::data::turns::Turns;

use super::hf::ImportError;

#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    json: String,
    /// `COMPANIONS` found beside `tokenizer.json`, by name, verbatim.
    companions: BTreeMap<String, String>,
    /// How the model takes turns, once its directory has said.
    turns: Option<Arc<Turns>>,
}

/// The files beside `tokenizer.json` that a model directory carries along.
pub const COMPANIONS: [&str; 4] = [
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
];

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
            companions: BTreeMap::new(),
            turns: None,
        })
    }

    /// Records how the model reads conversations (see `data::turns`).
    pub fn set_turns(&mut self, turns: Turns) {
        self.turns = Some(Arc::new(turns));
    }

    /// The model's chat format: its template, or the HH dialogue (with
    /// GPT-2's `<|endoftext|>` for a tokenizer read on its own).
    pub fn chat(&self) -> &ChatFormat {
        static DIALOGUE: LazyLock<ChatFormat> = LazyLock::new(|| ChatFormat::dialogue("<|endoftext|>"));
        self.turns.as_ref().map_or(&DIALOGUE, |t| &t.format)
    }

    /// The id that ends a response.
    pub fn eos_id(&self) -> Option<u32> {
        match &self.turns {
            Some(turns) => Some(turns.eos_id),
            None => self.token_id(self.chat().eos()),
        }
    }

    /// A prompt's tokens as the model reads it (laid out by its chat format).
    pub fn encode_prompt(&self, prompt: &Prompt) -> Result<Vec<u32>, String> {
        self.try_encode(&self.chat().prompt_text(prompt)?)
    }

    /// The answer in generated tokens: up to the end-of-turn token,
    /// decoded, cut where the model would start a new turn, trimmed.
    pub fn answer(&self, tokens: &[u32]) -> String {
        let eos = self.eos_id();
        let end = tokens.iter().position(|&t| Some(t) == eos).unwrap_or(tokens.len());
        self.chat().answer(&self.decode(&tokens[..end])).to_string()
    }

    /// The id a batch is padded with (the end-of-turn id where the model
    /// names none).
    pub fn pad_id(&self) -> Option<u32> {
        self.turns.as_ref().map(|t| t.pad_id).or_else(|| self.eos_id())
    }

    /// Reads the `COMPANIONS` that `dir` has.
    pub fn read_companions(&mut self, dir: &Path) -> Result<(), ImportError> {
        for name in COMPANIONS {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    self.companions.insert(name.to_string(), text);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImportError::io(&path, e)),
            }
        }
        Ok(())
    }

    /// A companion file's text, if the model directory had it.
    pub fn companion(&self, name: &str) -> Option<&str> {
        self.companions.get(name).map(String::as_str)
    }

    /// The companion files, to write beside `tokenizer.json`.
    pub fn companions(&self) -> impl Iterator<Item = (&str, &str)> {
        self.companions.iter().map(|(k, v)| (k.as_str(), v.as_str()))
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

    /// The token an id stands for, as the vocabulary spells it.
    pub fn id_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}
