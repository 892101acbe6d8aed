//! The Llama family's gated activation, `silu(gate) · up`, as one operation
//! with its own backward pass.
//!
//! Composed under autodiff it is a sigmoid, two products and their backward
//! passes, each allocating a tensor the size of the MLP's hidden layer (the
//! widest activations of a block). On the CPU backend it is one pass each
//! way; other backends compose it, and as for `gelu_new` the backward pass
//! is written once for every backend (`swiglu_backward`, composed by
//! default).
//!
//! With s = σ(a): y = a·s·u, ∂y/∂u = a·s and ∂y/∂a = u·s·(1 + a·(1 − s)).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

/// `silu(gate) · up`, elementwise over tensors of one shape.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as SwiGlu>::swiglu(gate.into_dispatch(), up.into_dispatch()))
}

#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch"),
    Autodiff
)]
pub trait SwiGlu: Backend {
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        composed::<Self>(gate, up)
    }

    /// `(∂L/∂gate, ∂L/∂up)` from `grad` = ∂L/∂y.
    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composed_backward::<Self>(gate, up, grad)
    }
}

fn composed<B: Backend>(gate: FloatTensor<B>, up: FloatTensor<B>) -> FloatTensor<B> {
    let s = B::sigmoid(gate.clone());
    B::float_mul(B::float_mul(gate, s), up)
}

fn composed_backward<B: Backend>(
    gate: FloatTensor<B>,
    up: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let s = B::sigmoid(gate.clone());
    let silu = B::float_mul(gate.clone(), s.clone());
    let du = B::float_mul(grad.clone(), silu.clone());
    // s·(1 + a·(1 − s)) = s + silu − silu·s
    let slope = B::float_sub(B::float_add(s.clone(), silu.clone()), B::float_mul(silu, s));
    (B::float_mul(B::float_mul(grad, up), slope), du)
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl SwiGlu for burn::backend::Cube {}

#[cfg(feature = "tch")]
impl SwiGlu for burn::backend::LibTorch {}

#[cfg(feature = "flex")]
impl SwiGlu for burn::backend::Flex {
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        if super::path::composed() {
            return composed::<Self>(gate, up);
        }
        flex::forward(gate, up)
    }

    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if super::path::composed() {
            return composed_backward::<Self>(gate, up, grad);
        }
        flex::backward(gate, up, grad)
    }
}

impl<B: Backend + SwiGlu, C: CheckpointStrategy> SwiGlu for Autodiff<B, C> {
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SwiGluBackward;

        impl<B: Backend + SwiGlu> Backward<B, 2> for SwiGluBackward {
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [gate_node, up_node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (gate, up) = ops.state;
                let (da, du) = B::swiglu_backward(gate, up, grad);
                for (node, g) in [(gate_node, da), (up_node, du)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        let nodes = [gate.node(), up.node()];
        let (gate, up) = (gate.into_primitive(), up.into_primitive());
        match SwiGluBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((gate.clone(), up.clone()), B::swiglu(gate, up)),
            OpsKind::UnTracked(prep) => prep.finish(B::swiglu(gate, up)),
        }
    }
}

/// The CPU backend's side: contiguous f32 slices in, new tensors out.
#[cfg(feature = "flex")]
mod flex {
    use crate::kernels::cpu_tensor::{f32s, written};
    use burn::backend::TensorMetadata;
    use burn::backend::flex::FlexTensor;
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    /// Elements per parallel task: large enough that scheduling is noise.
    const CHUNK: usize = 1 << 14;

    pub fn forward(gate: FlexTensor, up: FlexTensor) -> FlexTensor {
        let (gate, up) = (gate.to_contiguous(), up.to_contiguous());
        let (a, u) = (f32s(&gate), f32s(&up));
        let fill = |out: &mut [MaybeUninit<f32>]| {
            out.par_chunks_mut(CHUNK)
                .zip(a.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
                .for_each(|(out, (a, u))| super::kernels::forward(a, u, out))
        };
        // SAFETY: the kernel writes each element of its chunk.
        unsafe { written(gate.shape(), fill).0 }
    }

    pub fn backward(gate: FlexTensor, up: FlexTensor, grad: FlexTensor) -> (FlexTensor, FlexTensor) {
        let (gate, up, grad) = (gate.to_contiguous(), up.to_contiguous(), grad.to_contiguous());
        let (a, u, g) = (f32s(&gate), f32s(&up), f32s(&grad));
        let mut du = Vec::<f32>::with_capacity(a.len());
        let fill = |da: &mut [MaybeUninit<f32>]| {
            da.par_chunks_mut(CHUNK)
                .zip(du.spare_capacity_mut()[..a.len()].par_chunks_mut(CHUNK))
                .zip(a.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)).zip(g.par_chunks(CHUNK)))
                .for_each(|((da, du), ((a, u), g))| super::kernels::backward(a, u, g, da, du))
        };
        // SAFETY: the kernel writes each element of its chunks of both
        // outputs; `du`'s length is set only after that.
        let (da, ()) = unsafe { written(gate.shape(), fill) };
        unsafe { du.set_len(a.len()) };
        let du = FlexTensor::from_data(burn::tensor::TensorData::new(du, gate.shape()));
        (da, du)
    }
}

/// The elementwise math on slices.
#[cfg(feature = "flex")]
pub mod kernels {
    use std::mem::MaybeUninit;

    use crate::kernels::simd::{exp, widest};

    #[inline(always)]
    fn sigmoid(a: f32) -> f32 {
        1.0 / (1.0 + exp(-a))
    }

    /// `out = silu(a) · u`.
    pub fn forward(a: &[f32], u: &[f32], out: &mut [MaybeUninit<f32>]) {
        widest(
            #[inline(always)]
            || {
                for ((o, &a), &u) in out.iter_mut().zip(a).zip(u) {
                    o.write(a * sigmoid(a) * u);
                }
            },
        )
    }

    /// `da = g·u·s·(1 + a·(1 − s))`, `du = g·a·s`.
    pub fn backward(a: &[f32], u: &[f32], g: &[f32], da: &mut [MaybeUninit<f32>], du: &mut [MaybeUninit<f32>]) {
        widest(
            #[inline(always)]
            || {
                for ((da, du), ((&a, &u), &g)) in da.iter_mut().zip(du).zip(a.iter().zip(u).zip(g)) {
                    let s = sigmoid(a);
                    da.write(g * u * s * (1.0 + a * (1.0 - s)));
                    du.write(g * a * s);
                }
            },
        )
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::kernels;
    use crate::kernels::cpu_tensor::as_uninit;
    use crate::testutil::assert_close;
    use burn::backend::Dispatch;
    use burn::tensor::activation::silu;
    use burn::tensor::{Device, Tensor, TensorData};

    #[test]
    fn swiglu_and_its_gradients_at_worked_points() {
        // a = 0: s = ½, y = 0, ∂y/∂a = u·½, ∂y/∂u = 0.
        // a = ln 3: s = 3/4, silu = ¾·ln 3 = 0.8239592; u = 2: y = 1.6479184,
        // ∂y/∂u = 0.8239592, ∂y/∂a = 2·¾·(1 + ln 3·¼) = 1.5·1.2746531 = 1.9119797.
        let (a, u) = ([0.0f32, 3f32.ln()], [4.0f32, 2.0]);
        let mut y = [0.0; 2];
        kernels::forward(&a, &u, as_uninit(&mut y));
        assert!(y[0] == 0.0 && (y[1] - 1.647_918_4).abs() < 1e-6, "{y:?}");
        let (mut da, mut du) = ([0.0; 2], [0.0; 2]);
        kernels::backward(&a, &u, &[1.0, 1.0], as_uninit(&mut da), as_uninit(&mut du));
        assert!(
            (da[0] - 2.0).abs() < 1e-6 && (da[1] - 1.911_979_7).abs() < 1e-6,
            "{da:?}"
        );
        assert!(du[0] == 0.0 && (du[1] - 0.823_959_2).abs() < 1e-6, "{du:?}");
    }

    /// The fused operation, and the composed backward pass other backends
    /// run, against burn's own `silu(a) · u` with the gradients burn derives.
    #[test]
    fn fused_op_and_composed_backward_agree_with_burns_ops() {
        let device = Device::flex().autodiff();
        let n = 20_000; // more than one task's chunk
        let pattern = |k: usize| -> Vec<f32> { (0..n).map(|i| ((i * k % 89) as f32 / 15.0) - 3.0).collect() };
        let tensor = |k: usize| Tensor::<1>::from_data(TensorData::new(pattern(k), [n]), &device);
        let v = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
        let run = |fused: bool| {
            let (a, u) = (tensor(31).require_grad(), tensor(53).require_grad());
            let y = match fused {
                true => super::swiglu(a.clone(), u.clone()),
                false => silu(a.clone()) * u.clone(),
            };
            let grads = (y.clone() * tensor(7)).sum().backward();
            (v(y), v(a.grad(&grads).unwrap()), v(u.grad(&grads).unwrap()))
        };
        let (ours, burn) = (run(true), run(false));
        assert_close("y", &ours.0, &burn.0, 1e-5);
        assert_close("da", &ours.1, &burn.1, 1e-4);
        assert_close("du", &ours.2, &burn.2, 1e-4);
        let plain =
            |k: usize| Tensor::<1>::from_data(TensorData::new(pattern(k), [n]), &Device::flex()).into_dispatch();
        let (da, du) = super::composed_backward::<Dispatch>(plain(31), plain(53), plain(7));
        assert_close("composed da", &v(Tensor::from_dispatch(da)), &burn.1, 1e-4);
        assert_close("composed du", &v(Tensor::from_dispatch(du)), &burn.2, 1e-4);
    }
}
