//! Log-probabilities of given tokens under the model: what `score` prints,
//! what SFT's loss and PPO's ratios are built from.

use burn::tensor::{Int, Tensor, TensorData, activation};

use super::batch::PaddedBatch;
use super::gpt2::Gpt2;
#[cfg(feature = "flex")]
use super::token_logprobs;

/// `log softmax(logits)[target]` at every position.
/// `logits`: `[b, t, V]`; `targets`: `[b, t]` → `[b, t]`.
pub fn gather_logprobs(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if crate::device::is_cpu(&logits.device()) {
        return target_stats(logits, targets).logp;
    }
    read_targets(activation::log_softmax(logits, 2), targets)
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

/// The target log-probabilities, entropies and most likely tokens: one
/// fused pass on the CPU, one log-softmax shared by all three elsewhere.
pub fn target_stats(logits: Tensor<3>, targets: Tensor<2, Int>) -> TargetStats {
    let [b, t, v] = logits.dims();
    #[cfg(feature = "flex")]
    if crate::device::is_cpu(&logits.device()) {
        let rows = token_logprobs::row_stats(logits.reshape([b * t, v]), targets.reshape([b * t]));
        return TargetStats {
            logp: rows.logp.reshape([b, t]),
            entropy: rows.entropy.reshape([b, t]),
            predicted: rows.argmax.reshape([b, t]),
        };
    }
    let logp_all = activation::log_softmax(logits, 2); // [b, t, V]
    let stats = logp_all.clone().detach();
    TargetStats {
        predicted: stats.clone().argmax(2).reshape([b, t]),
        entropy: (stats.clone().exp() * stats).sum_dim(2).reshape([b, t]).neg(),
        logp: read_targets(logp_all, targets),
    }
}

fn read_targets(logp_all: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    let [b, t, _] = logp_all.dims();
    logp_all.gather(2, targets.reshape([b, t, 1])).reshape([b, t])
}

/// The log-probability of each token after the first given the tokens
/// before it: `len - 1` values for a sequence of `len` tokens.
pub fn sequence_logprobs(model: &Gpt2, ids: &[u32]) -> Vec<f32> {
    if ids.len() < 2 {
        return Vec::new();
    }
    let device = model.wte.val().device();
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
