//! LayerNorm as one operation with its own backward pass on the CPU
//! backend.
//!
//! Composed under autodiff, a LayerNorm is a mean, a subtraction, a square,
//! a second mean, a square root, a division, a product and a sum, each a
//! pass over the activations with an allocation of its own, and a backward
//! pass of as many again; a GPT-2 step has two per block and one more at the
//! end. Here each direction is one pass over each row (two reading it).
//!
//! Per row of d features: μ = Σx/d, σ² = Σ(x − μ)²/d, r = 1/√(σ² + ε),
//! x̂ = (x − μ)·r, y = γ·x̂ + β. Backward, with g = ∂L/∂y and h = g·γ:
//! ∂L/∂β = Σ_rows g, ∂L/∂γ = Σ_rows g·x̂, ∂L/∂x = r·(h − mean(h) − x̂·mean(h·x̂)).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::nn::LayerNorm;
use burn::tensor::Tensor;

use super::composed_elsewhere;

/// `norm` applied to `x` (`[b, q, d]`) with its bias, as GPT-2's are.
pub fn layer_norm(norm: &LayerNorm, x: Tensor<3>, epsilon: f64) -> Tensor<3> {
    let Some(beta) = norm.beta.as_ref() else {
        return norm.forward(x);
    };
    let [b, q, d] = x.dims();
    let y = <Dispatch as FusedLayerNorm>::fused_layer_norm(
        x.reshape([b * q, d]).into_dispatch(),
        norm.gamma.val().into_dispatch(),
        beta.val().into_dispatch(),
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
pub trait FusedLayerNorm: Backend {
    /// `x`: `[rows, d]`; `gamma`, `beta`: `[d]` → `[rows, d]`.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        composed::<Self>(x, gamma, beta, epsilon)
    }
}

/// burn's LayerNorm, operation by operation.
fn composed<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f32,
) -> FloatTensor<B> {
    B::layer_norm(x, gamma, Some(beta), f64::from(epsilon))
}

composed_elsewhere!(FusedLayerNorm);

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

    use super::{FusedLayerNorm, composed};
    use crate::kernels::cpu_tensor::{f32s, row_backward, written};
    use crate::kernels::path;

    /// Rows per parallel task: enough that scheduling is noise.
    const ROWS: usize = 32;

    impl FusedLayerNorm for Flex {
        fn fused_layer_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f32) -> FlexTensor {
            if path::composed() {
                return composed::<Self>(x, gamma, beta, epsilon);
            }
            let (x, gamma, beta) = (x.to_contiguous(), gamma.to_contiguous(), beta.to_contiguous());
            let d = x.shape()[1];
            let (xs, gamma, beta) = (f32s(&x), f32s(&gamma), f32s(&beta));
            let fill = |out: &mut [MaybeUninit<f32>]| {
                out.par_chunks_mut(ROWS * d)
                    .zip(xs.par_chunks(ROWS * d))
                    .for_each(|(out, x)| {
                        for (out, x) in out.chunks_mut(d).zip(x.chunks(d)) {
                            kernels::forward(x, gamma, beta, epsilon, out);
                        }
                    })
            };
            // SAFETY: the kernel writes each element of its row.
            unsafe { written(x.shape(), fill).0 }
        }
    }

    impl<C: CheckpointStrategy> FusedLayerNorm for Autodiff<Flex, C> {
        fn fused_layer_norm(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f32,
        ) -> FloatTensor<Self> {
            if path::composed() {
                return composed::<Self>(x, gamma, beta, epsilon);
            }
            #[derive(Debug)]
            struct LayerNormBackward;

            impl Backward<Flex, 3> for LayerNormBackward {
                /// The input, γ and ε.
                type State = (FlexTensor, FlexTensor, f32);

                fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                    let [x_node, gamma_node, beta_node] = ops.parents;
                    let grad = grads.consume::<Flex>(&ops.node);
                    let (x, gamma, epsilon) = ops.state;
                    let [dx, dgamma, dbeta] = backward(x, gamma, grad, epsilon);
                    for (node, g) in [(x_node, dx), (gamma_node, dgamma), (beta_node, dbeta)] {
                        if let Some(node) = node {
                            grads.register::<Flex>(node.id, g);
                        }
                    }
                }
            }

            let nodes = [x.node(), gamma.node(), beta.node()];
            let (x, gamma, beta) = (x.into_primitive(), gamma.into_primitive(), beta.into_primitive());
            let y = Flex::fused_layer_norm(x.clone(), gamma.clone(), beta, epsilon);
            match LayerNormBackward.prepare::<C>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((x, gamma, epsilon), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    }

    /// `[∂L/∂x, ∂L/∂γ, ∂L/∂β]` from `∂L/∂y` (γ's and β's summed in a fixed
    /// order, see `row_backward`).
    fn backward(x: FlexTensor, gamma: FlexTensor, grad: FlexTensor, epsilon: f32) -> [FlexTensor; 3] {
        let (x, gamma, grad) = (x.to_contiguous(), gamma.to_contiguous(), grad.to_contiguous());
        let gamma = f32s(&gamma);
        let row = |x: &[f32], g: &[f32], dx: &mut [MaybeUninit<f32>], [dgamma, dbeta]: &mut [Vec<f32>; 2]| {
            kernels::backward(x, gamma, g, epsilon, dx, dgamma, dbeta)
        };
        // SAFETY: the kernel writes each element of its row's dx.
        let (dx, [dgamma, dbeta]) = unsafe { row_backward((&x, &grad), ROWS, row) };
        let vector = |v: Vec<f32>| {
            let d = v.len();
            FlexTensor::from_data(burn::tensor::TensorData::new(v, Shape::new([d])))
        };
        [dx, vector(dgamma), vector(dbeta)]
    }

    /// The per-row math on slices.
    pub mod kernels {
        use std::mem::MaybeUninit;

        use crate::kernels::simd::{sum3, widest};

        /// The row's mean and 1/√(σ² + ε).
        #[inline(always)]
        fn moments(x: &[f32], epsilon: f32) -> (f32, f32) {
            let d = x.len() as f32;
            let mean = sum3(x, x, x, |x, _, _| x) / d;
            let var = sum3(x, x, x, |x, _, _| (x - mean) * (x - mean)) / d;
            (mean, 1.0 / (var + epsilon).sqrt())
        }

        /// `out = γ·x̂ + β` for one row.
        pub fn forward(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32, out: &mut [MaybeUninit<f32>]) {
            widest(
                #[inline(always)]
                || {
                    let (mean, r) = moments(x, epsilon);
                    for (((o, &x), &g), &b) in out.iter_mut().zip(x).zip(gamma).zip(beta) {
                        o.write((x - mean) * r * g + b);
                    }
                },
            )
        }

        /// One row's `dx`; adds its terms of ∂L/∂γ and ∂L/∂β.
        pub fn backward(
            x: &[f32],
            gamma: &[f32],
            g: &[f32],
            epsilon: f32,
            dx: &mut [MaybeUninit<f32>],
            dgamma: &mut [f32],
            dbeta: &mut [f32],
        ) {
            widest(
                #[inline(always)]
                || {
                    let d = x.len() as f32;
                    let (mean, r) = moments(x, epsilon);
                    let h_mean = sum3(g, gamma, x, |g, gamma, _| g * gamma) / d;
                    let hx_mean = sum3(g, gamma, x, |g, gamma, x| g * gamma * (x - mean) * r) / d;
                    for ((((dx, &x), &g), &gamma), (dgamma, dbeta)) in dx
                        .iter_mut()
                        .zip(x)
                        .zip(g)
                        .zip(gamma)
                        .zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
                    {
                        let xhat = (x - mean) * r;
                        dx.write(r * (g * gamma - h_mean - xhat * hx_mean));
                        *dgamma += g * xhat;
                        *dbeta += g;
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
    use burn::nn::LayerNormConfig;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn one_row_worked_by_hand() {
        // x = [1, 2, 3, 6]: μ = 3, σ² = (4 + 1 + 0 + 9)/4 = 3.5, ε = 0.5, so
        // r = 1/√4 = ½ and x̂ = [−1, −½, 0, 3/2]; γ = 2, β = 1: y = 2x̂ + 1.
        let (x, gamma, beta) = ([1.0, 2.0, 3.0, 6.0], [2.0; 4], [1.0; 4]);
        let mut y = [0.0; 4];
        kernels::forward(&x, &gamma, &beta, 0.5, as_uninit(&mut y));
        assert_eq!(y, [-1.0, 0.0, 1.0, 4.0]);
        // g = [1, 0, 0, 0]: h = [2, 0, 0, 0], mean(h) = ½, mean(h·x̂) = −½;
        // dx = ½·(h − ½ + ½·x̂) = [½, −3/8, −¼, 1/8]; ∂γ = g·x̂, ∂β = g.
        let (mut dx, mut dgamma, mut dbeta) = ([0.0; 4], [0.0; 4], [0.0; 4]);
        kernels::backward(
            &x,
            &gamma,
            &[1.0, 0.0, 0.0, 0.0],
            0.5,
            as_uninit(&mut dx),
            &mut dgamma,
            &mut dbeta,
        );
        assert_eq!(dx, [0.5, -0.375, -0.25, 0.125]);
        assert_eq!(dgamma, [-1.0, 0.0, 0.0, 0.0]);
        assert_eq!(dbeta, [1.0, 0.0, 0.0, 0.0]);
    }

    /// The fused operation and burn's LayerNorm agree on values and on the
    /// gradients of x, γ and β, over more rows than one task takes.
    #[test]
    fn fused_op_agrees_with_burns_layer_norm() {
        let device = Device::flex().autodiff();
        let (b, q, d) = (3, 29, 48);
        let mut norm = LayerNormConfig::new(d).init(&device);
        let pattern = |n: usize, k: usize| -> Vec<f32> { (0..n).map(|i| ((i * k % 97) as f32 / 20.0) - 2.0).collect() };
        norm.gamma = norm
            .gamma
            .map(|g| Tensor::from_data(TensorData::new(pattern(d, 13), [d]), &g.device()).require_grad());
        let xs = pattern(b * q * d, 7919);
        let weights = Tensor::<3>::from_data(TensorData::new(pattern(b * q * d, 31), [b, q, d]), &device);
        let run = |fused: bool| {
            let x = Tensor::<3>::from_data(TensorData::new(xs.clone(), [b, q, d]), &device).require_grad();
            let y = if fused {
                layer_norm(&norm, x.clone(), 1e-5)
            } else {
                norm.forward(x.clone())
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let v = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
            let w = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
            (
                v(y),
                v(x.grad(&grads).unwrap()),
                w(norm.gamma.val().grad(&grads).unwrap()),
                w(norm.beta.as_ref().unwrap().val().grad(&grads).unwrap()),
            )
        };
        let (fused, composed) = (run(true), run(false));
        assert_close("y", &fused.0, &composed.0, 1e-5);
        assert_close("dx", &fused.1, &composed.1, 1e-4);
        assert_close("dγ", &fused.2, &composed.2, 1e-3);
        assert_close("dβ", &fused.3, &composed.3, 1e-3);
    }
}
