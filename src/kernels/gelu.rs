//! GPT-2's `gelu_new` as one operation with its own backward pass.
//!
//! Written with tensor operations, the activation is seven elementwise
//! passes forward and about as many backward, each allocating a tensor the
//! size of the MLP's hidden layer, and its exponentials went through a
//! scalar `expf`: a sixth of a training step on the CPU. On the CPU backend
//! it is one pass each way; other backends compose it from their own
//! operations, so every device computes the same function. Unlike the
//! other operations, its backward pass is written once for every backend
//! (`gelu_new_backward`, composed by default).
//!
//! With s = σ(2z), z = √(2/π)·(x + 0.044715·x³):
//! gelu(x) = x·s (the identity 0.5·(1 + tanh z) = σ(2z)), and
//! gelu'(x) = s + x·s·(1 − s)·2√(2/π)·(1 + 3·0.044715·x²).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Scalar, backend_extension};
use burn::tensor::Tensor;

const C: f32 = 0.797_884_6; // √(2/π)
const A: f32 = 0.044715;

/// GPT-2's `gelu_new`, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
pub fn gelu_new<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as GeluNew>::gelu_new(x.into_dispatch()))
}

#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch"),
    Autodiff
)]
pub trait GeluNew: Backend {
    fn gelu_new(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed::<Self>(x)
    }

    /// `grad · gelu'(x)`.
    fn gelu_new_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_backward::<Self>(x, grad)
    }
}

/// `x·σ(2z)` from tensor operations.
fn composed<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let s = sigmoid_of_2z::<B>(x.clone());
    B::float_mul(x, s)
}

/// `grad · gelu'(x)` from tensor operations.
fn composed_backward<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let s = sigmoid_of_2z::<B>(x.clone());
    let one_minus_s = B::float_add_scalar(B::float_neg(s.clone()), Scalar::from(1.0));
    let x2 = B::float_mul(x.clone(), x.clone());
    let dz = B::float_add_scalar(
        B::float_mul_scalar(x2, Scalar::from(2.0 * C * 3.0 * A)),
        Scalar::from(2.0 * C),
    );
    let slope = B::float_mul(B::float_mul(x, s.clone()), B::float_mul(one_minus_s, dz));
    B::float_mul(grad, B::float_add(s, slope))
}

/// σ(2z) from tensor operations.
fn sigmoid_of_2z<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let x2 = B::float_mul(x.clone(), x.clone());
    let inner = B::float_add_scalar(B::float_mul_scalar(x2, Scalar::from(A)), Scalar::from(1.0));
    B::sigmoid(B::float_mul_scalar(B::float_mul(x, inner), Scalar::from(2.0 * C)))
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl GeluNew for burn::backend::Cube {}

#[cfg(feature = "tch")]
impl GeluNew for burn::backend::LibTorch {}

#[cfg(feature = "flex")]
impl GeluNew for burn::backend::Flex {
    fn gelu_new(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if super::path::composed() {
            return composed::<Self>(x);
        }
        flex::map(x, None, kernels::gelu)
    }

    fn gelu_new_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if super::path::composed() {
            return composed_backward::<Self>(x, grad);
        }
        flex::map(x, Some(grad), kernels::gelu_grad)
    }
}

impl<B: Backend + GeluNew, C: CheckpointStrategy> GeluNew for Autodiff<B, C> {
    fn gelu_new(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GeluNewBackward;

        impl<B: Backend + GeluNew> Backward<B, 1> for GeluNewBackward {
            type State = FloatTensor<B>;

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(parent) = parent {
                    grads.register::<B>(parent.id, B::gelu_new_backward(ops.state, grad));
                }
            }
        }

        match GeluNewBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let input = x.into_primitive();
                prep.finish(input.clone(), B::gelu_new(input))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_new(x.into_primitive())),
        }
    }
}

/// The CPU backend's side: contiguous f32 slices in, one new tensor out.
#[cfg(feature = "flex")]
mod flex {
    use crate::kernels::cpu_tensor::{f32s, written};
    use burn::backend::TensorMetadata;
    use burn::backend::flex::FlexTensor;
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    /// Elements per parallel task: large enough that scheduling is noise.
    const CHUNK: usize = 1 << 14;

    /// An elementwise kernel: the input, the gradient when there is one,
    /// and the output it writes in full.
    type Kernel = fn(&[f32], Option<&[f32]>, &mut [MaybeUninit<f32>]);

    /// `out[i] = f(x[i], grad[i])` (grad 1 when absent) over every element.
    pub fn map(x: FlexTensor, grad: Option<FlexTensor>, f: Kernel) -> FlexTensor {
        let x = x.to_contiguous();
        let grad = grad.map(|g| g.to_contiguous());
        let (xs, gs) = (f32s(&x), grad.as_ref().map(f32s));
        let fill = |out: &mut [MaybeUninit<f32>]| {
            out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, out)| {
                let range = i * CHUNK..i * CHUNK + out.len();
                f(&xs[range.clone()], gs.map(|g| &g[range]), out);
            })
        };
        // SAFETY: every kernel `f` writes each element of its output
        // chunk, reading only its inputs.
        unsafe { written(x.shape(), fill).0 }
    }
}

/// The elementwise math on slices.
#[cfg(feature = "flex")]
pub mod kernels {
    use std::mem::MaybeUninit;

    use super::{A, C};
    use crate::kernels::simd::{exp, widest};

    /// `out = gelu_new(x)`.
    pub fn gelu(x: &[f32], _: Option<&[f32]>, out: &mut [MaybeUninit<f32>]) {
        widest(
            #[inline(always)]
            || {
                for (o, &x) in out.iter_mut().zip(x) {
                    o.write(x * sigmoid_of_2z(x));
                }
            },
        )
    }

    /// `out = grad · gelu_new'(x)`.
    pub fn gelu_grad(x: &[f32], grad: Option<&[f32]>, out: &mut [MaybeUninit<f32>]) {
        let grad = grad.expect("the backward pass has a gradient");
        widest(
            #[inline(always)]
            || {
                for ((o, &x), &g) in out.iter_mut().zip(x).zip(grad) {
                    o.write(g * derivative(x));
                }
            },
        )
    }

    #[inline(always)]
    fn derivative(x: f32) -> f32 {
        let s = sigmoid_of_2z(x);
        s + x * s * (1.0 - s) * (2.0 * C) * (1.0 + 3.0 * A * x * x)
    }

    #[inline(always)]
    fn sigmoid_of_2z(x: f32) -> f32 {
        let z = C * x * (1.0 + A * x * x);
        1.0 / (1.0 + exp(-2.0 * z))
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::kernels;
    use crate::kernels::cpu_tensor::as_uninit;
    use burn::tensor::{Device, Tensor, TensorData};

    #[test]
    fn gelu_and_its_derivative_at_worked_points() {
        // gelu_new(1) = 0.5·(1 + tanh(0.7978846·1.044715)) = 0.5·(1 + tanh 0.8335620)
        // = 0.5·(1 + 0.6823840) = 0.8411920; gelu_new(−1) = −1 + 0.8411920 (gelu(x)
        // is x − gelu(−x)); gelu_new(3) = 1.5·(1 + tanh 2.5440656) = 2.9963626;
        // gelu_new(0) = 0 and gelu'(0) = ½.
        let x = [1.0f32, -1.0, 0.0, 3.0];
        let mut y = [0.0; 4];
        kernels::gelu(&x, None, as_uninit(&mut y));
        let want = [0.841_192, -0.158_808, 0.0, 2.996_362_6];
        for (got, want) in y.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{y:?} vs {want}");
        }
        // gelu'(1) = s + s(1 − s)·2c·(1 + 3a) with s = σ(1.6671239) = 0.8411920:
        // 0.8411920 + 0.8411920·0.1588080·1.5957691·1.134145 = 1.0829641.
        let mut d = [0.0; 4];
        kernels::gelu_grad(&x, Some(&[1.0, 1.0, 2.0, 1.0]), as_uninit(&mut d));
        assert!((d[0] - 1.082_964_1).abs() < 1e-5, "{d:?}");
        assert!(
            (d[1] - (1.0 - 1.082_964_1)).abs() < 1e-5,
            "gelu'(−x) = 1 − gelu'(x): {d:?}"
        );
        assert!((d[2] - 1.0).abs() < 1e-6, "2·gelu'(0) = 1: {d:?}");
    }

    /// The CPU kernel and the composed operations agree, forward and
    /// backward, and the backward agrees with a central difference.
    #[test]
    fn fused_op_agrees_with_composed_ops_and_finite_differences() {
        let device = Device::flex().autodiff();
        let xs: Vec<f32> = (0..97).map(|i| (i as f32 - 48.0) * 0.11).collect();
        let run = |fused: bool| {
            let x = Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device).require_grad();
            let y = if fused {
                super::gelu_new(x.clone())
            } else {
                composed(x.clone())
            };
            let grads = (y.clone() * y.clone()).sum().backward();
            let dx = x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
            (y.into_data().try_to_vec::<f32>().unwrap(), dx)
        };
        let (y, dx) = run(true);
        let (y_ref, dx_ref) = run(false);
        for i in 0..xs.len() {
            assert!((y[i] - y_ref[i]).abs() < 1e-5, "y[{i}] {} vs {}", y[i], y_ref[i]);
            assert!((dx[i] - dx_ref[i]).abs() < 1e-4, "dx[{i}] {} vs {}", dx[i], dx_ref[i]);
            // d(y²)/dx = 2·y·gelu'(x), gelu' by central difference in f64.
            let g = |x: f64| 0.5 * x * (1.0 + (0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x)).tanh());
            let x = xs[i] as f64;
            let want = 2.0 * g(x) * (g(x + 1e-4) - g(x - 1e-4)) / 2e-4;
            assert!((dx[i] as f64 - want).abs() < 1e-4, "dx[{i}] {} vs {want}", dx[i]);
        }
    }

    fn composed(x: Tensor<1>) -> Tensor<1> {
        let inner = (x.clone() + x.clone().powi_scalar(3) * 0.044715) * 0.797_884_560_802_865_4;
        x * (inner.tanh() + 1.0) * 0.5
    }
}
