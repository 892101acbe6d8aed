//! Masked multi-head self-attention as one operation with its own backward
//! pass on the CPU backend, reading queries, keys and values straight out
//! of the fused `c_attn` projection.
//!
//! Composed under autodiff, attention is three slices of the projection,
//! two transposing copies, a product, a scale, a mask fill, a five-pass
//! softmax, a second product and a copy back, each with its own backward
//! pass (the slices' backward passes fill a zeroed copy of the whole
//! projection apiece). Here each batch row is one task: per head, the
//! scores go through one strided matrix product into a `[t, t]` tile, a
//! masked softmax in place, and a second product writes the head's output
//! columns; backward is four products and one pass over the tile, written
//! straight into the projection's gradient.
//!
//! Per head, with S = scale·Q·Kᵀ, P = softmax over the visible keys of S,
//! Y = P·V, and G = ∂L/∂Y: ∂L/∂V = Pᵀ·G, ∂L/∂P = G·Vᵀ,
//! ∂L/∂S = P ⊙ (∂L/∂P − Σⱼ P ⊙ ∂L/∂P), ∂L/∂Q = scale·∂L/∂S·K,
//! ∂L/∂K = scale·∂L/∂Sᵀ·Q.

use burn::backend::Flex;
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, backend_extension};
use burn::tensor::{Bool, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_tensor::{f32s, zeros};

/// `qkv` (`[b, t, 3d]`, queries, keys and values side by side) attended
/// under `mask` (`[b, 1, t, t]`, true where query i may not see key j),
/// heads concatenated: `[b, t, d]`. `None` off the CPU backend, where the
/// caller composes attention from burn's operations.
pub fn self_attention(qkv: &Tensor<3>, mask: &Tensor<4, Bool>, heads: usize) -> Option<Tensor<3>> {
    if !crate::device::is_cpu(&qkv.device()) {
        return None;
    }
    let [b, _, q, k] = mask.dims();
    let hidden = mask.clone().reshape([b, q, k]).float();
    let y = <burn::backend::Dispatch as FusedAttention>::fused_attention(
        qkv.clone().into_dispatch(),
        hidden.into_dispatch(),
        heads,
    );
    Some(Tensor::from_dispatch(y))
}

#[backend_extension(Flex, Autodiff)]
pub trait FusedAttention: Backend {
    /// `qkv`: `[b, t, 3d]`; `hidden`: `[b, t, t]`, non-zero where a key is
    /// hidden from a query → `[b, t, d]`.
    fn fused_attention(qkv: FloatTensor<Self>, hidden: FloatTensor<Self>, heads: usize) -> FloatTensor<Self>;
}

impl FusedAttention for Flex {
    fn fused_attention(qkv: FlexTensor, hidden: FlexTensor, heads: usize) -> FlexTensor {
        forward(&qkv.to_contiguous(), &hidden.to_contiguous(), heads).0
    }
}

impl<C: CheckpointStrategy> FusedAttention for Autodiff<Flex, C> {
    fn fused_attention(qkv: FloatTensor<Self>, hidden: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AttentionBackward;

        impl Backward<Flex, 1> for AttentionBackward {
            /// The projection, the softmax tiles `[b, h, t, t]` and the
            /// number of heads.
            type State = (FlexTensor, FlexTensor, usize);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [parent] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                if let Some(parent) = parent {
                    let (qkv, probs, heads) = ops.state;
                    grads.register::<Flex>(parent.id, backward(&qkv, &probs, &grad.to_contiguous(), heads));
                }
            }
        }

        let prep = AttentionBackward.prepare::<C>([qkv.node()]).compute_bound().stateful();
        let (qkv, hidden) = (
            qkv.into_primitive().to_contiguous(),
            hidden.into_primitive().to_contiguous(),
        );
        let (y, probs) = forward(&qkv, &hidden, heads);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((qkv, probs, heads), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// The shapes of one call and the scores' scale.
#[derive(Clone, Copy)]
struct Dims {
    t: usize,
    d: usize,
    hd: usize,
    scale: f32,
}

impl Dims {
    fn of(qkv: &FlexTensor, heads: usize) -> (usize, Self) {
        let shape = qkv.shape();
        let (b, t, d) = (shape[0], shape[1], shape[2] / 3);
        assert!(
            heads > 0 && d % heads == 0,
            "{d} features do not split into {heads} heads"
        );
        let hd = d / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        (b, Self { t, d, hd, scale })
    }
}

/// The output `[b, t, d]` and the softmax tiles `[b, h, t, t]`.
fn forward(qkv: &FlexTensor, hidden: &FlexTensor, heads: usize) -> (FlexTensor, FlexTensor) {
    let (b, dims @ Dims { t, d, .. }) = Dims::of(qkv, heads);
    let mut y = zeros(Shape::new([b, t, d]));
    let mut probs = zeros(Shape::new([b, heads, t, t]));
    let (qkv, hidden) = (f32s(qkv), f32s(hidden));
    y.storage_mut::<f32>()
        .par_chunks_mut(t * d)
        .zip(probs.storage_mut::<f32>().par_chunks_mut(heads * t * t))
        .zip(qkv.par_chunks(t * 3 * d))
        .zip(hidden.par_chunks(t * t))
        .for_each(|(((y, probs), qkv), hidden)| {
            for (h, p) in probs.chunks_mut(t * t).enumerate() {
                kernels::head_forward(dims, h, qkv, hidden, p, y);
            }
        });
    (y, probs)
}

/// `∂L/∂qkv` from `∂L/∂y`.
fn backward(qkv: &FlexTensor, probs: &FlexTensor, grad: &FlexTensor, heads: usize) -> FlexTensor {
    let (_, dims @ Dims { t, d, .. }) = Dims::of(qkv, heads);
    let mut dqkv = zeros(qkv.shape());
    let (qkv, probs, grad) = (f32s(qkv), f32s(probs), f32s(grad));
    dqkv.storage_mut::<f32>()
        .par_chunks_mut(t * 3 * d)
        .zip(qkv.par_chunks(t * 3 * d))
        .zip(probs.par_chunks(heads * t * t))
        .zip(grad.par_chunks(t * d))
        .for_each(|(((dqkv, qkv), probs), grad)| {
            let mut scratch = vec![0.0f32; t * t];
            for (h, p) in probs.chunks(t * t).enumerate() {
                kernels::head_backward(dims, h, qkv, p, grad, &mut scratch, dqkv);
            }
        });
    dqkv
}

/// One batch row's per-head math on slices: `qkv` is `[t, 3d]`, `y` and
/// `grad` `[t, d]`, `probs` and `scratch` one head's `[t, t]` tile.
mod kernels {
    use super::Dims;
    use crate::model::cpu_tensor::{Matrix, Threads, product};
    use crate::model::simd::{exp, widest};

    /// Head `h`: fills its softmax tile and its `hd` output columns.
    pub fn head_forward(dims: Dims, h: usize, qkv: &[f32], hidden: &[f32], probs: &mut [f32], y: &mut [f32]) {
        let Dims { t, d, hd, scale } = dims;
        let (q, k, v) = (&qkv[h * hd..], &qkv[d + h * hd..], &qkv[2 * d + h * hd..]);
        product(
            (t, t, hd),
            probs,
            t,
            Matrix::rows(q, 3 * d),
            Matrix::t(k, 3 * d),
            scale,
            false,
            Threads::One,
        );
        for (row, hidden) in probs.chunks_mut(t).zip(hidden.chunks(t)) {
            softmax(row, hidden);
        }
        let (p, v) = (Matrix::rows(probs, t), Matrix::rows(v, 3 * d));
        product((t, hd, t), &mut y[h * hd..], d, p, v, 1.0, false, Threads::One);
    }

    /// Head `h`'s columns of `dqkv`.
    pub fn head_backward(
        dims: Dims,
        h: usize,
        qkv: &[f32],
        probs: &[f32],
        grad: &[f32],
        scratch: &mut [f32],
        dqkv: &mut [f32],
    ) {
        let Dims { t, d, hd, scale } = dims;
        let q = Matrix::rows(&qkv[h * hd..], 3 * d);
        let k = Matrix::rows(&qkv[d + h * hd..], 3 * d);
        let v = Matrix::t(&qkv[2 * d + h * hd..], 3 * d);
        let g = Matrix::rows(&grad[h * hd..], d);
        product(
            (t, hd, t),
            &mut dqkv[2 * d + h * hd..],
            3 * d,
            Matrix::t(probs, t),
            g,
            1.0,
            false,
            Threads::One,
        );
        product((t, t, hd), scratch, t, g, v, 1.0, false, Threads::One);
        for (ds, p) in scratch.chunks_mut(t).zip(probs.chunks(t)) {
            softmax_backward(p, ds);
        }
        let ds = &*scratch;
        product(
            (t, hd, t),
            &mut dqkv[h * hd..],
            3 * d,
            Matrix::rows(ds, t),
            k,
            scale,
            false,
            Threads::One,
        );
        product(
            (t, hd, t),
            &mut dqkv[d + h * hd..],
            3 * d,
            Matrix::t(ds, t),
            q,
            scale,
            false,
            Threads::One,
        );
    }

    /// Scores to probabilities over the keys whose `hidden` entry is zero;
    /// hidden keys get exactly 0, and a row with no visible key is all 0.
    pub fn softmax(row: &mut [f32], hidden: &[f32]) {
        widest(|| {
            let max = row
                .iter()
                .zip(hidden)
                .fold(f32::MIN, |m, (&s, &h)| if h == 0.0 { m.max(s) } else { m });
            let mut sum = 0.0;
            for (s, &h) in row.iter_mut().zip(hidden) {
                *s = if h == 0.0 { exp(*s - max) } else { 0.0 };
                sum += *s;
            }
            let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
            row.iter_mut().for_each(|p| *p *= inv);
        })
    }

    /// `dp` (∂L/∂P for one row) becomes ∂L/∂S: P ⊙ (∂L/∂P − Σ P ⊙ ∂L/∂P).
    pub fn softmax_backward(p: &[f32], dp: &mut [f32]) {
        widest(|| {
            let dot: f32 = p.iter().zip(dp.iter()).map(|(p, g)| p * g).sum();
            for (g, &p) in dp.iter_mut().zip(p) {
                *g = p * (*g - dot);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::assert_close;
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn softmax_by_hand_hides_keys_exactly() {
        // Visible scores [0, ln 3] → probabilities [¼, ¾]; the hidden key's
        // score is large so that it would dominate if it leaked in.
        let mut row = [0.0, 50.0, 3f32.ln()];
        kernels::softmax(&mut row, &[0.0, 1.0, 0.0]);
        assert!((row[0] - 0.25).abs() < 1e-6 && row[1] == 0.0 && (row[2] - 0.75).abs() < 1e-6);
        // ∂L/∂P = [1, 5, 0]: Σ P·∂L/∂P = ¼, ∂L/∂S = P ⊙ (∂L/∂P − ¼) = [3/16, 0, −3/16].
        let mut dp = [1.0, 5.0, 0.0];
        kernels::softmax_backward(&row, &mut dp);
        assert!((dp[0] - 3.0 / 16.0).abs() < 1e-6 && dp[1] == 0.0 && (dp[2] + 3.0 / 16.0).abs() < 1e-6);
        let mut none = [1.0, 2.0];
        kernels::softmax(&mut none, &[1.0, 1.0]);
        assert_eq!(none, [0.0, 0.0]);
    }

    /// The fused operation and burn's composed attention agree on values
    /// and on the projection's gradient, with left padding in one row.
    #[test]
    fn fused_op_agrees_with_composed_attention() {
        let device = Device::flex().autodiff();
        let (b, t, heads, hd) = (3, 13, 2, 8);
        let d = heads * hd;
        let pattern = |n: usize, k: usize| -> Vec<f32> { (0..n).map(|i| ((i * k % 89) as f32 / 30.0) - 1.5).collect() };
        let valid: Vec<bool> = (0..b * t).map(|i| !(i / t == 1 && i % t < 4)).collect();
        let mask = crate::model::batch::attention_mask(&valid, b, t, t);
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, t, t]), &device);
        let weights = Tensor::<3>::from_data(TensorData::new(pattern(b * t * d, 37), [b, t, d]), &device);
        let run = |fused: bool| {
            let qkv = Tensor::<3>::from_data(TensorData::new(pattern(b * t * 3 * d, 7919), [b, t, 3 * d]), &device)
                .require_grad();
            let y = if fused {
                self_attention(&qkv, &mask, heads).expect("the CPU backend fuses")
            } else {
                let split = |i: usize| {
                    qkv.clone()
                        .narrow(2, i * d, d)
                        .reshape([b, t, heads, hd])
                        .swap_dims(1, 2)
                };
                let options = AttentionModuleOptions {
                    scale: None,
                    softcap: None,
                    is_causal: false,
                };
                let full = mask.clone().expand([b, heads, t, t]);
                attention(split(0), split(1), split(2), Some(full), None, options)
                    .swap_dims(1, 2)
                    .reshape([b, t, d])
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let v = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
            (v(y), v(qkv.grad(&grads).unwrap()))
        };
        let (fused, composed) = (run(true), run(false));
        assert_close("y", &fused.0, &composed.0, 1e-4);
        assert_close("dqkv", &fused.1, &composed.1, 1e-4);
    }
}
