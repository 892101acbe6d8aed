//! RMSNorm (the Llama family's norm) as one operation with its own backward
//! pass on the CPU backend.
//!
//! Composed under autodiff it is a square, a mean, an add, a square root,
//! a division and a product, each a pass over the activations with an
//! allocation of its own, and as many again backward; a Llama step has two
//! per block and one at the end. Here each direction is one pass over each
//! row (two reading it).
//!
//! Per row of d features: r = 1/√(Σx²/d + ε), x̂ = x·r, y = γ·x̂. Backward,
//! with g = ∂L/∂y and h = g·γ: ∂L/∂γ = Σ_rows g·x̂ and
//! ∂L/∂x = r·(h − x̂·mean(h·x̂)).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Scalar, TensorMetadata, backend_extension};
use burn::tensor::Tensor;

use super::composed_elsewhere;

/// `x` (`[b, q, d]`) normalised by its root mean square and scaled by
/// `gamma` (`[d]`).
pub fn rms_norm(x: Tensor<3>, gamma: Tensor<1>, epsilon: f64) -> Tensor<3> {
    let [b, q, d] = x.dims();
    let y = <Dispatch as FusedRmsNorm>::fused_rms_norm(
        x.reshape([b * q, d]).into_dispatch(),
        gamma.into_dispatch(),
        epsilon as f32,
    );
    Tensor::<2>::from_dispatch(y).reshape([b, q, d])
}

#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch"),
    Autodiff
)]
pub trait FusedRmsNorm: Backend {
    /// `x`: `[rows, d]`; `gamma`: `[d]` → `[rows, d]`.
    fn fused_rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
        composed::<Self>(x, gamma, epsilon)
    }
}

/// Operation by operation: `x / √(mean(x²) + ε) · γ`.
fn composed<B: Backend>(x: FloatTensor<B>, gamma: FloatTensor<B>, epsilon: f32) -> FloatTensor<B> {
    let squares = B::float_mul(x.clone(), x.clone());
    let mean = B::float_mean_dim(squares, 1);
    let rms = B::float_sqrt(B::float_add_scalar(mean, Scalar::from(epsilon)));
    let gamma = B::float_reshape(gamma.clone(), [1, gamma.shape()[0]].into());
    B::float_mul(B::float_div(x, rms), gamma)
}

composed_elsewhere!(FusedRmsNorm);

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
    use std::mem::MaybeUninit;

    use super::{FusedRmsNorm, composed};
    use crate::kernels::cpu_tensor::{f32s, row_backward, written};
    use crate::kernels::path;

    /// Rows per parallel task: enough that scheduling is noise.
    const ROWS: usize = 32;

    impl FusedRmsNorm for Flex {
        fn fused_rms_norm(x: FlexTensor, gamma: FlexTensor, epsilon: f32) -> FlexTensor {
            if path::composed() {
                return composed::<Self>(x, gamma, epsilon);
            }
            let (x, gamma) = (x.to_contiguous(), gamma.to_contiguous());
            let d = x.shape()[1];
            let (xs, gamma) = (f32s(&x), f32s(&gamma));
            let fill = |out: &mut [MaybeUninit<f32>]| {
                out.par_chunks_mut(ROWS * d)
                    .zip(xs.par_chunks(ROWS * d))
                    .for_each(|(out, x)| {
                        for (out, x) in out.chunks_mut(d).zip(x.chunks(d)) {
                            kernels::forward(x, gamma, epsilon, out);
                        }
                    })
            };
            // SAFETY: the kernel writes each element of its row.
            unsafe { written(x.shape(), fill).0 }
        }
    }

    impl<C: CheckpointStrategy> FusedRmsNorm for Autodiff<Flex, C> {
        fn fused_rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
            if path::composed() {
                return composed::<Self>(x, gamma, epsilon);
            }
            #[derive(Debug)]
            struct RmsNormBackward;

            impl Backward<Flex, 2> for RmsNormBackward {
                /// The input, γ and ε.
                type State = (FlexTensor, FlexTensor, f32);

                fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
                    let [x_node, gamma_node] = ops.parents;
                    let grad = grads.consume::<Flex>(&ops.node);
                    let (x, gamma, epsilon) = ops.state;
                    let [dx, dgamma] = backward(x, gamma, grad, epsilon);
                    for (node, g) in [(x_node, dx), (gamma_node, dgamma)] {
                        if let Some(node) = node {
                            grads.register::<Flex>(node.id, g);
                        }
                    }
                }
            }

            let nodes = [x.node(), gamma.node()];
            let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
            let y = Flex::fused_rms_norm(x.clone(), gamma.clone(), epsilon);
            match RmsNormBackward.prepare::<C>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((x, gamma, epsilon), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    }

    /// `[∂L/∂x, ∂L/∂γ]` from `∂L/∂y` (γ's summed in a fixed order, see
    /// `row_backward`).
    fn backward(x: FlexTensor, gamma: FlexTensor, grad: FlexTensor, epsilon: f32) -> [FlexTensor; 2] {
        let (x, gamma, grad) = (x.to_contiguous(), gamma.to_contiguous(), grad.to_contiguous());
        let gamma = f32s(&gamma);
        let row = |x: &[f32], g: &[f32], dx: &mut [MaybeUninit<f32>], [dgamma]: &mut [Vec<f32>; 1]| {
            kernels::backward(x, gamma, g, epsilon, dx, dgamma)
        };
        // SAFETY: the kernel writes each element of its row's dx.
        let (dx, [dgamma]) = unsafe { row_backward((&x, &grad), ROWS, row) };
        let d = dgamma.len();
        [
            dx,
            FlexTensor::from_data(burn::tensor::TensorData::new(dgamma, Shape::new([d]))),
        ]
    }

    /// The per-row math on slices.
    pub mod kernels {
        use std::mem::MaybeUninit;

        use crate::kernels::simd::{sum3, widest};

        /// 1/√(Σx²/d + ε).
        #[inline(always)]
        fn inverse_rms(x: &[f32], epsilon: f32) -> f32 {
            1.0 / (sum3(x, x, x, |x, _, _| x * x) / x.len() as f32 + epsilon).sqrt()
        }

        /// `out = γ·x·r` for one row.
        pub fn forward(x: &[f32], gamma: &[f32], epsilon: f32, out: &mut [MaybeUninit<f32>]) {
            widest(
                #[inline(always)]
                || {
                    let r = inverse_rms(x, epsilon);
                    for ((o, &x), &g) in out.iter_mut().zip(x).zip(gamma) {
                        o.write(x * r * g);
                    }
                },
            )
        }

        /// One row's `dx`; adds its terms of ∂L/∂γ.
        pub fn backward(
            x: &[f32],
            gamma: &[f32],
            g: &[f32],
            epsilon: f32,
            dx: &mut [MaybeUninit<f32>],
            dgamma: &mut [f32],
        ) {
            widest(
                #[inline(always)]
                || {
                    let r = inverse_rms(x, epsilon);
                    let hx_mean = sum3(g, gamma, x, |g, gamma, x| g * gamma * x * r) / x.len() as f32;
                    for (((dx, &x), &g), (&gamma, dgamma)) in
                        dx.iter_mut().zip(x).zip(g).zip(gamma.iter().zip(dgamma.iter_mut()))
                    {
                        let xhat = x * r;
                        dx.write(r * (g * gamma - xhat * hx_mean));
                        *dgamma += g * xhat;
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
    use crate::kernels::cpu_tensor::as_uninit;
    use crate::testutil::assert_close;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn one_row_worked_by_hand() {
        // x = [1, 1, 1, 5]: Σx²/4 = 28/4 = 7, ε = 9, so r = 1/√16 = ¼ and
        // x̂ = [¼, ¼, ¼, 5/4]; γ = [2, 2, 2, 4]: y = [½, ½, ½, 5].
        let (x, gamma) = ([1.0, 1.0, 1.0, 5.0], [2.0, 2.0, 2.0, 4.0]);
        let mut y = [0.0; 4];
        kernels::forward(&x, &gamma, 9.0, as_uninit(&mut y));
        assert_eq!(y, [0.5, 0.5, 0.5, 5.0]);
        // g = [1, 0, 0, 1]: h = g·γ = [2, 0, 0, 4], mean(h·x̂) = (½ + 5)/4 = 11/8;
        // dx = ¼·(h − x̂·11/8) = [¼·(2 − 11/32), −11/128, −11/128, ¼·(4 − 55/32)];
        // ∂γ = g·x̂ = [¼, 0, 0, 5/4].
        let (mut dx, mut dgamma) = ([0.0; 4], [0.0; 4]);
        kernels::backward(&x, &gamma, &[1.0, 0.0, 0.0, 1.0], 9.0, as_uninit(&mut dx), &mut dgamma);
        assert_eq!(dx, [53.0 / 128.0, -11.0 / 128.0, -11.0 / 128.0, 73.0 / 128.0]);
        assert_eq!(dgamma, [0.25, 0.0, 0.0, 1.25]);
    }

    /// The fused operation and the composed one (what GPUs run, its
    /// backward derived by burn) agree on values and on the gradients of x
    /// and γ, over more rows than one task takes.
    #[test]
    fn fused_op_agrees_with_composed_ops() {
        let device = Device::flex().autodiff();
        let (b, q, d) = (3, 29, 48);
        let pattern = |n: usize, k: usize| -> Vec<f32> { (0..n).map(|i| ((i * k % 97) as f32 / 20.0) - 2.0).collect() };
        let xs = pattern(b * q * d, 7919);
        let weights = Tensor::<3>::from_data(TensorData::new(pattern(b * q * d, 31), [b, q, d]), &device);
        let run = |fused: bool| {
            let x = Tensor::<3>::from_data(TensorData::new(xs.clone(), [b, q, d]), &device).require_grad();
            let gamma = Tensor::<1>::from_data(TensorData::new(pattern(d, 13), [d]), &device).require_grad();
            let y = if fused {
                rms_norm(x.clone(), gamma.clone(), 1e-5)
            } else {
                let y = composed::<Dispatch>(
                    x.clone().reshape([b * q, d]).into_dispatch(),
                    gamma.clone().into_dispatch(),
                    1e-5,
                );
                Tensor::<2>::from_dispatch(y).reshape([b, q, d])
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let v = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
            let w = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
            (v(y), v(x.grad(&grads).unwrap()), w(gamma.grad(&grads).unwrap()))
        };
        let (fused, composed) = (run(true), run(false));
        assert_close("y", &fused.0, &composed.0, 1e-5);
        assert_close("dx", &fused.1, &composed.1, 1e-4);
        assert_close("dγ", &fused.2, &composed.2, 1e-3);
    }
}
