//! The causal language-modelling loss with a per-token weight: all ones for
//! pretraining, zero on prompt tokens for SFT (InstructGPT's prompt
//! masking). Weighted mean of −log p(next token).

use burn::tensor::{Int, Tensor, TensorData};

use crate::model::Gpt2;
use crate::model::batch::PaddedBatch;
use crate::model::logprobs::gather_logprobs;

/// Inputs, targets and loss weights for one batch of next-token prediction.
pub struct LmBatch {
    /// Right-padded inputs (each row's tokens but the last).
    pub inputs: PaddedBatch,
    /// `[b · t]` the token each input position should predict.
    pub targets: Vec<i64>,
    /// `[b · t]` 1 where the prediction counts, 0 for padding (and prompts).
    pub weights: Vec<f32>,
}

impl LmBatch {
    /// Rows of tokens; `counts[i][j]` says whether token j of row i is a
    /// target (its prediction from the tokens before it is trained).
    pub fn new(rows: &[Vec<u32>], counts: &[Vec<bool>], pad_id: u32) -> Self {
        let inputs: Vec<Vec<u32>> = rows.iter().map(|r| r[..r.len().saturating_sub(1)].to_vec()).collect();
        let inputs = PaddedBatch::right_padded(&inputs, pad_id);
        let t = inputs.cols;
        let mut targets = Vec::with_capacity(rows.len() * t);
        let mut weights = Vec::with_capacity(rows.len() * t);
        for (row, count) in rows.iter().zip(counts) {
            for j in 0..t {
                let k = j + 1; // the token predicted at position j
                targets.push(row.get(k).copied().unwrap_or(pad_id) as i64);
                weights.push(if k < row.len() && count[k] { 1.0 } else { 0.0 });
            }
        }
        Self {
            inputs,
            targets,
            weights,
        }
    }

    pub fn weighted_tokens(&self) -> f32 {
        self.weights.iter().sum()
    }
}

/// Weighted mean negative log-likelihood of the targets, a scalar `[1]`.
pub fn lm_loss(model: &Gpt2, batch: &LmBatch) -> Tensor<1> {
    let device = model.wte.val().device();
    let (b, t) = (batch.inputs.rows, batch.inputs.cols);
    let inputs = &batch.inputs;
    let hidden = model.forward(
        inputs.ids_tensor(&device),
        inputs.positions_tensor(&device),
        inputs.mask_tensor(&device),
        None,
    );
    let targets = Tensor::<2, Int>::from_data(TensorData::new(batch.targets.clone(), [b, t]), &device);
    let weights = Tensor::<2>::from_data(TensorData::new(batch.weights.clone(), [b, t]), &device);
    let logp = gather_logprobs(model.lm_logits(hidden), targets); // [b, t]
    let total = batch.weighted_tokens().max(1.0);
    (logp * weights).sum().neg() / total
}
