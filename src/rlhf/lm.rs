//! The causal language-modelling loss with a per-token weight: all ones for
//! pretraining, zero on prompt tokens for SFT (InstructGPT's prompt
//! masking). Weighted mean of −log p(next token).

use burn::tensor::{Int, Tensor, TensorData};

use crate::model::Gpt2;
use crate::model::batch::PaddedBatch;
use crate::model::logprobs::target_stats;

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

/// The loss and what is reported beside it.
pub struct LmOutput {
    /// Weighted mean −log p(target), a scalar `[1]` with gradient.
    pub loss: Tensor<1>,
    /// Weighted fraction of positions where the most likely token is the target.
    pub accuracy: f32,
    /// Weighted mean entropy of the predicted distribution, in nats.
    pub entropy: f32,
}

/// Runs the model over the batch: loss with gradient, statistics without.
pub fn lm_forward(model: &Gpt2, batch: &LmBatch) -> LmOutput {
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
    let logits = model.lm_logits(hidden); // [b, t, V]
    let stats = target_stats(logits, targets.clone());
    let total = batch.weighted_tokens().max(1.0);
    let loss = (stats.logp * weights.clone()).sum().neg() / total;

    let weights = weights.detach();
    let correct = stats.predicted.equal(targets).float();
    LmOutput {
        loss,
        accuracy: (correct * weights.clone()).sum().into_scalar::<f32>() / total,
        entropy: (stats.entropy * weights).sum().into_scalar::<f32>() / total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_shifted_and_weights_follow_the_counted_tokens() {
        // Row [a b c d] with only c, d counted (a, b are the prompt).
        let batch = LmBatch::new(
            &[vec![10, 11, 12, 13], vec![20, 21]],
            &[vec![false, false, true, true], vec![false, true]],
            0,
        );
        assert_eq!(batch.inputs.ids, vec![10, 11, 12, 20, 0, 0]);
        assert_eq!(batch.targets, vec![11, 12, 13, 21, 0, 0]);
        assert_eq!(batch.weights, vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(batch.weighted_tokens(), 3.0);
    }
}
