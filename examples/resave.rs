//! Reads a Hugging Face GPT-2 directory and writes it back out through
//! rlhf-tui's own exporter, as `GPT2LMHeadModel` or, with `--scalar`, as
//! `GPT2ForSequenceClassification`. `scripts/check_export_in_transformers.py`
//! uses it to check that transformers opens what rlhf-tui writes.
//!
//!     cargo run --release --example resave -- IN_DIR OUT_DIR [--scalar]

use std::path::PathBuf;

use burn::tensor::Device;
use rlhf_tui::model::hf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: resave IN_DIR OUT_DIR [--scalar]");
    };
    let (input, output) = (PathBuf::from(input), PathBuf::from(output));
    let device = Device::flex();
    if args.iter().any(|a| a == "--scalar") {
        let (model, tokenizer) = hf::load_scalar_model(&input, &device, None)?;
        hf::save_scalar_model(&output, &model, &tokenizer)?;
    } else {
        let (model, tokenizer) = hf::load_language_model(&input, &device)?;
        hf::save_language_model(&output, &model, &tokenizer)?;
    }
    println!("wrote {}", output.display());
    Ok(())
}
