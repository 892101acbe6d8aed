//! Log-probabilities of given tokens under the model: what `score` prints,
//! what SFT's loss and PPO's ratios are built from.

use burn::tensor::{Int, Tensor, TensorData};

use super::batch::PaddedBatch;
use super::causal_lm::CausalLm;
use crate::kernels::token_logprobs::row_stats;

/// `log softmax(logits)[target]` at every position.
/// `logits`: `[b, t, V]`; `targets`: `[b, t]` → `[b, t]`.
pub fn gather_logprobs(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    target_stats(logits, targets).logp
}

/// What a position's distribution says about its target, `[b, t]` each.
pub struct TargetStats {
    /// `log softmax(logits)[target]`, as `gather_logprobs` gives it (with gradient).
    pub logp: Tensor<2>,
    /// The distribution's entropy, without gradient: reported, never trained on.
    pub entropy: Tensor<2>,
    /// The most likely token.
    pub predicted: Tensor<2, Int>,
}

/// The target log-probabilities, entropies and most likely tokens.
pub fn target_stats(logits: Tensor<3>, targets: Tensor<2, Int>) -> TargetStats {
    let [b, t, v] = logits.dims();
    let rows = row_stats(logits.reshape([b * t, v]), targets.reshape([b * t]));
    TargetStats {
        logp: rows.logp.reshape([b, t]),
        entropy: rows.entropy.reshape([b, t]),
        predicted: rows.argmax.reshape([b, t]),
    }
}

/// The log-probability of each token after the first given the tokens
/// before it: `len - 1` values for a sequence of `len` tokens.
pub fn sequence_logprobs(model: &CausalLm, ids: &[u32]) -> Vec<f32> {
    if ids.len() < 2 {
        return Vec::new();
    }
    let device = model.device();
    let batch = PaddedBatch::right_padded(&[ids.to_vec()], 0);
    let hidden = model.forward(
        batch.ids_tensor(&device),
        batch.positions_tensor(&device),
        batch.mask_tensor(&device),
        None,
    );
    let t = ids.len();
    let logits = model.lm_logits(hidden.narrow(1, 0, t - 1)); // [1, t-1, V]
    let targets: Vec<i64> = ids[1..].iter().map(|&x| x as i64).collect();
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [1, t - 1]), &device);
    gather_logprobs(logits, targets)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 log-probs")
}
