//! PPO's losses on a minibatch, as tensors with gradient: the clipped
//! policy objective, the clipped value loss, and the statistics TRL reports
//! beside them (clip fractions, approximate KL, mean ratio). All `[b, t]`
//! with a mask that is 1 on response tokens.

use burn::tensor::Tensor;

/// The policy loss and its statistics.
pub struct PolicyLoss {
    /// mean over tokens of max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)), ρ = exp(logp − old_logp).
    pub loss: Tensor<1>,
    /// Fraction of tokens where the clipped term was the larger (no gradient).
    pub clipfrac: f32,
    /// ½·mean((logp − old_logp)²), TRL's `policy/approxkl_avg`.
    pub approxkl: f32,
    /// Mean ρ (`val/ratio`): far from 1 means the policy moved a lot.
    pub ratio: f32,
}

fn masked_mean(x: Tensor<2>, mask: Tensor<2>, n: f32) -> Tensor<1> {
    (x * mask).sum() / n
}

fn scalar(x: Tensor<1>) -> f32 {
    x.into_scalar::<f32>()
}

pub fn policy_loss(
    logp: Tensor<2>,
    old_logp: Tensor<2>,
    advantages: Tensor<2>,
    mask: Tensor<2>,
    clip: f64,
) -> PolicyLoss {
    let n = scalar(mask.clone().sum()).max(1.0);
    let log_ratio = logp - old_logp;
    let ratio = log_ratio.clone().exp();
    let unclipped = -advantages.clone() * ratio.clone();
    let clipped = -advantages * ratio.clone().clamp(1.0 - clip, 1.0 + clip);
    let clip_taken = clipped.clone().detach().greater(unclipped.clone().detach()).float();
    let loss = masked_mean(unclipped.max_pair(clipped), mask.clone(), n);
    PolicyLoss {
        loss,
        clipfrac: scalar(masked_mean(clip_taken, mask.clone(), n)),
        approxkl: scalar(masked_mean(log_ratio.detach().square(), mask.clone(), n)) * 0.5,
        ratio: scalar(masked_mean(ratio.detach(), mask, n)),
    }
}

/// The value loss and how often its clip decided it.
pub struct ValueLoss {
    /// ½·mean(max((V − R)², (V_clip − R)²)), V_clip = V_old + clip(V − V_old, −c, c).
    pub loss: Tensor<1>,
    /// `val/clipfrac_avg`.
    pub clipfrac: f32,
}

pub fn value_loss(
    values: Tensor<2>,
    old_values: Tensor<2>,
    returns: Tensor<2>,
    mask: Tensor<2>,
    clip: f64,
) -> ValueLoss {
    let n = scalar(mask.clone().sum()).max(1.0);
    let clipped = old_values.clone() + (values.clone() - old_values).clamp(-clip, clip);
    let unclipped_err = (values - returns.clone()).square();
    let clipped_err = (clipped - returns).square();
    let clip_taken = clipped_err
        .clone()
        .detach()
        .greater(unclipped_err.clone().detach())
        .float();
    ValueLoss {
        loss: masked_mean(unclipped_err.max_pair(clipped_err), mask.clone(), n) * 0.5,
        clipfrac: scalar(masked_mean(clip_taken, mask, n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn row(values: &[f32], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values.to_vec(), [1, values.len()]), device)
    }

    /// Loss and d loss / d logp for one token of advantage `a` at ratio `r`.
    fn one_token(a: f32, r: f32, clip: f64) -> (f32, f32, f32) {
        let device = Device::flex().autodiff();
        let logp = row(&[r.ln()], &device).require_grad();
        let out = policy_loss(
            logp.clone(),
            row(&[0.0], &device),
            row(&[a], &device),
            row(&[1.0], &device),
            clip,
        );
        let loss = out.loss.clone().into_scalar::<f32>();
        let grads = out.loss.backward();
        let grad = logp.grad(&grads).unwrap().into_scalar::<f32>();
        (loss, grad, out.clipfrac)
    }

    #[test]
    fn ratio_one_gives_minus_the_advantage() {
        let (loss, grad, clipfrac) = one_token(2.0, 1.0, 0.2);
        assert!((loss + 2.0).abs() < 1e-6 && (grad + 2.0).abs() < 1e-6 && clipfrac == 0.0);
    }

    #[test]
    fn clipping_for_both_signs_of_the_advantage() {
        // A > 0, ρ = 1.5 > 1 + ε: the clipped −1.2·A wins; no gradient.
        let (loss, grad, clipfrac) = one_token(1.0, 1.5, 0.2);
        assert!((loss + 1.2).abs() < 1e-6, "{loss}");
        assert_eq!(grad, 0.0);
        assert_eq!(clipfrac, 1.0);
        // A < 0, ρ = 1.5: the unclipped 1.5·|A| is larger; gradient −A·ρ = 1.5.
        let (loss, grad, clipfrac) = one_token(-1.0, 1.5, 0.2);
        assert!(
            (loss - 1.5).abs() < 1e-6 && (grad - 1.5).abs() < 1e-5 && clipfrac == 0.0,
            "{loss} {grad}"
        );
        // A > 0, ρ = 0.5 < 1 − ε: the unclipped −0.5·A is larger; gradient −0.5.
        let (loss, grad, _) = one_token(1.0, 0.5, 0.2);
        assert!((loss + 0.5).abs() < 1e-6 && (grad + 0.5).abs() < 1e-6, "{loss} {grad}");
        // A < 0, ρ = 0.5: the clipped 0.8·|A| wins; no gradient.
        let (loss, grad, clipfrac) = one_token(-1.0, 0.5, 0.2);
        assert!(
            (loss - 0.8).abs() < 1e-6 && grad == 0.0 && clipfrac == 1.0,
            "{loss} {grad}"
        );
    }

    #[test]
    fn masked_tokens_do_not_count_and_statistics_are_by_hand() {
        let device = Device::flex();
        // Token 2 is masked out; tokens 0, 1 have log-ratios 0 and ln 1.1.
        let l = 1.1f32.ln();
        let out = policy_loss(
            row(&[0.0, l, 5.0], &device),
            row(&[0.0; 3], &device),
            row(&[1.0, 1.0, 100.0], &device),
            row(&[1.0, 1.0, 0.0], &device),
            0.2,
        );
        assert!((out.loss.into_scalar::<f32>() + (1.0 + 1.1) / 2.0).abs() < 1e-6);
        assert!((out.ratio - 1.05).abs() < 1e-6);
        assert!((out.approxkl - 0.5 * (l * l) / 2.0).abs() < 1e-7);
        assert_eq!(out.clipfrac, 0.0);
    }

    #[test]
    fn value_loss_clip_by_hand() {
        let device = Device::flex();
        // V_old 0, V 1, R 0, c 0.2: V_clip 0.2; errors 1 and 0.04; ½·1.
        let out = value_loss(
            row(&[1.0], &device),
            row(&[0.0], &device),
            row(&[0.0], &device),
            row(&[1.0], &device),
            0.2,
        );
        assert!((out.loss.into_scalar::<f32>() - 0.5).abs() < 1e-6 && out.clipfrac == 0.0);
        // V_old 0, V 0.5, R 1: V_clip 0.2; errors 0.25 and 0.64; ½·0.64, clipped.
        let out = value_loss(
            row(&[0.5], &device),
            row(&[0.0], &device),
            row(&[1.0], &device),
            row(&[1.0], &device),
            0.2,
        );
        assert!((out.loss.into_scalar::<f32>() - 0.32).abs() < 1e-6 && out.clipfrac == 1.0);
    }
}
