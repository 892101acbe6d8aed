//! Masked multi-head self-attention as one operation with its own backward
//! pass on the CPU backend, reading queries, keys and values straight out
//! of one packed projection (GPT-2's fused `c_attn`, or the Llama family's
//! rotated queries and keys beside their values).
//!
//! Grouped-query attention is the same operation: each key/value head
//! serves `query / kv` consecutive query heads, which read its columns in
//! place rather than from copies, and its gradients add up over them.
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
//! The queries go in blocks of rows, and a block reads keys only up to the
//! last one any of its rows sees: under a causal mask that skips most of
//! the hidden half of every product. At 128 columns the operation's
//! forward and backward took about 60% of the time of whole tiles.
//!
//! The queries can also be a window of each row's columns (`window`): the
//! last block of a model whose caller reads only some positions.
//!
//! Per head, with S = scale·Q·Kᵀ, P = softmax over the visible keys of S,
//! Y = P·V, and G = ∂L/∂Y: ∂L/∂V = Pᵀ·G, ∂L/∂P = G·Vᵀ,
//! ∂L/∂S = P ⊙ (∂L/∂P − Σⱼ P ⊙ ∂L/∂P), ∂L/∂Q = scale·∂L/∂S·K,
//! ∂L/∂K = scale·∂L/∂Sᵀ·Q.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, TensorMetadata, backend_extension, get_device_settings};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Shape, Slice, Tensor, TensorData};

use crate::model::window::Window;

/// How many query heads there are, and how many key/value heads they share
/// (as many for multi-head attention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    pub query: usize,
    pub kv: usize,
}

impl Heads {
    /// Multi-head attention: a key/value head per query head.
    pub fn each(heads: usize) -> Self {
        Self {
            query: heads,
            kv: heads,
        }
    }

    /// Query heads per key/value head.
    pub(super) fn group(self) -> usize {
        self.query / self.kv
    }

    /// The head size of a packed row `width` features wide.
    pub(super) fn head_dim(self, width: usize) -> usize {
        let heads = self.query + 2 * self.kv;
        assert!(
            self.kv > 0 && self.query.is_multiple_of(self.kv) && width.is_multiple_of(heads),
            "{width} features do not split into {} query and {} key/value heads",
            self.query,
            self.kv
        );
        width / heads
    }
}

/// `qkv` (`[b, t, (h + 2g)·hd]`: h query heads, then g key heads, then g
/// value heads, side by side) attended under `mask` (`[b, 1, t, t]`, true
/// where query i may not see key j), query heads concatenated:
/// `[b, t, h·hd]`, or `[b, len, h·hd]` at `window`'s columns only (keys and
/// values still come from every column).
pub fn self_attention(qkv: Tensor<3>, mask: Tensor<4, Bool>, heads: Heads, window: Option<&Window>) -> Tensor<3> {
    let [b, _, q, k] = mask.dims();
    let hidden = mask.reshape([b, q, k]).float();
    let (hidden, starts) = match window {
        Some(window) => (window.take(hidden), window.starts.clone()),
        None => (hidden, vec![0; b]),
    };
    Tensor::from_dispatch(<Dispatch as FusedAttention>::fused_attention(
        qkv.into_dispatch(),
        hidden.into_dispatch(),
        heads,
        starts,
    ))
}

#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch"),
    Autodiff
)]
pub trait FusedAttention: Backend {
    /// `qkv`: `[b, t, (h + 2g)·hd]`; `hidden`: `[b, m, t]`, non-zero where
    /// a key is hidden from a query; the queries of row i are its columns
    /// `starts[i]..starts[i] + m` → `[b, m, h·hd]`.
    fn fused_attention(
        qkv: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        heads: Heads,
        starts: Vec<usize>,
    ) -> FloatTensor<Self> {
        composed::<Self>(qkv, hidden, heads, &starts, MaskMeans::Hidden)
    }
}

/// What a true in the mask handed to the backend's attention means. burn
/// means hidden, and composes attention so under autodiff; burn-tch 0.22
/// hands the mask to torch's `scaled_dot_product_attention` unchanged,
/// where true means visible, so LibTorch is given it the other way round.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum MaskMeans {
    Hidden,
    #[cfg_attr(not(feature = "tch"), allow(dead_code))]
    Visible,
}

/// The projection split into heads (each key/value head copied for the
/// query heads it serves), the window's queries gathered, and burn's
/// attention over them.
pub(super) fn composed<B: Backend>(
    qkv: FloatTensor<B>,
    hidden: FloatTensor<B>,
    all: Heads,
    starts: &[usize],
    means: MaskMeans,
) -> FloatTensor<B> {
    let shape = qkv.shape();
    let (b, t) = (shape[0], shape[1]);
    let (m, hd) = (hidden.shape()[1], all.head_dim(shape[2]));
    let (heads, g, d) = (all.query, all.kv, all.query * hd);
    let device = qkv.device();
    let settings = get_device_settings::<B>(&device);
    // `n` heads from head `first` of the row: [b, n, t, hd].
    let split = |first: usize, n: usize| {
        let part = B::float_slice(
            qkv.clone(),
            &[Slice::full(), Slice::full(), Slice::from(first * hd..(first + n) * hd)],
        );
        B::float_swap_dims(B::float_reshape(part, Shape::new([b, t, n, hd])), 1, 2)
    };
    let shared = |x: FloatTensor<B>| {
        let x = B::float_expand(
            B::float_reshape(x, Shape::new([b, g, 1, t, hd])),
            Shape::new([b, g, all.group(), t, hd]),
        );
        B::float_reshape(x, Shape::new([b, heads, t, hd]))
    };
    let (mut query, key, value) = (split(0, heads), shared(split(heads, g)), shared(split(heads + g, g)));
    if m != t {
        // Row i's queries are its columns starts[i]..starts[i] + m.
        let rows: Vec<i64> = (0..b)
            .flat_map(|i| (0..heads * m * hd).map(move |j| (starts[i] + j / hd % m) as i64))
            .collect();
        let rows = TensorData::new(rows, [b, heads, m, hd]).convert_dtype(settings.int_dtype.into());
        query = B::float_gather(2, query, B::int_from_data(rows, &device));
    }
    let mask = match means {
        MaskMeans::Hidden => B::float_greater_elem(hidden, 0.5.into(), settings.bool_dtype),
        MaskMeans::Visible => B::float_lower_equal_elem(hidden, 0.5.into(), settings.bool_dtype),
    };
    // Backends' attention kernels differ in how they broadcast a mask; a
    // full-size one works on all of them.
    let mask = B::bool_expand(
        B::bool_reshape(mask, Shape::new([b, 1, m, t])),
        Shape::new([b, heads, m, t]),
    );
    // Scale 1/√hd is the default; the mask already encodes causality and
    // padding, so the kernel's own causal flag stays off.
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: false,
    };
    let y = B::attention(query, key, value, Some(mask), None, options); // [b, h, m, hd]
    B::float_reshape(B::float_swap_dims(y, 1, 2), Shape::new([b, m, d]))
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl FusedAttention for burn::backend::Cube {}
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl<C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> FusedAttention
    for burn::backend::Autodiff<burn::backend::Cube, C>
{
}
#[cfg(feature = "tch")]
impl FusedAttention for burn::backend::LibTorch {
    fn fused_attention(
        qkv: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        heads: Heads,
        starts: Vec<usize>,
    ) -> FloatTensor<Self> {
        composed::<Self>(qkv, hidden, heads, &starts, MaskMeans::Visible)
    }
}
#[cfg(feature = "tch")]
impl<C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> FusedAttention
    for burn::backend::Autodiff<burn::backend::LibTorch, C>
{
}

#[cfg(feature = "flex")]
pub(super) use cpu::kernels::softmax;

/// The CPU's version.
#[cfg(feature = "flex")]
mod cpu {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Autodiff, Flex, TensorMetadata};
    use burn::tensor::Shape;
    use rayon::prelude::*;

    use super::{FusedAttention, Heads, MaskMeans, composed};
    use crate::kernels::cpu_tensor::{f32s, zeros};
    use crate::kernels::path;

    impl FusedAttention for Flex {
        fn fused_attention(qkv: FlexTensor, hidden: FlexTensor, heads: Heads, starts: Vec<usize>) -> FlexTensor {
            if path::composed() {
                return composed::<Self>(qkv, hidden, heads, &starts, MaskMeans::Hidden);
            }
            forward(&qkv.to_contiguous(), &hidden.to_contiguous(), heads, &starts).0
        }
    }

    impl<C: CheckpointStrategy> FusedAttention for Autodiff<Flex, C> {
        fn fused_attention(
            qkv: FloatTensor<Self>,
            hidden: FloatTensor<Self>,
            heads: Heads,
            starts: Vec<usize>,
        ) -> FloatTensor<Self> {
            if path::composed() {
                return composed::<Self>(qkv, hidden, heads, &starts, MaskMeans::Hidden);
            }
            #[derive(Debug)]
            struct AttentionBackward;

            impl Backward<Flex, 1> for AttentionBackward {
                /// The projection, the softmax tiles `[b, h, m, t]`, the
                /// number of heads, each row's first query column and its
                /// blocks' key limits.
                type State = (FlexTensor, FlexTensor, Heads, Vec<usize>, Vec<usize>);

                fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                    let [parent] = ops.parents;
                    let grad = grads.consume::<Flex>(&ops.node);
                    if let Some(parent) = parent {
                        let (qkv, probs, heads, starts, limits) = ops.state;
                        let dqkv = backward(&qkv, &probs, &grad.to_contiguous(), heads, &starts, &limits);
                        grads.register::<Flex>(parent.id, dqkv);
                    }
                }
            }

            let prep = AttentionBackward.prepare::<C>([qkv.node()]).compute_bound().stateful();
            let (qkv, hidden) = (
                qkv.into_primitive().to_contiguous(),
                hidden.into_primitive().to_contiguous(),
            );
            let (y, probs, limits) = forward(&qkv, &hidden, heads, &starts);
            match prep {
                OpsKind::Tracked(prep) => prep.finish((qkv, probs, heads, starts, limits), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    }

    /// The shapes of one call and the scores' scale: `t` columns per batch
    /// row, of which `m` are queries; rows of the projection `w` wide, of
    /// the output `d`.
    #[derive(Clone, Copy)]
    pub(super) struct Dims {
        t: usize,
        m: usize,
        w: usize,
        d: usize,
        hd: usize,
        heads: Heads,
        scale: f32,
    }

    impl Dims {
        fn of(qkv: &FlexTensor, m: usize, heads: Heads) -> (usize, Self) {
            let shape = qkv.shape();
            let (b, t, w) = (shape[0], shape[1], shape[2]);
            let hd = heads.head_dim(w);
            let scale = 1.0 / (hd as f32).sqrt();
            let d = heads.query * hd;
            (
                b,
                Self {
                    t,
                    m,
                    w,
                    d,
                    hd,
                    heads,
                    scale,
                },
            )
        }

        /// Where query head `h`'s columns, its key head's and its value
        /// head's start in a row of the projection.
        fn columns(self, h: usize) -> (usize, usize, usize) {
            let Heads { query, kv } = self.heads;
            let shared = h / self.heads.group();
            (h * self.hd, (query + shared) * self.hd, (query + kv + shared) * self.hd)
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

    /// The output `[b, m, d]`, the softmax tiles `[b, h, m, t]` (zero past
    /// each block's key limit) and the key limits `[b, ⌈m / BLOCK⌉]`.
    fn forward(
        qkv: &FlexTensor,
        hidden: &FlexTensor,
        heads: Heads,
        starts: &[usize],
    ) -> (FlexTensor, FlexTensor, Vec<usize>) {
        let m = hidden.shape()[1];
        let (b, dims @ Dims { t, w, d, .. }) = Dims::of(qkv, m, heads);
        let heads = heads.query;
        dims.check(starts, b);
        let blocks = m.div_ceil(kernels::BLOCK);
        let mut y = zeros(Shape::new([b, m, d]));
        let mut probs = zeros(Shape::new([b, heads, m, t]));
        let mut limits = vec![0; b * blocks];
        let (qkv, hidden) = (f32s(qkv), f32s(hidden));
        y.storage_mut::<f32>()
            .par_chunks_mut(m * d)
            .zip(probs.storage_mut::<f32>().par_chunks_mut(heads * m * t))
            .zip(limits.par_chunks_mut(blocks.max(1)))
            .zip(qkv.par_chunks(t * w))
            .zip(hidden.par_chunks(m * t))
            .zip(starts)
            .for_each(|(((((y, probs), limits), qkv), hidden), &start)| {
                kernels::key_limits(hidden, t, limits);
                for (h, p) in probs.chunks_mut(m * t).enumerate() {
                    kernels::head_forward(dims, h, start, limits, qkv, hidden, p, y);
                }
            });
        (y, probs, limits)
    }

    /// `∂L/∂qkv` from `∂L/∂y`; queries outside the window get zero.
    fn backward(
        qkv: &FlexTensor,
        probs: &FlexTensor,
        grad: &FlexTensor,
        heads: Heads,
        starts: &[usize],
        limits: &[usize],
    ) -> FlexTensor {
        let m = grad.shape()[1];
        let (_, dims @ Dims { t, w, d, .. }) = Dims::of(qkv, m, heads);
        let heads = heads.query;
        let blocks = m.div_ceil(kernels::BLOCK);
        let mut dqkv = zeros(qkv.shape());
        let (qkv, probs, grad) = (f32s(qkv), f32s(probs), f32s(grad));
        dqkv.storage_mut::<f32>()
            .par_chunks_mut(t * w)
            .zip(qkv.par_chunks(t * w))
            .zip(probs.par_chunks(heads * m * t))
            .zip(grad.par_chunks(m * d))
            .zip(limits.par_chunks(blocks.max(1)))
            .zip(starts)
            .for_each(|(((((dqkv, qkv), probs), grad), limits), &start)| {
                let mut scratch = vec![0.0f32; kernels::BLOCK.min(m) * t];
                for (h, p) in probs.chunks(m * t).enumerate() {
                    kernels::head_backward(dims, h, start, limits, qkv, p, grad, &mut scratch, dqkv);
                }
            });
        dqkv
    }

    /// One batch row's per-head math on slices: `qkv` is `[t, w]`, its
    /// queries the `m` rows from `start`; `y` and `grad` are `[m, d]`, `probs`
    /// one head's `[m, t]` tile. Queries go in blocks of `BLOCK` rows, each
    /// reading keys only up to its limit.
    pub(in crate::kernels) mod kernels {
        use super::Dims;
        use crate::kernels::cpu_tensor::{Matrix, Threads, product};
        use crate::kernels::simd::{exp, widest};

        /// Query rows per block. A block's scores stop at the last key any of
        /// its rows can see, so under a causal mask the products skip most of
        /// the hidden upper triangle of the scores.
        pub const BLOCK: usize = 32;

        /// Fills `limits` with one past the last key that any row of each
        /// block of `hidden` (`[m, t]`, zero where visible) sees; 0 when none.
        pub fn key_limits(hidden: &[f32], t: usize, limits: &mut [usize]) {
            for (limit, block) in limits.iter_mut().zip(hidden.chunks(BLOCK * t)) {
                *limit = block
                    .chunks(t)
                    .filter_map(|row| row.iter().rposition(|&h| h == 0.0))
                    .map(|j| j + 1)
                    .max()
                    .unwrap_or(0);
            }
        }

        /// The blocks' first query row, number of rows and key limit.
        fn blocks(m: usize, limits: &[usize]) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
            limits
                .iter()
                .enumerate()
                .map(move |(i, &kl)| (i * BLOCK, BLOCK.min(m - i * BLOCK), kl))
                .filter(|&(_, _, kl)| kl > 0)
        }

        /// Head `h`: fills its softmax tile and its `hd` output columns. A
        /// block that sees no key keeps the zeros its outputs start as.
        #[allow(clippy::too_many_arguments)]
        pub fn head_forward(
            dims: Dims,
            h: usize,
            start: usize,
            limits: &[usize],
            qkv: &[f32],
            hidden: &[f32],
            probs: &mut [f32],
            y: &mut [f32],
        ) {
            let Dims {
                t, m, w, d, hd, scale, ..
            } = dims;
            let (q_col, k_col, v_col) = dims.columns(h);
            let (k, v) = (&qkv[k_col..], &qkv[v_col..]);
            for (r0, rows, kl) in blocks(m, limits) {
                let tile = &mut probs[r0 * t..(r0 + rows) * t];
                product(
                    (rows, kl, hd),
                    tile,
                    t,
                    Matrix::rows(&qkv[(start + r0) * w + q_col..], w),
                    Matrix::t(k, w),
                    scale,
                    false,
                    Threads::One,
                );
                // Keys from the limit on stay at the zeros the tile starts as.
                for (row, hidden) in tile.chunks_mut(t).zip(hidden[r0 * t..].chunks(t)) {
                    softmax(&mut row[..kl], &hidden[..kl]);
                }
                product(
                    (rows, hd, kl),
                    &mut y[r0 * d + h * hd..],
                    d,
                    Matrix::rows(tile, t),
                    Matrix::rows(v, w),
                    1.0,
                    false,
                    Threads::One,
                );
            }
        }

        /// Head `h`'s columns of `dqkv` (which starts at zero: keys' and
        /// values' gradients add up over the blocks and over the query heads
        /// that share them). `scratch` holds one block's `[BLOCK, t]` tile.
        #[allow(clippy::too_many_arguments)]
        pub fn head_backward(
            dims: Dims,
            h: usize,
            start: usize,
            limits: &[usize],
            qkv: &[f32],
            probs: &[f32],
            grad: &[f32],
            scratch: &mut [f32],
            dqkv: &mut [f32],
        ) {
            let Dims {
                t, m, w, d, hd, scale, ..
            } = dims;
            let (q_col, k_col, v_col) = dims.columns(h);
            let k = Matrix::rows(&qkv[k_col..], w);
            let v = Matrix::t(&qkv[v_col..], w);
            for (r0, rows, kl) in blocks(m, limits) {
                let p = &probs[r0 * t..(r0 + rows) * t];
                let g = Matrix::rows(&grad[r0 * d + h * hd..], d);
                let q_at = (start + r0) * w + q_col;
                let dv = &mut dqkv[v_col..];
                product((kl, hd, rows), dv, w, Matrix::t(p, t), g, 1.0, true, Threads::One);
                let ds = &mut scratch[..rows * t];
                product((rows, kl, hd), ds, t, g, v, 1.0, false, Threads::One);
                for (ds, p) in ds.chunks_mut(t).zip(p.chunks(t)) {
                    softmax_backward(&p[..kl], &mut ds[..kl]);
                }
                let ds = &*ds;
                product(
                    (rows, hd, kl),
                    &mut dqkv[q_at..],
                    w,
                    Matrix::rows(ds, t),
                    k,
                    scale,
                    false,
                    Threads::One,
                );
                product(
                    (kl, hd, rows),
                    &mut dqkv[k_col..],
                    w,
                    Matrix::t(ds, t),
                    Matrix::rows(&qkv[q_at..], w),
                    scale,
                    true,
                    Threads::One,
                );
            }
        }

        /// Scores to probabilities over the keys whose `hidden` entry is zero;
        /// hidden keys get exactly 0, and a row with no visible key is all 0.
        pub fn softmax(row: &mut [f32], hidden: &[f32]) {
            widest(
                #[inline(always)]
                || {
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
                },
            )
        }

        /// `dp` (∂L/∂P for one row) becomes ∂L/∂S: P ⊙ (∂L/∂P − Σ P ⊙ ∂L/∂P).
        pub fn softmax_backward(p: &[f32], dp: &mut [f32]) {
            widest(
                #[inline(always)]
                || {
                    let dot: f32 = p.iter().zip(dp.iter()).map(|(p, g)| p * g).sum();
                    for (g, &p) in dp.iter_mut().zip(p) {
                        *g = p * (*g - dot);
                    }
                },
            )
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::cpu::kernels;
    use super::*;
    use crate::testutil::assert_close;
    use burn::tensor::Device;
    use burn::tensor::module::attention;

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

    /// The fused operation, the composed default other backends run and
    /// burn's attention read at the window agree on values and on the
    /// projection's gradient, with left padding in one row: at every
    /// column, and at windows of columns; with a key/value head per query
    /// head (GPT-2) and with 6 query heads sharing 2 (grouped-query). 70
    /// columns make three blocks of queries, the last one short.
    #[test]
    fn fused_op_agrees_with_composed_attention() {
        let device = Device::flex().autodiff();
        let (b, t, hd) = (3, 70, 8);
        let pattern = |n: usize, k: usize| -> Vec<f32> { (0..n).map(|i| ((i * k % 89) as f32 / 30.0) - 1.5).collect() };
        let valid: Vec<bool> = (0..b * t).map(|i| !(i / t == 1 && i % t < 4)).collect();
        let mask = crate::model::batch::attention_mask(&valid, b, t, t);
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, t, t]), &device);
        for heads in [Heads::each(2), Heads { query: 6, kv: 2 }] {
            let (h, g) = (heads.query, heads.kv);
            let (w, d) = ((h + 2 * g) * hd, h * hd);
            let run = |version: usize, window: Option<&Window>| {
                let qkv = Tensor::<3>::from_data(TensorData::new(pattern(b * t * w, 7919), [b, t, w]), &device)
                    .require_grad();
                let y = if version == 0 {
                    self_attention(qkv.clone(), mask.clone(), heads, window)
                } else if version == 1 {
                    let hidden = mask.clone().reshape([b, t, t]).float();
                    let (hidden, starts) = match window {
                        Some(w) => (w.take(hidden), w.starts.clone()),
                        None => (hidden, vec![0; b]),
                    };
                    let y = composed::<Dispatch>(
                        qkv.clone().into_dispatch(),
                        hidden.into_dispatch(),
                        heads,
                        &starts,
                        MaskMeans::Hidden,
                    );
                    Tensor::from_dispatch(y)
                } else {
                    // Key/value head j serves query heads j·h/g .. (j + 1)·h/g.
                    let split = |first: usize, n: usize| {
                        qkv.clone()
                            .narrow(2, first * hd, n * hd)
                            .reshape([b, t, n, hd])
                            .swap_dims(1, 2)
                    };
                    let shared = |x: Tensor<4>| {
                        let copies: Vec<Tensor<4>> = (0..h).map(|i| x.clone().narrow(1, i / (h / g), 1)).collect();
                        Tensor::cat(copies, 1)
                    };
                    let options = AttentionModuleOptions {
                        scale: None,
                        softcap: None,
                        is_causal: false,
                    };
                    let full = mask.clone().expand([b, h, t, t]);
                    let (q, k, v) = (split(0, h), shared(split(h, g)), shared(split(h + g, g)));
                    let y = attention(q, k, v, Some(full), None, options)
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
            // A window of 37 queries from column 30 is two blocks, the second
            // short; single columns sit at the last, a padded and the first.
            for window in [
                None,
                Some(Window::uniform(b, 30, 37)),
                Some(Window::columns(vec![69, 4, 0])),
            ] {
                let fused = run(0, window.as_ref());
                for version in [1, 2] {
                    let other = run(version, window.as_ref());
                    assert_close("y", &fused.0, &other.0, 1e-4);
                    assert_close("dqkv", &fused.1, &other.1, 1e-4);
                }
            }
        }
    }
}
