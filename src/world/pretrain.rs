//! Pretraining the world's base model: a byte-level BPE tokenizer learned
//! from the corpus, then a small GPT-2 trained on packed corpus documents
//! with next-token prediction, written as a Hugging Face directory with the
//! seed and config it was made with.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;
use serde::Serialize;

use super::corpus::pretrain_documents;
use super::tokenizer_training::{self, EOS};
use crate::fsutil::write_atomic;
use crate::model::{CausalLm, Gpt2Config, hf};
use crate::rlhf::epochs::Epochs;
use crate::rlhf::lm::lm_gradients;
use crate::rlhf::schedule::warmup_cosine;

/// Everything that decides the base model; saved beside it.
#[derive(Clone, Debug, Serialize)]
pub struct PretrainConfig {
    pub out: PathBuf,
    /// A second copy of the tokenizer, shared by everything in the world.
    pub tokenizer_out: PathBuf,
    pub seed: u64,
    /// Documents in the corpus (the tokenizer learns from all of them).
    pub documents: usize,
    pub vocab_size: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Context length; also the packed sequence length.
    pub n_positions: usize,
    pub batch_size: usize,
    pub steps: usize,
    /// Stop early when this much wall time has passed.
    pub max_minutes: f64,
    pub lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f32,
}

/// What a pretraining run did.
#[derive(Clone, Debug, Serialize)]
pub struct PretrainReport {
    pub config: PretrainConfig,
    pub steps_done: usize,
    pub seconds: f64,
    pub final_loss: f32,
    pub parameters: usize,
    pub tokenizer_vocab: usize,
}

/// Packs documents (each followed by EOS) into rows of at most `len`
/// tokens, whole documents only, so every row starts at a document start
/// as a prompt does at inference.
pub fn pack(documents: &[Vec<u32>], eos: u32, len: usize) -> Vec<Vec<u32>> {
    let mut rows = Vec::new();
    let mut row: Vec<u32> = Vec::new();
    for doc in documents {
        let need = doc.len() + 1;
        if need > len {
            continue;
        }
        if row.len() + need > len {
            rows.push(std::mem::take(&mut row));
        }
        row.extend(doc);
        row.push(eos);
    }
    if !row.is_empty() {
        rows.push(row);
    }
    rows
}

/// Runs pretraining and writes the model directory. `progress` is told
/// (step, loss) every few steps.
pub fn pretrain(
    config: &PretrainConfig,
    device: &Device,
    mut progress: impl FnMut(usize, f32),
) -> anyhow::Result<PretrainReport> {
    let start = Instant::now();
    let documents = pretrain_documents(config.seed, config.documents);
    let tokenizer = tokenizer_training::train(&documents, config.vocab_size)?;
    let eos = tokenizer.token_id(EOS).expect("EOS is a special token");
    let encoded: Vec<Vec<u32>> = documents.iter().map(|d| tokenizer.encode(d)).collect();
    let mut rows = Epochs::new(pack(&encoded, eos, config.n_positions + 1), config.seed ^ 0x5eed);

    let mut model_config = Gpt2Config::new(
        tokenizer.vocab_size(),
        config.n_positions,
        config.n_embd,
        config.n_layer,
        config.n_head,
    );
    model_config.bos_token_id = Some(eos);
    model_config.eos_token_id = Some(eos);
    model_config.pad_token_id = Some(eos);
    let train_device = device.clone().autodiff();
    let mut model = CausalLm::seeded(&model_config, config.seed, &train_device);
    let mut optim = crate::rlhf::optim::GuardedAdamW::new(config.weight_decay, 1.0, true);

    let mut final_loss = f32::NAN;
    let mut steps_done = 0;
    for step in 0..config.steps {
        if start.elapsed().as_secs_f64() > config.max_minutes * 60.0 {
            break;
        }
        let batch_rows = rows.next(config.batch_size);
        let counts: Vec<Vec<bool>> = batch_rows.iter().map(|r| vec![true; r.len()]).collect();
        let (out, grads) = lm_gradients(&model, batch_rows, &counts, eos);
        final_loss = out.loss;
        let lr = warmup_cosine(step, config.steps, config.warmup_steps, config.lr, config.lr * 0.1);
        optim.step(lr, &mut model, f64::from(out.loss), grads);
        steps_done = step + 1;
        if step % 10 == 0 || step + 1 == config.steps {
            progress(step, final_loss);
        }
    }

    let parameters = model
        .named_tensors(crate::model::HeadKind::LanguageModel)
        .iter()
        .map(|(_, d)| d.num_elements())
        .sum();
    hf::save_language_model(&config.out, &model, &tokenizer)?;
    write_atomic(&config.tokenizer_out, tokenizer.json().as_bytes())?;
    let report = PretrainReport {
        config: config.clone(),
        steps_done,
        seconds: start.elapsed().as_secs_f64(),
        final_loss,
        parameters,
        tokenizer_vocab: tokenizer.vocab_size(),
    };
    write_atomic(
        &config.out.join("pretrain.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    Ok(report)
}
