//! The log-probability of each target token, with the entropy and the most
//! likely token of each distribution, in one pass over the logits on the
//! CPU backend.
//!
//! Composed from tensor operations this is a log-softmax, a gather, an
//! exponential, a product, two sums and an argmax, each a pass over (and
//! most an allocation of) a `[rows, V]` tensor, and a backward pass of as
//! many again. Here the forward pass reads each row twice (its maximum,
//! then its exponentials) and the backward pass writes the gradient once:
//! ∂ log p(t)/∂ xᵥ = [v = t] − softmax(x)ᵥ.
//!
//! Per row, with m = max x and S = Σ e^(xᵥ − m): lse = m + ln S,
//! log p(t) = x_t − lse, entropy = lse − Σ softmax(x)ᵥ·xᵥ.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, FloatDType, IntDType, TensorMetadata, backend_extension};
use burn::tensor::{Int, Tensor};

use super::composed_elsewhere;

/// Columns of the fused operation's `[rows, 4]` output.
const LOGP: usize = 0;
const ENTROPY: usize = 1;
const ARGMAX: usize = 2;
const LSE: usize = 3;
const COLS: usize = 4;

/// What `row_stats` gives, `[rows]` each: the target's log-probability
/// (with gradient), and without gradient the entropy and the most likely
/// token.
pub struct RowStats {
    pub logp: Tensor<1>,
    pub entropy: Tensor<1>,
    pub argmax: Tensor<1, Int>,
}

/// `logits`: `[rows, V]`; `targets`: `[rows]`.
pub fn row_stats(logits: Tensor<2>, targets: Tensor<1, Int>) -> RowStats {
    let rows = logits.dims()[0];
    let out = Tensor::<2>::from_dispatch(<Dispatch as TokenLogprobs>::token_logprobs(
        logits.into_dispatch(),
        targets.into_dispatch(),
    ));
    let column = |c: usize| out.clone().narrow(1, c, 1).reshape([rows]);
    RowStats {
        logp: column(LOGP),
        entropy: column(ENTROPY).detach(),
        argmax: column(ARGMAX).detach().int(),
    }
}

#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch"),
    Autodiff
)]
pub trait TokenLogprobs: Backend {
    /// `[rows, V]`, `[rows]` → `[rows, 4]`: log p(target), entropy,
    /// argmax (as a float) and log-sum-exp of each row.
    fn token_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        composed::<Self>(logits, targets)
    }
}

// The composed version below builds the columns in this order.
const _: () = assert!(LOGP == 0 && ENTROPY == 1 && ARGMAX == 2 && LSE == 3 && COLS == 4);

/// The four columns from one log-softmax (its maximum held constant, as
/// it cancels in every gradient).
fn composed<B: Backend>(logits: FloatTensor<B>, targets: IntTensor<B>) -> FloatTensor<B> {
    let rows = logits.shape()[0];
    let float = FloatDType::from(logits.dtype());
    let index = IntDType::from(targets.dtype());
    let max = B::float_detach(B::float_max_dim(logits.clone(), 1)); // [rows, 1]
    let sum = B::float_sum_dim(B::float_exp(B::float_sub(logits.clone(), max.clone())), 1);
    let lse = B::float_add(B::float_log(sum), max); // [rows, 1]
    let logp_all = B::float_sub(logits.clone(), lse.clone()); // [rows, V]
    let targets = B::int_reshape(targets, [rows, 1].into());
    let logp = B::float_gather(1, logp_all.clone(), targets);
    let p_log_p = B::float_mul(B::float_exp(logp_all.clone()), logp_all);
    let entropy = B::float_neg(B::float_sum_dim(p_log_p, 1));
    let argmax = B::int_into_float(B::float_argmax(logits, 1, index), float);
    B::float_cat(vec![logp, entropy, argmax, lse], 1)
}

composed_elsewhere!(TokenLogprobs);

/// The CPU's version.
#[cfg(feature = "flex")]
mod cpu {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::{FloatTensor, IntTensor};
    use burn::backend::{Autodiff, Flex, TensorMetadata};
    use burn::tensor::Shape;
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    use super::{COLS, LOGP, LSE, TokenLogprobs, composed};
    use crate::kernels::cpu_tensor::{f32s, written, zeros};
    use crate::kernels::path;

    impl TokenLogprobs for Flex {
        fn token_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
            if path::composed() {
                return composed::<Self>(logits, targets);
            }
            let (logits, targets) = (logits.to_contiguous(), int_values(&targets));
            let v = logits.shape()[1];
            let mut out = zeros(Shape::new([targets.len(), COLS]));
            let xs = f32s(&logits);
            out.storage_mut::<f32>()
                .par_chunks_mut(COLS)
                .zip(xs.par_chunks(v))
                .zip(targets.par_iter())
                .for_each(|((out, x), &t)| out.copy_from_slice(&kernels::forward(x, t)));
            out
        }
    }

    impl<C: CheckpointStrategy> TokenLogprobs for Autodiff<Flex, C> {
        fn token_logprobs(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
            if path::composed() {
                return composed::<Self>(logits, targets);
            }
            #[derive(Debug)]
            struct TokenLogprobsBackward;

            impl Backward<Flex, 1> for TokenLogprobsBackward {
                /// The logits, the targets and the forward output.
                type State = (FlexTensor, FlexTensor, FlexTensor);

                fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                    let [parent] = ops.parents;
                    let grad = grads.consume::<Flex>(&ops.node);
                    if let Some(parent) = parent {
                        let (logits, targets, out) = ops.state;
                        grads.register::<Flex>(parent.id, backward(logits, &targets, &out, grad));
                    }
                }
            }

            match TokenLogprobsBackward
                .prepare::<C>([logits.node()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => {
                    let logits = logits.into_primitive();
                    let out = Flex::token_logprobs(logits.clone(), targets.clone());
                    prep.finish((logits, targets, out.clone()), out)
                }
                OpsKind::UnTracked(prep) => prep.finish(Flex::token_logprobs(logits.into_primitive(), targets)),
            }
        }
    }

    /// `∂L/∂logits` from `∂L/∂out`: only the log-probability column carries
    /// gradient (the others are reported, never trained on).
    fn backward(logits: FlexTensor, targets: &FlexTensor, out: &FlexTensor, grad: FlexTensor) -> FlexTensor {
        let logits = logits.to_contiguous();
        let (out, grad) = (out.to_contiguous(), grad.to_contiguous());
        let v = logits.shape()[1];
        let targets = int_values(targets);
        let (xs, outs, grads) = (f32s(&logits), f32s(&out), f32s(&grad));
        let fill = |dx: &mut [MaybeUninit<f32>]| {
            dx.par_chunks_mut(v).enumerate().for_each(|(row, dx)| {
                let at = row * COLS;
                let g = grads[at + LOGP];
                kernels::backward(&xs[row * v..(row + 1) * v], targets[row], outs[at + LSE], g, dx);
            })
        };
        // SAFETY: the kernel writes each element of its row before adding the
        // target's term to one of them.
        unsafe { written(logits.shape(), fill).0 }
    }

    /// An int tensor's values as indices, whatever integer type it holds.
    fn int_values(t: &FlexTensor) -> Vec<usize> {
        let values = t.clone().into_data().convert::<i64>().try_into_vec::<i64>();
        values
            .expect("token indices are integers")
            .into_iter()
            .map(|i| i as usize)
            .collect()
    }

    /// The per-row math on slices.
    pub mod kernels {
        use std::mem::MaybeUninit;

        use super::super::{ARGMAX, COLS, ENTROPY, LOGP, LSE};
        use crate::kernels::simd::{exp, widest};

        /// Lanes of the partial maxima and sums: one AVX-512 register (two
        /// AVX2 ones), so the reductions vectorize (a single running sum would
        /// force the loop to add in order, one element at a time).
        const LANES: usize = 16;

        /// One row's `[log p(t), entropy, argmax, lse]`.
        pub fn forward(x: &[f32], t: usize) -> [f32; COLS] {
            widest(
                #[inline(always)]
                || {
                    let (chunks, tail) = (x.chunks_exact(LANES), x.chunks_exact(LANES).remainder());
                    let mut maxima = [f32::NEG_INFINITY; LANES];
                    for chunk in chunks.clone() {
                        for (m, &xv) in maxima.iter_mut().zip(chunk) {
                            *m = m.max(xv);
                        }
                    }
                    let m = maxima.iter().chain(tail).copied().fold(f32::NEG_INFINITY, f32::max);
                    // The first maximum, as argmax breaks ties: find its chunk
                    // with whole-chunk comparisons, then the element.
                    let first = chunks
                        .clone()
                        .position(|c| c.iter().fold(false, |any, &xv| any | (xv == m)));
                    let start = first.map_or(x.len() - tail.len(), |c| c * LANES);
                    let argmax = start + x[start..].iter().position(|&xv| xv == m).unwrap_or(0);
                    let (mut sums, mut weighted) = ([0.0f32; LANES], [0.0f32; LANES]);
                    for chunk in chunks {
                        for ((s, w), &xv) in sums.iter_mut().zip(&mut weighted).zip(chunk) {
                            let e = exp(xv - m);
                            *s += e;
                            *w += e * (xv - m);
                        }
                    }
                    for &xv in tail {
                        let e = exp(xv - m);
                        sums[0] += e;
                        weighted[0] += e * (xv - m);
                    }
                    let (sum, weighted) = (sums.iter().sum::<f32>(), weighted.iter().sum::<f32>());
                    let lse = m + sum.ln();
                    let mut out = [0.0; COLS];
                    out[LOGP] = x[t] - lse;
                    // Σ p·(x − m) = weighted / sum, and entropy = lse − Σ p·x.
                    out[ENTROPY] = sum.ln() - weighted / sum;
                    out[ARGMAX] = argmax as f32;
                    out[LSE] = lse;
                    out
                },
            )
        }

        /// One row's gradient: `dx = g·([v = t] − e^(xᵥ − lse))`.
        pub fn backward(x: &[f32], t: usize, lse: f32, g: f32, dx: &mut [MaybeUninit<f32>]) {
            assert_eq!(dx.len(), x.len(), "one gradient per logit");
            widest(
                #[inline(always)]
                || {
                    for (d, &xv) in dx.iter_mut().zip(x) {
                        d.write(-g * exp(xv - lse));
                    }
                },
            );
            // SAFETY: the loop above wrote every element of `dx`.
            unsafe { *dx[t].assume_init_mut() += g };
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::cpu::kernels;
    use super::*;
    use burn::tensor::{Device, TensorData, activation};

    #[test]
    fn one_row_worked_by_hand() {
        // x = [0, ln 2, ln 5]: softmax = [1, 2, 5] / 8, lse = ln 8.
        let x = [0.0, 2f32.ln(), 5f32.ln()];
        let out = kernels::forward(&x, 1);
        assert!((out[LOGP] - (2.0f32 / 8.0).ln()).abs() < 1e-6, "{out:?}");
        // H = −Σ p ln p = −(1/8·ln(1/8) + 2/8·ln(2/8) + 5/8·ln(5/8)) = 0.9002561.
        assert!((out[ENTROPY] - 0.900_256_1).abs() < 1e-6, "{out:?}");
        assert_eq!(out[ARGMAX], 2.0);
        assert!((out[LSE] - 8f32.ln()).abs() < 1e-6);
        // ∂ log p(1)/∂x = [0 − 1/8, 1 − 2/8, 0 − 5/8], times g = 2.
        let mut dx = [0.0; 3];
        kernels::backward(&x, 1, out[LSE], 2.0, crate::kernels::cpu_tensor::as_uninit(&mut dx));
        for (got, want) in dx.iter().zip([-0.25, 1.5, -1.25]) {
            assert!((got - want).abs() < 1e-6, "{dx:?}");
        }
    }

    #[test]
    fn argmax_is_the_first_maximum_in_a_chunk_or_the_tail() {
        // 40 entries: two chunks of 16 and a tail of 8.
        let mut x = vec![0.0f32; 40];
        x[37] = 3.0;
        assert_eq!(kernels::forward(&x, 0)[ARGMAX], 37.0, "in the tail");
        x[20] = 3.0;
        x[31] = 3.0;
        assert_eq!(kernels::forward(&x, 0)[ARGMAX], 20.0, "first of three ties");
        // lse = ln(37 + 3·e³) whichever lane holds each term.
        let lse = (37.0 + 3.0 * 3f32.exp()).ln();
        assert!((kernels::forward(&x, 0)[LSE] - lse).abs() < 1e-5);
    }

    /// The fused operation and the composed one agree on values and on the
    /// gradient of a loss that weights each row's log-probability.
    #[test]
    fn fused_op_agrees_with_log_softmax_and_gather() {
        let device = Device::flex().autodiff();
        let (rows, v) = (7, 300);
        let xs: Vec<f32> = (0..rows * v)
            .map(|i| ((i * 7919 % 1000) as f32 / 100.0) - 5.0)
            .collect();
        let targets: Vec<i64> = (0..rows as i64).map(|r| (r * 41) % v as i64).collect();
        let weights: Vec<f32> = (0..rows).map(|r| r as f32 - 2.5).collect();
        let run = |fused: bool| {
            let x = Tensor::<2>::from_data(TensorData::new(xs.clone(), [rows, v]), &device).require_grad();
            let t = Tensor::<1, Int>::from_data(TensorData::new(targets.clone(), [rows]), &device);
            let w = Tensor::<1>::from_data(TensorData::new(weights.clone(), [rows]), &device);
            let (logp, entropy, argmax) = if fused {
                let s = row_stats(x.clone(), t);
                (s.logp, s.entropy, s.argmax)
            } else {
                let all = activation::log_softmax(x.clone(), 1);
                let logp = all.clone().gather(1, t.reshape([rows, 1])).reshape([rows]);
                let p = all.clone().detach().exp();
                let entropy = (p * all.clone().detach()).sum_dim(1).reshape([rows]).neg();
                (logp, entropy, x.clone().detach().argmax(1).reshape([rows]))
            };
            let grads = (logp.clone() * w).sum().backward();
            let dx = x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
            let f = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
            let argmax = argmax.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
            (f(logp), f(entropy), argmax, dx)
        };
        let fused = run(true);
        let composed = run(false);
        let close = |a: &[f32], b: &[f32], tol: f32| a.iter().zip(b).all(|(a, b)| (a - b).abs() < tol);
        assert!(
            close(&fused.0, &composed.0, 1e-5),
            "logp {:?} vs {:?}",
            fused.0,
            composed.0
        );
        assert!(
            close(&fused.1, &composed.1, 1e-4),
            "entropy {:?} vs {:?}",
            fused.1,
            composed.1
        );
        assert_eq!(fused.2, composed.2);
        assert!(close(&fused.3, &composed.3, 1e-6), "gradients differ");
    }
}
