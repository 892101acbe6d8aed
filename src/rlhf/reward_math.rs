//! The reward model's math: the Bradley–Terry loss on a batch of pairs, and
//! on the host, pairwise accuracy and calibration (expected calibration
//! error over σ(Δr), with the reliability table for a chart).

use burn::tensor::{Tensor, activation};
use serde::{Deserialize, Serialize};

/// `mean(−log σ(r_w − r_l − m)) + c · mean((r_w + r_l)²)`.
///
/// `margin` (m) asks the chosen reward to exceed the rejected by at least
/// that much (Llama 2's margin loss); `center` (c) is TRL's
/// `center_rewards_coefficient`, which keeps rewards near zero so their
/// scale means something across runs.
pub fn bradley_terry_loss(chosen: Tensor<1>, rejected: Tensor<1>, margin: Option<Tensor<1>>, center: f64) -> Tensor<1> {
    let mut delta = chosen.clone() - rejected.clone();
    if let Some(m) = margin {
        delta = delta - m;
    }
    // −log σ(x) = softplus(−x), computed stably by log_sigmoid.
    let loss = activation::log_sigmoid(delta).mean().neg();
    if center > 0.0 {
        let sum = chosen + rejected;
        loss + (sum.clone() * sum).mean() * center
    } else {
        loss
    }
}

/// Fraction of pairs where the chosen response gets the higher reward
/// (a tie counts as wrong).
pub fn pairwise_accuracy(chosen: &[f32], rejected: &[f32]) -> f32 {
    if chosen.is_empty() {
        return 0.0;
    }
    let right = chosen.iter().zip(rejected).filter(|(c, r)| c > r).count();
    right as f32 / chosen.len() as f32
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// One bin of the reliability table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Confidence range [low, high).
    pub low: f32,
    pub high: f32,
    pub count: usize,
    /// Mean confidence of the pairs in the bin.
    pub confidence: f32,
    /// Fraction of them the model ordered correctly.
    pub accuracy: f32,
}

/// Calibration of the model's pairwise probabilities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Σ_b (n_b / N) · |accuracy_b − confidence_b|.
    pub ece: f32,
    pub bins: Vec<ReliabilityBin>,
}

/// The model says the chosen response wins with probability p = σ(r_w − r_l);
/// its confidence in its own ordering is max(p, 1 − p) ∈ [0.5, 1], and it is
/// right when p > 0.5. Pairs are binned by confidence in `n_bins` equal
/// bins over [0.5, 1]; empty bins are kept (count 0) so charts have a fixed
/// axis.
pub fn calibration(chosen: &[f32], rejected: &[f32], n_bins: usize) -> Calibration {
    let width = 0.5 / n_bins as f32;
    let mut sums = vec![(0usize, 0.0f32, 0usize); n_bins];
    for (c, r) in chosen.iter().zip(rejected) {
        let p = sigmoid(c - r);
        let confidence = p.max(1.0 - p);
        let bin = (((confidence - 0.5) / width) as usize).min(n_bins - 1);
        sums[bin].0 += 1;
        sums[bin].1 += confidence;
        sums[bin].2 += usize::from(p > 0.5);
    }
    let total = chosen.len().max(1) as f32;
    let bins: Vec<ReliabilityBin> = sums
        .iter()
        .enumerate()
        .map(|(i, &(count, conf_sum, right))| ReliabilityBin {
            low: 0.5 + i as f32 * width,
            high: 0.5 + (i + 1) as f32 * width,
            count,
            confidence: if count > 0 { conf_sum / count as f32 } else { 0.0 },
            accuracy: if count > 0 { right as f32 / count as f32 } else { 0.0 },
        })
        .collect();
    let ece = bins
        .iter()
        .map(|b| b.count as f32 / total * (b.accuracy - b.confidence).abs())
        .sum();
    Calibration { ece, bins }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t(values: &[f32]) -> Tensor<1> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &Device::flex())
    }

    #[test]
    fn bradley_terry_matches_hand_values() {
        // −log σ(1) = ln(1 + e⁻¹) = 0.3132617; −log σ(0) = ln 2 = 0.6931472.
        let loss = bradley_terry_loss(t(&[1.0, 0.0]), t(&[0.0, 0.0]), None, 0.0).into_scalar::<f32>();
        assert!(
            (loss - (0.3132617 + std::f32::consts::LN_2) / 2.0).abs() < 1e-6,
            "{loss}"
        );
        // A margin of 1 turns the first pair's Δ = 1 into 0: ln 2 for both.
        let loss = bradley_terry_loss(t(&[1.0, 0.0]), t(&[0.0, 0.0]), Some(t(&[1.0, 0.0])), 0.0).into_scalar::<f32>();
        assert!((loss - std::f32::consts::LN_2).abs() < 1e-6, "{loss}");
        // Centering adds c · mean((r_w + r_l)²) = 0.5 · (1 + 0) / 2.
        let loss = bradley_terry_loss(t(&[1.0, 0.0]), t(&[0.0, 0.0]), None, 0.5).into_scalar::<f32>();
        assert!((loss - (0.5032044 + 0.25)).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn bradley_terry_gradient_pushes_chosen_up_and_rejected_down() {
        let device = Device::flex().autodiff();
        let c = Tensor::<1>::from_data(TensorData::new(vec![0.0f32], [1]), &device).require_grad();
        let r = Tensor::<1>::from_data(TensorData::new(vec![0.0f32], [1]), &device).require_grad();
        let grads = bradley_terry_loss(c.clone(), r.clone(), None, 0.0).backward();
        // d/dΔ (−log σ(Δ)) = σ(Δ) − 1 = −0.5 at Δ = 0.
        let gc = c.grad(&grads).unwrap().into_scalar::<f32>();
        let gr = r.grad(&grads).unwrap().into_scalar::<f32>();
        assert!((gc + 0.5).abs() < 1e-6 && (gr - 0.5).abs() < 1e-6, "{gc} {gr}");
    }

    #[test]
    fn accuracy_counts_strict_wins() {
        assert_eq!(pairwise_accuracy(&[1.0, 2.0, 0.0, 3.0], &[0.0, 3.0, 0.0, 1.0]), 0.5);
    }

    #[test]
    fn ece_on_a_hand_made_case() {
        // Δ = ln(0.65/0.35) gives p = 0.65, Δ = ln(0.85/0.15) gives p = 0.85
        // (both mid-bin with five bins of width 0.1 over [0.5, 1]).
        let d65 = (0.65f32 / 0.35).ln();
        let d85 = (0.85f32 / 0.15).ln();
        // Two pairs at confidence 0.65, one ordered wrongly (Δ < 0); two at
        // 0.85, both right. ECE = ½·|0.5 − 0.65| + ½·|1 − 0.85| = 0.15.
        let cal = calibration(&[d65, 0.0, d85, d85], &[0.0, d65, 0.0, 0.0], 5);
        assert!((cal.ece - 0.15).abs() < 1e-5, "{}", cal.ece);
        assert_eq!(
            cal.bins.iter().map(|b| b.count).collect::<Vec<_>>(),
            vec![0, 2, 0, 2, 0]
        );
        assert!((cal.bins[1].accuracy - 0.5).abs() < 1e-6);
        assert!((cal.bins[3].confidence - 0.85).abs() < 1e-5);
        assert!((cal.bins[1].low - 0.6).abs() < 1e-6 && (cal.bins[1].high - 0.7).abs() < 1e-6);
    }
}
