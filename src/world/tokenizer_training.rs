//! Training the world's byte-level BPE tokenizer on its corpus with the
//! `tokenizers` crate, in the layout GPT-2's tokenizer uses, with
//! `<|endoftext|>` as id 0.

use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

pub const EOS: &str = "<|endoftext|>";

/// A BPE tokenizer of at most `vocab_size` tokens learned from `documents`.
/// Merges never cross spaces (GPT-2's pre-tokenizer), so a small world's
/// vocabulary can end below `vocab_size` once every word is one token.
pub fn train(documents: &[String], vocab_size: usize) -> anyhow::Result<crate::model::Tokenizer> {
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer.with_post_processor(Some(ByteLevel::default()));
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(EOS, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    tokenizer
        .train(&mut trainer, documents.iter())
        .map_err(|e| anyhow::anyhow!("training the tokenizer: {e}"))?;
    let json = tokenizer
        .to_string(false)
        .map_err(|e| anyhow::anyhow!("serialising the tokenizer: {e}"))?;
    crate::model::Tokenizer::from_json(&json).map_err(|e| anyhow::anyhow!("reloading the tokenizer: {e}"))
}
