//! GRPO's and RLOO's losses on a minibatch, as tensors with gradient, and
//! the clip statistics TRL reports beside them. `[b, t]` tensors hold one
//! response a row with a mask that is 1 on its tokens; the advantages are
//! one per response.
//!
//! GRPO takes the ratio per token, ρ_t = exp(log π − log π_old), clips it,
//! adds β times the k3 estimate of the KL to the reference at each token,
//! exp(r − l) − (r − l) − 1 with l = log π and r = log π_ref, and
//! aggregates the tokens as `loss_type` says. RLOO takes one ratio per
//! response, exp(Σ log π − Σ log π_old), and averages the clipped
//! objective over responses (its KL is already in the reward).

use burn::tensor::{Bool, Tensor};

use super::aggregation::{LossAggregation, Normalisers, aggregate};

/// A loss and its statistics (none with gradient).
pub struct GroupLoss {
    pub loss: Tensor<1>,
    /// Share of tokens (GRPO) or responses (RLOO) whose ratio fell below
    /// 1 − ε with a negative advantage, and rose above 1 + ε with a
    /// positive one: where the clip took the gradient away.
    pub clip_low: f32,
    pub clip_high: f32,
    /// GRPO: the mean k3 KL to the reference per token (0 without one).
    pub kl: f32,
}

/// (−min(ρA, clip(ρ)A), whether clipped low, whether clipped high).
fn clipped_objective(
    ratio: Tensor<2>,
    advantages: Tensor<2>,
    (low, high): (f64, f64),
) -> (Tensor<2>, Tensor<2, Bool>, Tensor<2, Bool>) {
    let r = ratio.clone().detach();
    let a = advantages.clone();
    let clipped_low = r.clone().lower_elem(1.0 - low).bool_and(a.clone().lower_elem(0.0));
    let clipped_high = r.greater_elem(1.0 + high).bool_and(a.greater_elem(0.0));
    let unclipped = ratio.clone() * advantages.clone();
    let clipped = ratio.clamp(1.0 - low, 1.0 + high) * advantages;
    (-unclipped.min_pair(clipped), clipped_low, clipped_high)
}

fn share(flags: Tensor<2, Bool>, mask: Tensor<2>) -> f32 {
    let n = mask.clone().sum().into_scalar::<f32>().max(1.0);
    (flags.float() * mask).sum().into_scalar::<f32>() / n
}

/// GRPO's loss. `advantages` is `[b, t]` (each response's advantage on
/// every column); `reference` is needed when `beta` > 0 and reported when given.
#[allow(clippy::too_many_arguments)]
pub fn grpo_loss(
    logp: Tensor<2>,
    old_logp: Tensor<2>,
    reference: Option<Tensor<2>>,
    advantages: Tensor<2>,
    mask: Tensor<2>,
    epsilon: (f64, f64),
    beta: f64,
    (how, sizes): (LossAggregation, Normalisers),
) -> GroupLoss {
    let ratio = (logp.clone() - old_logp).exp();
    let (mut per_token, low, high) = clipped_objective(ratio, advantages, epsilon);
    let mut kl = 0.0;
    if let Some(reference) = reference {
        let d = reference - logp;
        let k3 = d.clone().exp() - d - 1.0;
        let n = mask.clone().sum().into_scalar::<f32>().max(1.0);
        kl = (k3.clone().detach() * mask.clone()).sum().into_scalar::<f32>() / n;
        if beta > 0.0 {
            per_token = per_token + k3 * beta;
        }
    }
    GroupLoss {
        clip_low: share(low, mask.clone()),
        clip_high: share(high, mask.clone()),
        loss: aggregate(per_token, mask, how, sizes),
        kl,
    }
}

/// RLOO's loss: the mean over responses of the clipped objective at the
/// response's ratio. `old_logp` is each response's summed log-prob at
/// sampling, `[b, 1]`; `advantages` `[b, 1]`.
pub fn rloo_loss(
    logp: Tensor<2>,
    old_logp: Tensor<2>,
    advantages: Tensor<2>,
    mask: Tensor<2>,
    epsilon: f64,
) -> GroupLoss {
    let [rows, _] = logp.dims();
    let sequence = (logp * mask).sum_dim(1);
    let ratio = (sequence - old_logp).exp();
    let (per_response, low, high) = clipped_objective(ratio, advantages, (epsilon, epsilon));
    let ones = Tensor::<2>::ones([rows, 1], &per_response.device());
    GroupLoss {
        clip_low: share(low, ones.clone()),
        clip_high: share(high, ones),
        loss: per_response.mean().reshape([1]),
        kl: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// Two responses: the first's two tokens have ratios 1.5 and 1 and
    /// advantage +1; the second's one token (its second column is padding)
    /// ratio 0.5 and advantage −2; ε = 0.2. Token losses: −min(1.5, 1.2)
    /// = −1.2 (clipped high), −1, and −min(−1, −1.6) = 1.6 (clipped low).
    fn batch(device: &Device) -> [Tensor<2>; 4] {
        let t = |v: [f32; 4]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [2, 2]), device);
        let logp = t([1.5f32.ln(), 0.0, 0.5f32.ln(), -3.0]);
        let old = t([0.0; 4]);
        let advantages = t([1.0, 1.0, -2.0, -2.0]);
        let mask = t([1.0, 1.0, 1.0, 0.0]);
        [logp, old, advantages, mask]
    }

    #[test]
    fn grpo_loss_and_its_gradient_by_hand() {
        let device = Device::flex().autodiff();
        let [logp, old, advantages, mask] = batch(&device);
        let logp = logp.require_grad();
        let sizes = Normalisers {
            max_response_tokens: 2,
            batch_tokens: 3,
        };
        let reference = Tensor::<2>::zeros([2, 2], &device);
        // Without β: bnpo over 3 tokens (−1.2 − 1 + 1.6) / 3 = −0.2.
        let plain = grpo_loss(
            logp.clone(),
            old.clone(),
            None,
            advantages.clone(),
            mask.clone(),
            (0.2, 0.2),
            0.0,
            (LossAggregation::Bnpo, sizes),
        );
        assert!((plain.loss.into_scalar::<f32>() + 0.2).abs() < 1e-6);
        assert!((plain.clip_low - 1.0 / 3.0).abs() < 1e-6 && (plain.clip_high - 1.0 / 3.0).abs() < 1e-6);
        // With β = 0.1 and a reference at 0: k3 at ratio 1.5 is
        // 2/3 + ln 1.5 − 1 = 0.0721318, at ratio 0.5 it is 2 − ln 2 − 1 =
        // 0.3068528, and 0 where the ratio is 1.
        let out = grpo_loss(
            logp.clone(),
            old,
            Some(reference),
            advantages,
            mask,
            (0.2, 0.2),
            0.1,
            (LossAggregation::Bnpo, sizes),
        );
        let (k1, k2) = (2.0 / 3.0 + 1.5f32.ln() - 1.0, 1.0 - 2.0f32.ln());
        assert!((out.kl - (k1 + k2) / 3.0).abs() < 1e-6, "{}", out.kl);
        let loss = out.loss.clone().into_scalar::<f32>();
        assert!((loss - (-0.6 + 0.1 * (k1 + k2)) / 3.0).abs() < 1e-6, "{loss}");
        // The gradient: the clipped tokens keep only the KL term's,
        // β·(1 − exp(r − l))/3; the unclipped one −ρA/3 = −1/3.
        let grads = out.loss.backward();
        let g = logp.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let expected = [0.1 * (1.0 - 2.0 / 3.0) / 3.0, -1.0 / 3.0, 0.1 * (1.0 - 2.0) / 3.0, 0.0];
        for (got, want) in g.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{g:?} vs {expected:?}");
        }
    }

    #[test]
    fn rloo_loss_by_hand() {
        let device = Device::flex().autodiff();
        let [logp, _, _, mask] = batch(&device);
        let col = |v: [f32; 2]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [2, 1]), &device);
        // Sequence ratios 1.5 (A = +1) and 0.5 (A = −2): (−1.2 + 1.6) / 2.
        let out = rloo_loss(logp, col([0.0, 0.0]), col([1.0, -2.0]), mask, 0.2);
        assert!((out.loss.into_scalar::<f32>() - 0.2).abs() < 1e-6);
        assert_eq!((out.clip_low, out.clip_high), (0.5, 0.5));
    }
}
