//! Log-probabilities of given tokens under the model: what `score` prints,
//! what SFT's loss and PPO's ratios are built from.

use burn::tensor::{Int, Tensor, TensorData, activation};

use super::batch::PaddedBatch;
use super::gpt2::Gpt2;

/// `log softmax(logits)[target]` at every position.
/// `logits`: `[b, t, V]`; `targets`: `[b, t]` → `[b, t]`.
pub fn gather_logprobs(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    read_targets(activation::log_softmax(logits, 2), targets)
}

/// The target log-probabilities as `gather_logprobs` gives them (with
/// gradient) and the entropy of each position's distribution (without: it
/// is reported, never trained on), from one log-softmax. `[b, t]` each.
pub fn logprobs_and_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> (Tensor<2>, Tensor<2>) {
    let [b, t, _] = logits.dims();
    let logp_all = activation::log_softmax(logits, 2); // [b, t, V]
    let stats = logp_all.clone().detach();
    let entropy = (stats.clone().exp() * stats).sum_dim(2).reshape([b, t]).neg();
    (read_targets(logp_all, targets), entropy)
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
