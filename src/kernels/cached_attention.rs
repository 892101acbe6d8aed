//! Attention of the new positions of a decoding step over the KV cache, as
//! one operation on the CPU backend (forward only: decoding is never
//! differentiated).
//!
//! The cache holds each position's keys and values side by side, `[b, cap,
//! 2g·hd]`, of which the first `len` positions are filled; the queries come
//! straight out of the step's packed projection. Composed, a step cut the
//! projection into heads, appended to the cache by concatenation (a copy
//! of the whole cache per layer per step), copied each key/value head for
//! the query heads it serves, and ran burn's attention on the copies: 12%
//! of a decoding step at SmolLM2-135M's shape. Here each batch row is one
//! task and each query head reads its key/value head in place: scores as
//! dot products along the cached keys, a masked softmax, and the values
//! added up by weight.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{Bool, Shape, Slice, Tensor};

use super::attention::{Heads, MaskMeans, composed as composed_attention};

/// The query heads of `qkv` (`[b, q, (h + 2g)·hd]`, a step's packed
/// projection) attended over the first `len` positions of `cache` (`[b,
/// cap, 2g·hd]`: g key heads, then g value heads), `len` being the width
/// of `mask` (`[b, 1, q, len]`), true where a key is hidden from a query:
/// `[b, q, h·hd]`.
pub fn cached_attention(qkv: Tensor<3>, cache: Tensor<3>, mask: Tensor<4, Bool>, heads: Heads) -> Tensor<3> {
    let [b, _, q, k] = mask.dims();
    let hidden = mask.reshape([b, q, k]).float();
    Tensor::from_dispatch(<Dispatch as FusedCachedAttention>::fused_cached_attention(
        qkv.into_dispatch(),
        cache.into_dispatch(),
        hidden.into_dispatch(),
        heads,
    ))
}

#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch"),
    Autodiff
)]
pub trait FusedCachedAttention: Backend {
    /// `qkv`: `[b, q, (h + 2g)·hd]`; `cache`: `[b, cap, 2g·hd]`; `hidden`:
    /// `[b, q, len]`, non-zero where a key is hidden → `[b, q, h·hd]`.
    fn fused_cached_attention(
        qkv: FloatTensor<Self>,
        cache: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        heads: Heads,
    ) -> FloatTensor<Self> {
        composed::<Self>(qkv, cache, hidden, heads, MaskMeans::Hidden)
    }
}

/// Self-attention's composed version over a projection rebuilt from the
/// cache: the cached positions' keys and values, the new positions'
/// queries (zeros at the cached ones, which ask nothing), the queries being
/// the last `q` columns.
fn composed<B: Backend>(
    qkv: FloatTensor<B>,
    cache: FloatTensor<B>,
    hidden: FloatTensor<B>,
    heads: Heads,
    means: MaskMeans,
) -> FloatTensor<B> {
    let (b, q) = (qkv.shape()[0], qkv.shape()[1]);
    let (len, kv_width) = (hidden.shape()[2], cache.shape()[2]);
    let query_width = qkv.shape()[2] - kv_width;
    let queries = B::float_slice(qkv, &[Slice::full(), Slice::full(), Slice::from(0..query_width)]);
    let zeros = B::float_zeros(
        Shape::new([b, len - q, query_width]),
        &queries.device(),
        queries.dtype().into(),
    );
    let queries = B::float_cat(vec![zeros, queries], 1);
    let kv = B::float_slice(cache, &[Slice::full(), Slice::from(0..len), Slice::full()]);
    let packed = B::float_cat(vec![queries, kv], 2);
    composed_attention::<B>(packed, hidden, heads, &vec![len - q; b], means)
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl FusedCachedAttention for burn::backend::Cube {}
#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl<C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> FusedCachedAttention
    for burn::backend::Autodiff<burn::backend::Cube, C>
{
}
#[cfg(feature = "tch")]
impl FusedCachedAttention for burn::backend::LibTorch {
    fn fused_cached_attention(
        qkv: FloatTensor<Self>,
        cache: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        heads: Heads,
    ) -> FloatTensor<Self> {
        composed::<Self>(qkv, cache, hidden, heads, MaskMeans::Visible)
    }
}
#[cfg(feature = "tch")]
impl<C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> FusedCachedAttention
    for burn::backend::Autodiff<burn::backend::LibTorch, C>
{
}

/// The CPU's version.
#[cfg(feature = "flex")]
mod cpu {
    use std::mem::MaybeUninit;

    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Autodiff, Flex, TensorMetadata};
    use rayon::prelude::*;

    use super::{FusedCachedAttention, Heads, MaskMeans, composed};
    use crate::kernels::attention::softmax;
    #[cfg(target_arch = "x86_64")]
    use crate::kernels::cached_avx512;
    use crate::kernels::cpu_tensor::{Matrix, Threads, f32s, product, written};
    use crate::kernels::path;
    use crate::kernels::simd::widest;

    impl FusedCachedAttention for Flex {
        fn fused_cached_attention(qkv: FlexTensor, cache: FlexTensor, hidden: FlexTensor, heads: Heads) -> FlexTensor {
            if path::composed() {
                return composed::<Self>(qkv, cache, hidden, heads, MaskMeans::Hidden);
            }
            forward(
                &qkv.to_contiguous(),
                &cache.to_contiguous(),
                &hidden.to_contiguous(),
                heads,
            )
        }
    }

    // Decoding runs without autodiff; under it, the composed version's
    // operations carry the gradients.
    impl<C: CheckpointStrategy> FusedCachedAttention for Autodiff<Flex, C> {}

    fn forward(qkv: &FlexTensor, cache: &FlexTensor, hidden: &FlexTensor, heads: Heads) -> FlexTensor {
        let (b, q, w) = (qkv.shape()[0], qkv.shape()[1], qkv.shape()[2]);
        let (cap, kv_width) = (cache.shape()[1], cache.shape()[2]);
        let len = hidden.shape()[2];
        let hd = heads.head_dim(w);
        let (d, g) = (heads.query * hd, heads.kv);
        assert!(
            len <= cap && kv_width == 2 * g * hd,
            "the cache holds the keys and values"
        );
        let scale = 1.0 / (hd as f32).sqrt();
        let (qkv, cache, hidden) = (f32s(qkv), f32s(cache), f32s(hidden));
        #[cfg(target_arch = "x86_64")]
        let avx512 = cached_avx512::available() && !portable();
        let fill = |y: &mut [MaybeUninit<f32>]| {
            y.par_chunks_mut(q * d)
                .zip(qkv.par_chunks(q * w))
                .zip(cache.par_chunks(cap * kv_width))
                .zip(hidden.par_chunks(q * len))
                .for_each(|(((y, qkv), cache), hidden)| {
                    let group = heads.group();
                    // Scratch, sized by whichever loop runs.
                    let (mut scores, mut sum) = (Vec::new(), Vec::new());
                    for (s, (y, hidden)) in y.chunks_mut(d).zip(hidden.chunks(len)).enumerate() {
                        #[cfg(target_arch = "x86_64")]
                        if avx512 {
                            let step = cached_avx512::Step {
                                queries: &qkv[s * w..][..d],
                                cache,
                                stride: kv_width,
                                hidden,
                            };
                            // SAFETY: `avx512` holds where the CPU has the
                            // kernel's features.
                            unsafe { cached_avx512::attend(step, heads, hd, scale, &mut scores, y) };
                            continue;
                        }
                        scores.resize(group * len, 0.0);
                        sum.resize(hd, 0.0);
                        // The query heads one key/value head serves sit side
                        // by side, and are answered together.
                        for (shared, y) in y.chunks_mut(group * hd).enumerate() {
                            let queries = &qkv[s * w + shared * group * hd..][..group * hd];
                            let keys = &cache[shared * hd..];
                            let values = &cache[(g + shared) * hd..];
                            let kv = Cached {
                                keys,
                                values,
                                stride: kv_width,
                                len,
                            };
                            heads_of_group((queries, hd), kv, hidden, scale, (&mut scores, &mut sum), y);
                        }
                    }
                });
        };
        // SAFETY: `cached_avx512::attend` and `heads_of_group` each write
        // every element of their output.
        unsafe { written([b, q, d].into(), fill).0 }
    }

    /// Whether a test has asked for the portable loop on a CPU with AVX-512.
    #[cfg(all(test, target_arch = "x86_64"))]
    fn portable() -> bool {
        super::tests::PORTABLE.get()
    }
    #[cfg(all(not(test), target_arch = "x86_64"))]
    fn portable() -> bool {
        false
    }

    /// The cached positions' keys and values of one key/value head:
    /// position j's at `j·stride`.
    struct Cached<'a> {
        keys: &'a [f32],
        values: &'a [f32],
        stride: usize,
        len: usize,
    }

    /// The query heads of one group (`queries`: theirs side by side, `hd`
    /// each) for one new position: each head's `y` = Σⱼ softmax(scale·q·kⱼ)ⱼ·vⱼ
    /// over the visible keys (zeros when none is). Scratch: `scores`
    /// (`[group, len]`) and `sum` (`[hd]`).
    fn heads_of_group(
        (queries, hd): (&[f32], usize),
        kv: Cached,
        hidden: &[f32],
        scale: f32,
        (scores, sum): (&mut [f32], &mut [f32]),
        y: &mut [MaybeUninit<f32>],
    ) {
        let (group, len) = (queries.len() / hd, kv.len);
        product(
            (group, len, hd),
            scores,
            len,
            Matrix::rows(queries, hd),
            Matrix::t(kv.keys, kv.stride),
            scale,
            false,
            Threads::One,
        );
        widest(
            #[inline(always)]
            || {
                for (scores, y) in scores.chunks_mut(len).zip(y.chunks_mut(hd)) {
                    softmax(scores, hidden);
                    sum.fill(0.0);
                    for (j, &p) in scores.iter().enumerate() {
                        if p != 0.0 {
                            let value = &kv.values[j * kv.stride..][..hd];
                            sum.iter_mut().zip(value).for_each(|(s, &v)| *s += p * v);
                        }
                    }
                    y.iter_mut().zip(sum.iter()).for_each(|(y, &s)| {
                        y.write(s);
                    });
                }
            },
        )
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::kernels::attention::self_attention;
    use crate::testutil::assert_close;
    use burn::tensor::{Device, TensorData};

    fn pattern(n: usize, k: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * k % 89) as f32 / 40.0) - 1.0).collect()
    }

    /// One query head over two cached positions, by hand: hd = 1 (scale 1),
    /// keys [0, ln 3] and a query of 1 give probabilities [¼, ¾]; values
    /// [4, 8] give 1 + 6 = 7. With the second key hidden, 4.
    #[test]
    fn one_head_by_hand() {
        let device = Device::flex();
        let qkv = Tensor::<3>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0], [1, 1, 3]), &device);
        // Positions: (key 0, value 4), (key ln 3, value 8), and one spare.
        let cache = Tensor::<3>::from_data(
            TensorData::new(vec![0.0f32, 4.0, 3f32.ln(), 8.0, 9.0, 9.0], [1, 3, 2]),
            &device,
        );
        let heads = Heads::each(1);
        let mask =
            |hidden: [bool; 2]| Tensor::<4, Bool>::from_data(TensorData::new(hidden.to_vec(), [1, 1, 1, 2]), &device);
        let y = cached_attention(qkv.clone(), cache.clone(), mask([false, false]), heads);
        assert_close("both", &y.into_data().try_to_vec::<f32>().unwrap(), &[7.0], 1e-6);
        let y = cached_attention(qkv, cache, mask([false, true]), heads);
        assert_close("first", &y.into_data().try_to_vec::<f32>().unwrap(), &[4.0], 1e-6);
    }

    thread_local! {
        /// Whether the CPU's forward takes the portable loop even where
        /// the CPU has AVX-512 (`cached_avx512`), so that both are tested.
        pub(super) static PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Grouped queries over a cache with spare capacity give what
    /// self-attention over the whole sequence gives at its last columns,
    /// with one row's first position hidden (padding), on both loops of
    /// the CPU's forward: heads of 5, 64 and 80 features (less than a
    /// vector, whole vectors, and the AVX-512 kernel's four in registers
    /// and one more), one, two and three blocks of 16 cached positions,
    /// groups of three query heads and of one. (The composed version runs
    /// in `tests/composed_path.rs`, whose PPO decodes.)
    #[test]
    fn agrees_with_self_attention_over_the_whole_sequence() {
        let device = Device::flex();
        let cases = [
            (7, 5, Heads { query: 6, kv: 2 }),
            (37, 64, Heads { query: 9, kv: 3 }),
            (21, 80, Heads::each(2)),
        ];
        for (t, hd, heads) in cases {
            let (b, q, cap) = (2, 2, t + 4);
            let w = (heads.query + 2 * heads.kv) * hd;
            let kv_width = 2 * heads.kv * hd;
            let whole = Tensor::<3>::from_data(TensorData::new(pattern(b * t * w, 31), [b, t, w]), &device);
            let mut hidden = vec![false; b * t * t];
            for r in 0..b {
                for i in 0..t {
                    for j in 0..t {
                        hidden[(r * t + i) * t + j] = j > i || (r == 1 && j == 0);
                    }
                }
            }
            let mask = Tensor::<4, Bool>::from_data(TensorData::new(hidden, [b, 1, t, t]), &device);
            let expected = self_attention(whole.clone(), mask.clone(), heads, None).narrow(1, t - q, q);
            let expected = expected.into_data().try_to_vec::<f32>().unwrap();
            let cache = Tensor::<3>::zeros([b, cap, kv_width], &device).slice_assign(
                [0..b, 0..t, 0..kv_width],
                whole.clone().narrow(2, heads.query * hd, kv_width),
            );
            for portable in [false, true] {
                PORTABLE.set(portable);
                let step = whole.clone().narrow(1, t - q, q);
                let y = cached_attention(step, cache.clone(), mask.clone().narrow(2, t - q, q), heads);
                let what = format!("{t} positions, hd {hd}, portable {portable}");
                assert_close(&what, &y.into_data().try_to_vec::<f32>().unwrap(), &expected, 1e-5);
            }
        }
    }
}
