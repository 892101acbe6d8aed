//! The optimizer every stage uses (AdamW with each parameter's gradient
//! clipped by its own norm)
//! and the gradients' global norm, which the NaN guard reads before an
//! update is applied.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

use super::adamw::ClippedAdamW;
use super::state::{param_ids, with_param_ids};

pub fn adamw(weight_decay: f32, max_grad_norm: f32) -> ModuleOptimizer {
    ModuleOptimizer::from(ClippedAdamW::new(weight_decay, max_grad_norm))
}

/// AdamW behind the NaN guard: an update is applied only when its loss
/// and every gradient are finite. When they are not, the weights go back
/// to the last ones whose loss was finite, since the update that came
/// before may be what broke them (a learning rate far too high gives a
/// finite loss once and a NaN the step after).
pub struct GuardedAdamW<M> {
    optim: ModuleOptimizer,
    previous: Option<M>,
}

impl<M: Module + Clone> GuardedAdamW<M> {
    pub fn new(weight_decay: f32, max_grad_norm: f32) -> Self {
        Self {
            optim: adamw(weight_decay, max_grad_norm),
            previous: None,
        }
    }

    /// Writes the optimizer's moments and step counts to `path`; returns
    /// `model`'s parameter identities, which they are keyed by.
    pub fn save(&self, model: &M, path: &std::path::Path) -> anyhow::Result<Vec<u64>> {
        self.optim
            .save(path)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
        Ok(param_ids(model))
    }

    /// Reads what `save` wrote, giving `model` (read back from its files)
    /// the identities it had then; returns the model so renamed.
    pub fn load(&mut self, model: M, ids: &[u64], path: &std::path::Path) -> anyhow::Result<M> {
        let model = with_param_ids(model, ids)?;
        let optim = std::mem::replace(&mut self.optim, adamw(0.0, 1.0));
        self.optim = optim
            .load(path)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
        Ok(model)
    }

    /// Updates `model` from `grads` at `lr` when `loss` and the gradients
    /// are finite; returns the gradients' global norm.
    pub fn step(&mut self, lr: f64, model: &mut M, loss: f64, grads: GradientsParams) -> f64 {
        let norm = grad_norm(model, &grads);
        if loss.is_finite() && norm.is_finite() {
            // Cloning a module shares its tensors: the copy kept costs the
            // weights the optimizer replaces, nothing more.
            self.previous = Some(model.clone());
            *model = self.optim.step(lr, model.clone(), grads);
        } else if let Some(previous) = self.previous.take() {
            *model = previous;
        }
        norm
    }
}

/// Sums the squares of every gradient of a module's float parameters: on
/// the host on the CPU, as a device tensor elsewhere (read once, at the end).
struct SumOfSquares<'a> {
    grads: &'a GradientsParams,
    host: f64,
    device: Option<Tensor<1>>,
}

impl ModuleVisitor for SumOfSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(grad) = self.grads.get::<D>(param.id) else {
            return;
        };
        #[cfg(feature = "flex")]
        if crate::device::is_cpu(&grad.device()) {
            self.host += cpu_sum_of_squares(grad);
            return;
        }
        let squares = grad.square().sum();
        self.device = Some(match self.device.take() {
            Some(total) => total + squares,
            None => squares,
        });
    }
}

/// √(Σ g²) over every gradient of `module` in `grads`: infinite or NaN
/// when any gradient is, so an update from them must not be applied.
fn grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut visitor = SumOfSquares {
        grads,
        host: 0.0,
        device: None,
    };
    module.visit(&mut visitor);
    let device = visitor.device.map_or(0.0, |t| t.into_scalar::<f32>() as f64);
    (visitor.host + device).sqrt()
}

/// Σ x² in one pass over the tensor: composed, squaring writes a copy of
/// every gradient only for the sum to read it back.
#[cfg(feature = "flex")]
fn cpu_sum_of_squares<const D: usize>(x: Tensor<D>) -> f64 {
    let n = x.shape().num_elements();
    let sum = <burn::backend::Dispatch as flex::FusedSumOfSquares>::sum_of_squares(x.reshape([n]).into_dispatch());
    Tensor::<1>::from_dispatch(sum).into_scalar::<f64>()
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Backend, Flex, backend_extension};
    use burn::tensor::TensorData;

    use crate::model::cpu_tensor::f32s;
    use crate::rlhf::adamw::sum_of_squares;

    #[backend_extension(Flex)]
    pub trait FusedSumOfSquares: Backend {
        /// Σ x² of a `[n]` tensor, as `[1]` in f64 (the sum's own precision).
        fn sum_of_squares(x: FloatTensor<Self>) -> FloatTensor<Self>;
    }

    impl FusedSumOfSquares for Flex {
        fn sum_of_squares(x: FlexTensor) -> FlexTensor {
            let sum = sum_of_squares(f32s(&x.to_contiguous()));
            FlexTensor::from_data(TensorData::new(vec![sum], [1]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, TensorData};

    /// Gradients [[1, 2], [2, 0]] and [0, 4]: Σ g² = 9 + 16, norm 5; a NaN
    /// anywhere makes the norm NaN.
    #[test]
    fn global_norm_by_hand() {
        let device = Device::flex().autodiff();
        let layer = LinearConfig::new(2, 2).init(&device);
        let inner = device.clone().inner();
        let grads_of = |w: [f32; 4], b: [f32; 2]| {
            let mut grads = GradientsParams::new();
            let w = Tensor::<2>::from_data(TensorData::new(w.to_vec(), [2, 2]), &inner);
            grads.register(layer.weight.id, w);
            let b = Tensor::<1>::from_data(TensorData::new(b.to_vec(), [2]), &inner);
            grads.register(layer.bias.as_ref().unwrap().id, b);
            grads
        };
        assert_eq!(grad_norm(&layer, &grads_of([1.0, 2.0, 2.0, 0.0], [0.0, 4.0])), 5.0);
        assert!(grad_norm(&layer, &grads_of([1.0, f32::NAN, 2.0, 0.0], [0.0, 4.0])).is_nan());
        assert_eq!(grad_norm(&layer, &GradientsParams::new()), 0.0);
    }
}
