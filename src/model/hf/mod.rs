//! Hugging Face model directories, both ways: `config.json`,
//! `model.safetensors` and `tokenizer.json`, as `GPT2LMHeadModel` or as
//! `GPT2ForSequenceClassification` with one label.

mod dir;
mod error;
pub mod safetensors_io;

pub use dir::{
    is_scalar_model, load_language_model, load_scalar_model, load_tokenizer, save_language_model, save_scalar_model,
};
pub use error::ImportError;
