//! `x · W + b`, and `x · Wᵀ` for a weight stored `[out, in]` (GPT-2's
//! tied LM head), as operations with their own backward passes on the CPU
//! backend.
//!
//! Composed, a biased linear layer is a product into a fresh output (which
//! the CPU backend zeroes and then copies into an aligned allocation), a
//! broadcast add of the bias as a second pass, and in backward two products
//! and a reduction for the bias. Here the output starts as the bias rows
//! and the product accumulates onto them; backward writes ∂L/∂x = G·Wᵀ,
//! ∂L/∂W = xᵀ·G and ∂L/∂b = 1ᵀ·G (column sums, as a product so that
//! they add in a fixed order) straight into their tensors.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

use super::composed_elsewhere;

/// `x` (`[rows, in]`) · `weight` (`[in, out]`) + `bias`.
pub fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    match bias {
        Some(bias) => Tensor::from_dispatch(<Dispatch as FusedLinear>::fused_linear(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        )),
        None => burn::tensor::module::linear(x, weight, None),
    }
}

/// `x` (`[rows, in]`) · `weightᵀ` for `weight` stored `[out, in]`: the LM
/// head reading the token embedding. Composed as a transpose and a
/// product, its weight gradient comes back as a transposed view, and the
/// embedding's own gradient is then added to it element by element at a
/// stride of the whole vocabulary, a cache miss per element (2% of a PPO
/// iteration). The CPU's version writes ∂L/∂W = Gᵀ·x row-major, as W is
/// stored.
pub fn linear_transposed(x: Tensor<2>, weight: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedLinearT>::fused_linear_t(
        x.into_dispatch(),
        weight.into_dispatch(),
    ))
}

#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch"),
    Autodiff
)]
pub trait FusedLinear: Backend {
    /// `x`: `[rows, in]`; `weight`: `[in, out]`; `bias`: `[out]` → `[rows, out]`.
    fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        composed::<Self>(x, weight, bias)
    }
}

/// burn's linear layer.
fn composed<B: Backend>(x: FloatTensor<B>, weight: FloatTensor<B>, bias: FloatTensor<B>) -> FloatTensor<B> {
    B::linear(x, weight, Some(bias))
}

#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch"),
    Autodiff
)]
pub trait FusedLinearT: Backend {
    /// `x`: `[rows, in]`; `weight`: `[out, in]` → `[rows, out]`.
    fn fused_linear_t(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_t::<Self>(x, weight)
    }
}

/// A transpose and a product.
fn composed_t<B: Backend>(x: FloatTensor<B>, weight: FloatTensor<B>) -> FloatTensor<B> {
    B::float_matmul(x, B::float_transpose(weight))
}

composed_elsewhere!(FusedLinear);
composed_elsewhere!(FusedLinearT);

/// The CPU's versions.
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

    use super::{FusedLinear, FusedLinearT, composed, composed_t};
    use crate::kernels::cpu_tensor::{Matrix, Threads, f32s, product, product_tensor};
    use crate::kernels::path;

    impl FusedLinear for Flex {
        fn fused_linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
            if path::composed() {
                return composed::<Self>(x, weight, bias);
            }
            forward(&x.to_contiguous(), &weight.to_contiguous(), &bias.to_contiguous())
        }
    }

    impl<C: CheckpointStrategy> FusedLinear for Autodiff<Flex, C> {
        fn fused_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
            if path::composed() {
                return composed::<Self>(x, weight, bias);
            }
            #[derive(Debug)]
            struct LinearBackward;

            impl Backward<Flex, 3> for LinearBackward {
                /// The input and the weight.
                type State = (FlexTensor, FlexTensor);

                fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                    let [x_node, weight_node, bias_node] = ops.parents;
                    let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
                    let (x, weight) = ops.state;
                    if let Some(node) = x_node {
                        grads.register::<Flex>(node.id, input_grad(&grad, &weight));
                    }
                    if let Some(node) = weight_node {
                        grads.register::<Flex>(node.id, weight_grad(&x, &grad));
                    }
                    if let Some(node) = bias_node {
                        grads.register::<Flex>(node.id, bias_grad(&grad));
                    }
                }
            }

            let nodes = [x.node(), weight.node(), bias.node()];
            let x = x.into_primitive().to_contiguous();
            let weight = weight.into_primitive().to_contiguous();
            let y = forward(&x, &weight, &bias.into_primitive().to_contiguous());
            match LinearBackward.prepare::<C>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((x, weight), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    }

    impl FusedLinearT for Flex {
        fn fused_linear_t(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
            if path::composed() {
                return composed_t::<Self>(x, weight);
            }
            forward_t(&x.to_contiguous(), &weight.to_contiguous())
        }
    }

    impl<C: CheckpointStrategy> FusedLinearT for Autodiff<Flex, C> {
        fn fused_linear_t(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
            if path::composed() {
                return composed_t::<Self>(x, weight);
            }
            #[derive(Debug)]
            struct LinearTBackward;

            impl Backward<Flex, 2> for LinearTBackward {
                /// The input and the weight.
                type State = (FlexTensor, FlexTensor);

                fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
                    let [x_node, weight_node] = ops.parents;
                    let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
                    let (x, weight) = ops.state;
                    let (rows, inputs, outputs) = (x.shape()[0], x.shape()[1], weight.shape()[0]);
                    let g = Matrix::rows(f32s(&grad), outputs);
                    if let Some(node) = x_node {
                        // ∂L/∂x = G · W.
                        let w = Matrix::rows(f32s(&weight), inputs);
                        let dx = product_tensor(Shape::new([rows, inputs]), outputs, g, w, Threads::Pool);
                        grads.register::<Flex>(node.id, dx);
                    }
                    if let Some(node) = weight_node {
                        // ∂L/∂W = Gᵀ · x: `weight_grad` with the roles of the
                        // input and the gradient swapped.
                        grads.register::<Flex>(node.id, weight_grad(&grad, &x));
                    }
                }
            }

            let nodes = [x.node(), weight.node()];
            let x = x.into_primitive().to_contiguous();
            let weight = weight.into_primitive().to_contiguous();
            let y = forward_t(&x, &weight);
            match LinearTBackward.prepare::<C>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((x, weight), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    }

    fn forward_t(x: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
        let (rows, inputs, outputs) = (x.shape()[0], x.shape()[1], weight.shape()[0]);
        let (x, wt) = (Matrix::rows(f32s(x), inputs), Matrix::t(f32s(weight), inputs));
        product_tensor(Shape::new([rows, outputs]), inputs, x, wt, Threads::Pool)
    }

    fn forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
        let (rows, inputs, outputs) = (x.shape()[0], x.shape()[1], weight.shape()[1]);
        let bias = f32s(bias);
        let mut y = FlexTensor::from_data(burn::tensor::TensorData::new(bias.repeat(rows), [rows, outputs]));
        let (x, weight) = (Matrix::rows(f32s(x), inputs), Matrix::rows(f32s(weight), outputs));
        product(
            (rows, outputs, inputs),
            y.storage_mut(),
            outputs,
            x,
            weight,
            1.0,
            true,
            Threads::Pool,
        );
        y
    }

    /// ∂L/∂x = G · Wᵀ.
    fn input_grad(grad: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
        let (rows, inputs, outputs) = (grad.shape()[0], weight.shape()[0], weight.shape()[1]);
        let (g, w) = (Matrix::rows(f32s(grad), outputs), Matrix::t(f32s(weight), outputs));
        product_tensor(Shape::new([rows, inputs]), outputs, g, w, Threads::Pool)
    }

    /// ∂L/∂W = xᵀ · G.
    fn weight_grad(x: &FlexTensor, grad: &FlexTensor) -> FlexTensor {
        let (rows, inputs, outputs) = (x.shape()[0], x.shape()[1], grad.shape()[1]);
        let (xt, g) = (Matrix::t(f32s(x), inputs), Matrix::rows(f32s(grad), outputs));
        product_tensor(Shape::new([inputs, outputs]), rows, xt, g, Threads::Pool)
    }

    /// ∂L/∂b = 1ᵀ · G, the column sums.
    fn bias_grad(grad: &FlexTensor) -> FlexTensor {
        let (rows, outputs) = (grad.shape()[0], grad.shape()[1]);
        let ones = vec![1.0f32; rows];
        let (ones, g) = (Matrix::rows(&ones, rows), Matrix::rows(f32s(grad), outputs));
        product_tensor(Shape::new([outputs]), rows, ones, g, Threads::Pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::assert_close;
    use burn::tensor::{Device, TensorData};

    /// A tensor on the CPU with autodiff whose gradient is tracked.
    fn tracked<const D: usize>(values: &[f32], shape: [usize; D]) -> Tensor<D> {
        Tensor::<D>::from_data(TensorData::new(values.to_vec(), shape), &Device::flex().autodiff()).require_grad()
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// `n` values in [−1, 1.2] in a pattern set by `k`.
    fn pattern(n: usize, k: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * k % 89) as f32 / 40.0) - 1.0).collect()
    }

    /// x = [[1, 2]], W = [[1, 0, 2], [0, 1, 3]], b = [10, 20, 30]:
    /// y = [1 + 10, 2 + 20, 2 + 6 + 30] = [11, 22, 38]. With L = Σ y ⊙ G,
    /// G = [[1, 2, 3]]: ∂x = G·Wᵀ = [1 + 6, 2 + 9] = [7, 11],
    /// ∂W = xᵀ·G = [[1, 2, 3], [2, 4, 6]], ∂b = G.
    #[test]
    fn one_row_worked_by_hand() {
        let x = tracked(&[1.0, 2.0], [1, 2]);
        let w = tracked(&[1.0, 0.0, 2.0, 0.0, 1.0, 3.0], [2, 3]);
        let b = tracked(&[10.0, 20.0, 30.0], [3]);
        let g = tracked(&[1.0, 2.0, 3.0], [1, 3]).detach();
        let y = linear(x.clone(), w.clone(), Some(b.clone()));
        let grads = (y.clone() * g).sum().backward();
        assert_eq!(values(y), [11.0, 22.0, 38.0]);
        assert_eq!(values(x.grad(&grads).unwrap()), [7.0, 11.0]);
        assert_eq!(values(w.grad(&grads).unwrap()), [1.0, 2.0, 3.0, 2.0, 4.0, 6.0]);
        assert_eq!(values(b.grad(&grads).unwrap()), [1.0, 2.0, 3.0]);
    }

    /// x = [[1, 2]], W stored [out, in] = [[1, 0], [2, 3], [0, 1]]:
    /// y = x·Wᵀ = [1, 2 + 6, 2] = [1, 8, 2]. With G = [[1, 2, 3]]:
    /// ∂x = G·W = [1 + 4, 6 + 3] = [5, 9], ∂W = Gᵀ·x = [[1, 2], [2, 4], [3, 6]].
    #[test]
    fn transposed_weight_by_hand() {
        let x = tracked(&[1.0, 2.0], [1, 2]);
        let w = tracked(&[1.0, 0.0, 2.0, 3.0, 0.0, 1.0], [3, 2]);
        let g = tracked(&[1.0, 2.0, 3.0], [1, 3]).detach();
        let y = linear_transposed(x.clone(), w.clone());
        let grads = (y.clone() * g).sum().backward();
        assert_eq!(values(y), [1.0, 8.0, 2.0]);
        assert_eq!(values(x.grad(&grads).unwrap()), [5.0, 9.0]);
        assert_eq!(values(w.grad(&grads).unwrap()), [1.0, 2.0, 2.0, 4.0, 3.0, 6.0]);
    }

    /// The transposed-weight operation and burn's transpose and product
    /// agree on values and gradients, with the weight also read as an
    /// embedding (GPT-2's tying), so that both gradients add up in one.
    #[test]
    fn transposed_weight_agrees_with_composed_product() {
        let device = Device::flex().autodiff();
        let (rows, inputs, outputs) = (300, 96, 80);
        let g = Tensor::<2>::from_data(TensorData::new(pattern(rows * outputs, 37), [rows, outputs]), &device);
        let ids: Vec<i64> = (0..rows as i64).map(|i| i * 7 % outputs as i64).collect();
        let ids = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(ids, [rows]), &device);
        let run = |fused: bool| {
            let w = tracked(&pattern(outputs * inputs, 31), [outputs, inputs]);
            let x = w.clone().select(0, ids.clone());
            let y = if fused {
                linear_transposed(x, w.clone())
            } else {
                x.matmul(w.clone().transpose())
            };
            let grads = (y.clone() * g.clone()).sum().backward();
            (values(y), values(w.grad(&grads).unwrap()))
        };
        let (fused, composed) = (run(true), run(false));
        assert_close("y", &fused.0, &composed.0, 1e-3);
        assert_close("dW", &fused.1, &composed.1, 1e-3);
    }

    /// The fused operation and burn's composed `linear` agree on values
    /// and on all three gradients, on a product large enough to split over
    /// the thread pool.
    #[test]
    fn fused_op_agrees_with_composed_linear() {
        let device = Device::flex().autodiff();
        let (rows, inputs, outputs) = (300, 96, 80);
        let g = Tensor::<2>::from_data(TensorData::new(pattern(rows * outputs, 37), [rows, outputs]), &device);
        let run = |fused: bool| {
            let x = tracked(&pattern(rows * inputs, 7919), [rows, inputs]);
            let w = tracked(&pattern(inputs * outputs, 31), [inputs, outputs]);
            let b = tracked(&pattern(outputs, 13), [outputs]);
            let y = if fused {
                linear(x.clone(), w.clone(), Some(b.clone()))
            } else {
                burn::tensor::module::linear(x.clone(), w.clone(), Some(b.clone()))
            };
            let grads = (y.clone() * g.clone()).sum().backward();
            (
                values(y),
                values(x.grad(&grads).unwrap()),
                values(w.grad(&grads).unwrap()),
                values(b.grad(&grads).unwrap()),
            )
        };
        let (fused, composed) = (run(true), run(false));
        assert_close("y", &fused.0, &composed.0, 1e-3);
        assert_close("dx", &fused.1, &composed.1, 1e-3);
        assert_close("dW", &fused.2, &composed.2, 1e-3);
        assert_close("db", &fused.3, &composed.3, 1e-3);
    }
}
