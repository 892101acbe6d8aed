//! Direct Preference Optimisation's loss on a batch of pairs, from the
//! sequence log-probabilities of the chosen and rejected responses under
//! the policy and the frozen reference: with h = (log π(y_c) − log
//! π_ref(y_c)) − (log π(y_r) − log π_ref(y_r)), DPO's −log σ(β·h) or IPO's
//! (h − 1/(2β))², and the statistics TRL reports with their names.

use burn::tensor::Tensor;
use burn::tensor::activation::log_sigmoid;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DpoLossKind {
    /// −log σ(β·h): the Bradley–Terry likelihood of the pair under the
    /// reward the policy implies (the DPO paper).
    #[default]
    Sigmoid,
    /// (h − 1/(2β))²: a margin that does not push h to infinity on pairs
    /// that are always won (IPO; TRL gives it per-token mean log-probs).
    Ipo,
}

/// Sequence log-probabilities of a batch of pairs, `[pairs]` each.
pub struct PairLogps {
    pub policy_chosen: Tensor<1>,
    pub policy_rejected: Tensor<1>,
    pub reference_chosen: Tensor<1>,
    pub reference_rejected: Tensor<1>,
}

/// The loss and TRL's `rewards/…` statistics (the implicit rewards
/// β·(log π − log π_ref), no gradient).
pub struct DpoLoss {
    /// The mean over pairs.
    pub loss: Tensor<1>,
    /// `rewards/chosen`, `rewards/rejected`: mean implicit rewards.
    pub chosen_reward: f32,
    pub rejected_reward: f32,
    /// `rewards/accuracies`: the share of pairs whose chosen reward is the higher.
    pub accuracy: f32,
    /// `rewards/margins`: mean chosen − rejected reward.
    pub margin: f32,
}

pub fn dpo_loss(logps: PairLogps, beta: f64, kind: DpoLossKind) -> DpoLoss {
    let chosen = logps.policy_chosen - logps.reference_chosen;
    let rejected = logps.policy_rejected - logps.reference_rejected;
    let h = chosen.clone() - rejected.clone();
    let losses = match kind {
        DpoLossKind::Sigmoid => -log_sigmoid(h * beta),
        DpoLossKind::Ipo => (h - 1.0 / (2.0 * beta)).square(),
    };
    let (chosen, rejected) = (chosen.detach() * beta, rejected.detach() * beta);
    let mean = |t: Tensor<1>| t.mean().into_scalar::<f32>();
    DpoLoss {
        loss: losses.mean().reshape([1]),
        chosen_reward: mean(chosen.clone()),
        rejected_reward: mean(rejected.clone()),
        accuracy: mean(chosen.clone().greater(rejected.clone()).float()),
        margin: mean(chosen - rejected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn vector(values: &[f32], device: &Device) -> Tensor<1> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
    }

    /// Two pairs, worked by hand. Pair 1: policy −10 / −12, reference −11 /
    /// −11: h = 1 − (−1) = 2. Pair 2: policy −5 / −4, reference −5 / −5:
    /// h = 0 − 1 = −1. β = 0.5.
    #[test]
    fn the_loss_its_gradient_and_statistics_by_hand() {
        let device = Device::flex().autodiff();
        let chosen = vector(&[-10.0, -5.0], &device).require_grad();
        let rejected = vector(&[-12.0, -4.0], &device).require_grad();
        let out = dpo_loss(
            PairLogps {
                policy_chosen: chosen.clone(),
                policy_rejected: rejected.clone(),
                reference_chosen: vector(&[-11.0, -5.0], &device),
                reference_rejected: vector(&[-11.0, -5.0], &device),
            },
            0.5,
            DpoLossKind::Sigmoid,
        );
        let sigma = |x: f32| 1.0 / (1.0 + (-x).exp());
        // Losses −ln σ(1) = 0.313262 and −ln σ(−0.5) = 0.974077; mean 0.643670.
        let expected = (-sigma(1.0).ln() - sigma(-0.5).ln()) / 2.0;
        assert!((out.loss.clone().into_scalar::<f32>() - expected).abs() < 1e-6);
        assert!((expected - 0.643_670).abs() < 1e-5);
        // d/d log π(y_c) of −ln σ(β h) / n is −β σ(−β h) / n; the rejected
        // side's is its negative.
        let grads = out.loss.backward();
        let dc = chosen.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let dr = rejected.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let want = [-0.5 * sigma(-1.0) / 2.0, -0.5 * sigma(0.5) / 2.0];
        for i in 0..2 {
            assert!(
                (dc[i] - want[i]).abs() < 1e-6 && (dr[i] + want[i]).abs() < 1e-6,
                "{dc:?} {dr:?}"
            );
        }
        // Implicit rewards: chosen 0.5·[1, 0], rejected 0.5·[−1, 1].
        assert!((out.chosen_reward - 0.25).abs() < 1e-6 && out.rejected_reward.abs() < 1e-6);
        assert_eq!(out.accuracy, 0.5);
        assert!((out.margin - 0.25).abs() < 1e-6);
    }

    #[test]
    fn ipo_pulls_the_margin_to_one_over_two_beta() {
        let device = Device::flex();
        let logps = |h: f32| PairLogps {
            policy_chosen: vector(&[h], &device),
            policy_rejected: vector(&[0.0], &device),
            reference_chosen: vector(&[0.0], &device),
            reference_rejected: vector(&[0.0], &device),
        };
        // β = 0.25: the target margin is 2; h = 3 costs (3 − 2)² = 1, h = 2 nothing.
        let loss = |h| dpo_loss(logps(h), 0.25, DpoLossKind::Ipo).loss.into_scalar::<f32>();
        assert!((loss(3.0) - 1.0).abs() < 1e-6 && loss(2.0).abs() < 1e-6 && (loss(0.0) - 4.0).abs() < 1e-6);
    }
}
