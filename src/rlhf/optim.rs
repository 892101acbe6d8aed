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

/// Sums the squares of every gradient of a module's float parameters.
struct SumOfSquares<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SumOfSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let squares = grad.square().sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

/// √(Σ g²) over every gradient of `module` in `grads`: infinite or NaN
/// when any gradient is, so an update from them must not be applied.
fn grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut visitor = SumOfSquares { grads, total: None };
    module.visit(&mut visitor);
    visitor.total.map_or(0.0, |t| (t.into_scalar::<f32>() as f64).sqrt())
}
