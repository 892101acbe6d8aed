//! Rotary position embeddings in Hugging Face's rotate-half layout, applied
//! to the query and key heads of a packed projection, as one operation with
//! its own backward pass.
//!
//! Each position's row holds `heads` heads of `hd` features side by side;
//! the first `rotated` (the query and key heads) turn, the rest (the value
//! heads) pass through. Within a head, feature i and feature i + hd/2 form
//! a pair turned by the angle θᵢ of the position:
//! y₁ = x₁·cos θ − x₂·sin θ, y₂ = x₂·cos θ + x₁·sin θ.
//!
//! Composed under autodiff that is two slices, a negation, a concatenation,
//! two products, a sum and a concatenation back with the values, each a
//! tensor of its own and a backward pass; here one pass each way. A
//! rotation's transpose is the rotation by −θ, so the backward pass is the
//! forward pass with the sines negated, on every backend.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{Shape, Slice, Tensor};

/// `x` (`[b, t, heads·hd]`) with its first `rotated` heads turned by the
/// angles whose cosines and sines are `cos`, `sin` (`[b, t, hd/2]`).
pub fn rotary(x: Tensor<3>, cos: Tensor<3>, sin: Tensor<3>, rotated: usize) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as Rotary>::rotary(
        x.into_dispatch(),
        cos.into_dispatch(),
        sin.into_dispatch(),
        rotated,
    ))
}

#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch"),
    Autodiff
)]
pub trait Rotary: Backend {
    /// `x`: `[b, t, w]`; `cos`, `sin`: `[b, t, hd/2]`.
    fn rotary(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        rotated: usize,
    ) -> FloatTensor<Self> {
        composed::<Self>(x, cos, sin, rotated)
    }
}

/// The rotation from tensor operations.
fn composed<B: Backend>(x: FloatTensor<B>, cos: FloatTensor<B>, sin: FloatTensor<B>, rotated: usize) -> FloatTensor<B> {
    let (shape, half) = (x.shape(), cos.shape()[2]);
    let (b, t, w, hd) = (shape[0], shape[1], shape[2], 2 * half);
    let slice = |x: FloatTensor<B>, dim: usize, from: usize, to: usize| {
        let mut slices = vec![Slice::full(); x.shape().num_dims()];
        slices[dim] = Slice::from(from..to);
        B::float_slice(x, &slices)
    };
    let heads = B::float_reshape(slice(x.clone(), 2, 0, rotated * hd), Shape::new([b, t, rotated, hd]));
    let (x1, x2) = (slice(heads.clone(), 3, 0, half), slice(heads, 3, half, hd));
    let table = |t_: FloatTensor<B>| B::float_reshape(t_, Shape::new([b, t, 1, half]));
    let (cos, sin) = (table(cos), table(sin));
    let y1 = B::float_sub(
        B::float_mul(x1.clone(), cos.clone()),
        B::float_mul(x2.clone(), sin.clone()),
    );
    let y2 = B::float_add(B::float_mul(x2, cos), B::float_mul(x1, sin));
    let turned = B::float_reshape(B::float_cat(vec![y1, y2], 3), Shape::new([b, t, rotated * hd]));
    match rotated * hd < w {
        true => B::float_cat(vec![turned, slice(x, 2, rotated * hd, w)], 2),
        false => turned,
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl Rotary for burn::backend::Cube {}

#[cfg(feature = "tch")]
impl Rotary for burn::backend::LibTorch {}

#[cfg(feature = "flex")]
impl Rotary for burn::backend::Flex {
    fn rotary(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        rotated: usize,
    ) -> FloatTensor<Self> {
        if super::path::composed() {
            return composed::<Self>(x, cos, sin, rotated);
        }
        flex::rotary(x, cos, sin, rotated)
    }
}

impl<B: Backend + Rotary, C: CheckpointStrategy> Rotary for Autodiff<B, C> {
    fn rotary(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        rotated: usize,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct RotaryBackward;

        impl<B: Backend + Rotary> Backward<B, 1> for RotaryBackward {
            /// The cosines, the sines and the number of turned heads.
            type State = (FloatTensor<B>, FloatTensor<B>, usize);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(parent) = parent {
                    let (cos, sin, rotated) = ops.state;
                    grads.register::<B>(parent.id, B::rotary(grad, cos, B::float_neg(sin), rotated));
                }
            }
        }

        let prep = RotaryBackward.prepare::<C>([x.node()]).compute_bound().stateful();
        let (x, cos, sin) = (x.into_primitive(), cos.into_primitive(), sin.into_primitive());
        let y = B::rotary(x, cos.clone(), sin.clone(), rotated);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((cos, sin, rotated), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// The CPU backend's side: one task per block of positions.
#[cfg(feature = "flex")]
mod flex {
    use crate::kernels::cpu_tensor::{f32s, written};
    use burn::backend::TensorMetadata;
    use burn::backend::flex::FlexTensor;
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    /// Positions per parallel task.
    const ROWS: usize = 16;

    pub fn rotary(x: FlexTensor, cos: FlexTensor, sin: FlexTensor, rotated: usize) -> FlexTensor {
        let (x, cos, sin) = (x.to_contiguous(), cos.to_contiguous(), sin.to_contiguous());
        let (w, half) = (x.shape()[2], cos.shape()[2]);
        assert!(
            rotated * 2 * half <= w,
            "{rotated} heads of {} features exceed {w}",
            2 * half
        );
        let (xs, cs, ss) = (f32s(&x), f32s(&cos), f32s(&sin));
        let fill = |out: &mut [MaybeUninit<f32>]| {
            out.par_chunks_mut(ROWS * w)
                .zip(xs.par_chunks(ROWS * w))
                .zip(cs.par_chunks(ROWS * half).zip(ss.par_chunks(ROWS * half)))
                .for_each(|((out, x), (c, s))| {
                    for ((out, x), (c, s)) in out
                        .chunks_mut(w)
                        .zip(x.chunks(w))
                        .zip(c.chunks(half).zip(s.chunks(half)))
                    {
                        super::kernels::row(x, c, s, rotated, out);
                    }
                })
        };
        // SAFETY: the kernel writes each element of its row.
        unsafe { written(x.shape(), fill).0 }
    }
}

/// One position's math on slices.
#[cfg(feature = "flex")]
pub mod kernels {
    use std::mem::MaybeUninit;

    use crate::kernels::simd::widest;

    /// `out` = the row `x` with its first `rotated` heads (of `2·cos.len()`
    /// features) turned and the rest copied.
    pub fn row(x: &[f32], cos: &[f32], sin: &[f32], rotated: usize, out: &mut [MaybeUninit<f32>]) {
        let half = cos.len();
        widest(
            #[inline(always)]
            || {
                let (turned, kept) = out.split_at_mut(rotated * 2 * half);
                for (out, x) in turned.chunks_mut(2 * half).zip(x.chunks(2 * half)) {
                    let (o1, o2) = out.split_at_mut(half);
                    let (x1, x2) = x.split_at(half);
                    for i in 0..half {
                        o1[i].write(x1[i] * cos[i] - x2[i] * sin[i]);
                        o2[i].write(x2[i] * cos[i] + x1[i] * sin[i]);
                    }
                }
                for (o, &x) in kept.iter_mut().zip(&x[rotated * 2 * half..]) {
                    o.write(x);
                }
            },
        )
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::kernels::cpu_tensor::as_uninit;
    use crate::testutil::assert_close;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn a_row_turned_by_hand() {
        // Two heads of 4 features, the first turned: pairs (1, 3) and (2, 4)
        // by 90° (cos 0, sin 1) and 0° (cos 1, sin 0):
        // (1, 3) → (1·0 − 3·1, 3·0 + 1·1) = (−3, 1); (2, 4) stays.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let mut y = [0.0; 8];
        kernels::row(&x, &[0.0, 1.0], &[1.0, 0.0], 1, as_uninit(&mut y));
        assert_eq!(y, [-3.0, 2.0, 1.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    }

    /// The fused operation and the composed one agree on values and on
    /// the input's gradient (the composed one's derived by burn), with
    /// heads left unturned, over more positions than one task takes.
    #[test]
    fn fused_op_agrees_with_composed_ops() {
        let device = Device::flex().autodiff();
        let (b, t, heads, rotated, hd) = (2, 37, 5, 3, 8);
        let w = heads * hd;
        let pattern = |n: usize, k: usize| -> Vec<f32> { (0..n).map(|i| ((i * k % 97) as f32 / 20.0) - 2.0).collect() };
        let angles: Vec<f32> = (0..b * t * hd / 2).map(|i| i as f32 * 0.37).collect();
        let table = |f: fn(f32) -> f32| {
            Tensor::<3>::from_data(
                TensorData::new(angles.iter().map(|&a| f(a)).collect(), [b, t, hd / 2]),
                &device,
            )
        };
        let weights = Tensor::<3>::from_data(TensorData::new(pattern(b * t * w, 31), [b, t, w]), &device);
        let run = |fused: bool| {
            let x =
                Tensor::<3>::from_data(TensorData::new(pattern(b * t * w, 7919), [b, t, w]), &device).require_grad();
            let y = if fused {
                rotary(x.clone(), table(f32::cos), table(f32::sin), rotated)
            } else {
                Tensor::from_dispatch(composed::<Dispatch>(
                    x.clone().into_dispatch(),
                    table(f32::cos).into_dispatch(),
                    table(f32::sin).into_dispatch(),
                    rotated,
                ))
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let v = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
            (v(y), v(x.grad(&grads).unwrap()))
        };
        let (fused, composed) = (run(true), run(false));
        assert_close("y", &fused.0, &composed.0, 1e-5);
        assert_close("dx", &fused.1, &composed.1, 1e-5);
    }
}
