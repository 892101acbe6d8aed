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
use super::window::Window;

/// `qkv` (`[b, t, 3d]`, queries, keys and values side by side) attended
/// under `mask` (`[b, 1, t, t]`, true where query i may not see key j),
/// heads concatenated: `[b, t, d]`, or `[b, len, d]` at `window`'s columns
/// only (keys and values still come from every column). `None` off the
/// CPU backend, where the caller composes attention from burn's operations.
pub fn self_attention(
    qkv: &Tensor<3>,
    mask: &Tensor<4, Bool>,
    heads: usize,
    window: Option<&Window>,
) -> Option<Tensor<3>> {
    if !crate::device::is_cpu(&qkv.device()) {
        return None;
    }
    let [b, _, q, k] = mask.dims();
    let hidden = mask.clone().reshape([b, q, k]).float();
    let (hidden, starts) = match window {
        Some(window) => (window.take(hidden), window.starts.clone()),
        None => (hidden, vec![0; b]),
    };
    let y = <burn::backend::Dispatch as FusedAttention>::fused_attention(
        qkv.clone().into_dispatch(),
        hidden.into_dispatch(),
        heads,
        starts,
    );
    Some(Tensor::from_dispatch(y))
}

#[backend_extension(Flex, Autodiff)]
pub trait FusedAttention: Backend {
    /// `qkv`: `[b, t, 3d]`; `hidden`: `[b, m, t]`, non-zero where a key is
    /// hidden from a query; the queries of row i are its columns
    /// `starts[i]..starts[i] + m` → `[b, m, d]`.
    fn fused_attention(
        qkv: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        heads: usize,
        starts: Vec<usize>,
    ) -> FloatTensor<Self>;
}

impl FusedAttention for Flex {
    fn fused_attention(qkv: FlexTensor, hidden: FlexTensor, heads: usize, starts: Vec<usize>) -> FlexTensor {
        forward(&qkv.to_contiguous(), &hidden.to_contiguous(), heads, &starts).0
    }
}

impl<C: CheckpointStrategy> FusedAttention for Autodiff<Flex, C> {
    fn fused_attention(
        qkv: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        heads: usize,
        starts: Vec<usize>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AttentionBackward;

        impl Backward<Flex, 1> for AttentionBackward {
            /// The projection, the softmax tiles `[b, h, m, t]`, the
            /// number of heads and each row's first query column.
            type State = (FlexTensor, FlexTensor, usize, Vec<usize>);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [parent] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                if let Some(parent) = parent {
                    let (qkv, probs, heads, starts) = ops.state;
                    let dqkv = backward(&qkv, &probs, &grad.to_contiguous(), heads, &starts);
                    grads.register::<Flex>(parent.id, dqkv);
                }
            }
        }

        let prep = AttentionBackward.prepare::<C>([qkv.node()]).compute_bound().stateful();
        let (qkv, hidden) = (
            qkv.into_primitive().to_contiguous(),
            hidden.into_primitive().to_contiguous(),
        );
        let (y, probs) = forward(&qkv, &hidden, heads, &starts);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((qkv, probs, heads, starts), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// The shapes of one call and the scores' scale: `t` columns per batch
/// row, of which `m` are queries.
#[derive(Clone, Copy)]
struct Dims {
    t: usize,
    m: usize,
    d: usize,
    hd: usize,
    scale: f32,
}

impl Dims {
    fn of(qkv: &FlexTensor, m: usize, heads: usize) -> (usize, Self) {
        let shape = qkv.shape();
        let (b, t, d) = (shape[0], shape[1], shape[2] / 3);
        assert!(
            heads > 0 && d % heads == 0,
            "{d} features do not split into {heads} heads"
        );
        let hd = d / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        (b, Self { t, m, d, hd, scale })
    }

    /// Checks that every row's queries fit in its columns.
    fn check(self, starts: &[usize], b: usize) {
        assert_eq!(starts.len(), b, "one query start per batch row");
        assert!(
            starts.iter().all(|&s| s + self.m <= self.t),
            "queries past the last column"
        );
    }
}

/// The output `[b, m, d]` and the softmax tiles `[b, h, m, t]`.
fn forward(qkv: &FlexTensor, hidden: &FlexTensor, heads: usize, starts: &[usize]) -> (FlexTensor, FlexTensor) {
    let m = hidden.shape()[1];
    let (b, dims @ Dims { t, d, .. }) = Dims::of(qkv, m, heads);
    dims.check(starts, b);
    let mut y = zeros(Shape::new([b, m, d]));
    let mut probs = zeros(Shape::new([b, heads, m, t]));
    let (qkv, hidden) = (f32s(qkv), f32s(hidden));
    y.storage_mut::<f32>()
        .par_chunks_mut(m * d)
        .zip(probs.storage_mut::<f32>().par_chunks_mut(heads * m * t))
        .zip(qkv.par_chunks(t * 3 * d))
        .zip(hidden.par_chunks(m * t))
        .zip(starts)
        .for_each(|((((y, probs), qkv), hidden), &start)| {
            for (h, p) in probs.chunks_mut(m * t).enumerate() {
                kernels::head_forward(dims, h, start, qkv, hidden, p, y);
            }
        });
    (y, probs)
}

/// `∂L/∂qkv` from `∂L/∂y`; queries outside the window get zero.
fn backward(qkv: &FlexTensor, probs: &FlexTensor, grad: &FlexTensor, heads: usize, starts: &[usize]) -> FlexTensor {
    let m = grad.shape()[1];
    let (_, dims @ Dims { t, d, .. }) = Dims::of(qkv, m, heads);
    let mut dqkv = zeros(qkv.shape());
    let (qkv, probs, grad) = (f32s(qkv), f32s(probs), f32s(grad));
    dqkv.storage_mut::<f32>()
        .par_chunks_mut(t * 3 * d)
        .zip(qkv.par_chunks(t * 3 * d))
        .zip(probs.par_chunks(heads * m * t))
        .zip(grad.par_chunks(m * d))
        .zip(starts)
        .for_each(|((((dqkv, qkv), probs), grad), &start)| {
            let mut scratch = vec![0.0f32; m * t];
            for (h, p) in probs.chunks(m * t).enumerate() {
                kernels::head_backward(dims, h, start, qkv, p, grad, &mut scratch, dqkv);
            }
        });
    dqkv
}

/// One batch row's per-head math on slices: `qkv` is `[t, 3d]`, its
/// queries the `m` rows from `start`; `y` and `grad` are `[m, d]`, `probs`
/// and `scratch` one head's `[m, t]` tile.
mod kernels {
    use super::Dims;
    use crate::model::cpu_tensor::{Matrix, Threads, product};
    use crate::model::simd::{exp, widest};

    /// Head `h`: fills its softmax tile and its `hd` output columns.
    pub fn head_forward(
        dims: Dims,
        h: usize,
        start: usize,
        qkv: &[f32],
        hidden: &[f32],
        probs: &mut [f32],
        y: &mut [f32],
    ) {
        let Dims { t, m, d, hd, scale } = dims;
        let q = &qkv[start * 3 * d + h * hd..];
        let (k, v) = (&qkv[d + h * hd..], &qkv[2 * d + h * hd..]);
        product(
            (m, t, hd),
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
        product((m, hd, t), &mut y[h * hd..], d, p, v, 1.0, false, Threads::One);
    }

    /// Head `h`'s columns of `dqkv`.
    #[allow(clippy::too_many_arguments)]
    pub fn head_backward(
        dims: Dims,
        h: usize,
        start: usize,
        qkv: &[f32],
        probs: &[f32],
        grad: &[f32],
        scratch: &mut [f32],
        dqkv: &mut [f32],
    ) {
        let Dims { t, m, d, hd, scale } = dims;
        let q = Matrix::rows(&qkv[start * 3 * d + h * hd..], 3 * d);
        let k = Matrix::rows(&qkv[d + h * hd..], 3 * d);
        let v = Matrix::t(&qkv[2 * d + h * hd..], 3 * d);
        let g = Matrix::rows(&grad[h * hd..], d);
        product(
            (t, hd, m),
            &mut dqkv[2 * d + h * hd..],
            3 * d,
            Matrix::t(probs, t),
            g,
            1.0,
            false,
            Threads::One,
        );
        product((m, t, hd), scratch, t, g, v, 1.0, false, Threads::One);
        for (ds, p) in scratch.chunks_mut(t).zip(probs.chunks(t)) {
            softmax_backward(p, ds);
        }
        let ds = &*scratch;
        product(
            (m, hd, t),
            &mut dqkv[start * 3 * d + h * hd..],
            3 * d,
            Matrix::rows(ds, t),
            k,
            scale,
            false,
            Threads::One,
        );
        product(
            (t, hd, m),
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
    /// and on the projection's gradient, with left padding in one row: at
    /// every column, and at windows of columns (the composed attention
    /// then read at the window).
    #[test]
    fn fused_op_agrees_with_composed_attention() {
        let device = Device::flex().autodiff();
        let (b, t, heads, hd) = (3, 13, 2, 8);
        let d = heads * hd;
        let pattern = |n: usize, k: usize| -> Vec<f32> { (0..n).map(|i| ((i * k % 89) as f32 / 30.0) - 1.5).collect() };
        let valid: Vec<bool> = (0..b * t).map(|i| !(i / t == 1 && i % t < 4)).collect();
        let mask = crate::model::batch::attention_mask(&valid, b, t, t);
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, t, t]), &device);
        let run = |fused: bool, window: Option<&Window>| {
            let qkv = Tensor::<3>::from_data(TensorData::new(pattern(b * t * 3 * d, 7919), [b, t, 3 * d]), &device)
                .require_grad();
            let y = if fused {
                self_attention(&qkv, &mask, heads, window).expect("the CPU backend fuses")
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
                let y = attention(split(0), split(1), split(2), Some(full), None, options)
                    .swap_dims(1, 2)
                    .reshape([b, t, d]);
                window.map_or(y.clone(), |w| w.take(y))
            };
            let m = y.dims()[1];
            let weights = Tensor::<3>::from_data(TensorData::new(pattern(b * m * d, 37), [b, m, d]), &device);
            let grads = (y.clone() * weights).sum().backward();
            let v = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
            (v(y), v(qkv.grad(&grads).unwrap()))
        };
        for window in [
            None,
            Some(Window::uniform(b, 5, 8)),
            Some(Window::columns(vec![12, 4, 0])),
        ] {
            let (fused, composed) = (run(true, window.as_ref()), run(false, window.as_ref()));
            assert_close("y", &fused.0, &composed.0, 1e-4);
            assert_close("dqkv", &fused.1, &composed.1, 1e-4);
        }
    }
}
