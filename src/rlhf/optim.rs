//! The optimizer every stage uses (AdamW, gradients clipped by their
//! global norm) behind the NaN guard, which reads that norm before an
//! update is applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

use super::adamw::{ClippedAdamW, clip_factor};
use super::state::{param_ids, with_param_ids};
use crate::kernels::sum_of_squares::sum_of_squares;

/// AdamW behind the NaN guard: an update is applied only when its loss
/// and every gradient are finite. When they are not, and `undo` is set,
/// the weights and the moments go back to what they were before the last
/// update, since that update may be what broke them (a learning rate far
/// too high gives a finite loss once and a NaN the step after).
pub struct GuardedAdamW<M> {
    optim: ModuleOptimizer,
    /// The clipping factor `optim` reads.
    clip: Arc<AtomicU32>,
    max_grad_norm: f32,
    /// Whether to keep what `previous` holds: a copy of the weights and
    /// the moments, three times the model's size.
    undo: bool,
    /// The model and the optimizer before the last update applied.
    previous: Option<(M, ModuleOptimizer)>,
}

impl<M: Module + Clone> GuardedAdamW<M> {
    pub fn new(weight_decay: f32, max_grad_norm: f32, undo: bool) -> Self {
        let adamw = ClippedAdamW::new(weight_decay);
        Self {
            clip: adamw.clip(),
            optim: ModuleOptimizer::from(adamw),
            max_grad_norm,
            undo,
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
        self.optim = self
            .optim
            .clone()
            .load(path)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
        self.previous = None;
        Ok(model)
    }

    /// Updates `model` from `grads` at `lr`, clipped to the global norm
    /// limit, when `loss` and the gradients are finite; returns the
    /// gradients' global norm (before clipping).
    pub fn step(&mut self, lr: f64, model: &mut M, loss: f64, grads: GradientsParams) -> f64 {
        let norm = grad_norm(model, &grads);
        if loss.is_finite() && norm.is_finite() {
            self.clip
                .store(clip_factor(norm, self.max_grad_norm).to_bits(), Ordering::Relaxed);
            // Cloning a module or an optimizer shares its tensors: the
            // copies kept cost the weights the update replaces and the
            // moments it would otherwise have written in place.
            if self.undo {
                self.previous = Some((model.clone(), self.optim.clone()));
            }
            *model = self.optim.step(lr, model.clone(), grads);
        } else if let Some((previous, optim)) = self.previous.take() {
            *model = previous;
            self.optim = optim;
        }
        norm
    }
}

/// The squares' sums of every gradient of a module's float parameters, as
/// one-element device tensors, added and read once at the end.
struct SumOfSquares<'a> {
    grads: &'a GradientsParams,
    sums: Vec<Tensor<1>>,
}

impl ModuleVisitor for SumOfSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            self.sums.push(sum_of_squares(grad));
        }
    }
}

/// √(Σ g²) over every gradient of `module` in `grads`: infinite or NaN
/// when any gradient is, so an update from them must not be applied.
fn grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut visitor = SumOfSquares {
        grads,
        sums: Vec::new(),
    };
    module.visit(&mut visitor);
    if visitor.sums.is_empty() {
        return 0.0;
    }
    Tensor::cat(visitor.sums, 0).sum().into_scalar::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, TensorData};

    type Layer = burn::nn::Linear;

    fn layer() -> Layer {
        LinearConfig::new(2, 2).init(&Device::flex().autodiff())
    }

    /// Gradients for `layer`'s weight and bias.
    fn grads_of(layer: &Layer, w: [f32; 4], b: [f32; 2]) -> GradientsParams {
        let inner = Device::flex();
        let mut grads = GradientsParams::new();
        let w = Tensor::<2>::from_data(TensorData::new(w.to_vec(), [2, 2]), &inner);
        grads.register(layer.weight.id, w);
        let b = Tensor::<1>::from_data(TensorData::new(b.to_vec(), [2]), &inner);
        grads.register(layer.bias.as_ref().unwrap().id, b);
        grads
    }

    fn weights(layer: &Layer) -> Vec<f32> {
        let mut out = layer.weight.val().into_data().try_to_vec::<f32>().unwrap();
        out.extend(
            layer
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        out
    }

    /// Gradients [[1, 2], [2, 0]] and [0, 4]: Σ g² = 9 + 16, norm 5; a NaN
    /// anywhere makes the norm NaN.
    #[test]
    fn global_norm_by_hand() {
        let layer = layer();
        let grads_of = |w, b| grads_of(&layer, w, b);
        assert_eq!(grad_norm(&layer, &grads_of([1.0, 2.0, 2.0, 0.0], [0.0, 4.0])), 5.0);
        assert!(grad_norm(&layer, &grads_of([1.0, f32::NAN, 2.0, 0.0], [0.0, 4.0])).is_nan());
        assert_eq!(grad_norm(&layer, &GradientsParams::new()), 0.0);
    }

    /// The factor every gradient is scaled by comes from the norm over
    /// both parameters: 5 against a limit of 1 gives 1 / 5.000001.
    #[test]
    fn clipping_reads_the_global_norm() {
        let mut layer = layer();
        let mut guard = GuardedAdamW::new(0.0, 1.0, true);
        let grads = grads_of(&layer, [1.0, 2.0, 2.0, 0.0], [0.0, 4.0]);
        assert_eq!(guard.step(0.1, &mut layer, 1.0, grads), 5.0);
        let clip = f32::from_bits(guard.clip.load(Ordering::Relaxed));
        assert!((clip - 0.199_999_96).abs() < 1e-8, "{clip}");
    }

    /// After a NaN loss the weights and the moments are what they were
    /// before the last update: the next finite step then lands where it
    /// would have had that update never happened.
    #[test]
    fn the_guard_restores_weights_and_moments() {
        let start = layer();
        let first = [0.3, -0.2, 0.1, 0.5];
        let (mut undone, mut guard) = (start.clone(), GuardedAdamW::new(0.0, 1.0, true));
        let (mut straight, mut reference) = (start.clone(), GuardedAdamW::new(0.0, 1.0, true));
        for (model, optim) in [(&mut undone, &mut guard), (&mut straight, &mut reference)] {
            optim.step(0.1, model, 1.0, grads_of(&start, first, [0.1, 0.2]));
        }
        let after_first = weights(&undone);
        // An update with huge gradients, then a NaN loss: both undone.
        guard.step(0.1, &mut undone, 1.0, grads_of(&start, [90.0; 4], [-70.0; 2]));
        assert_ne!(weights(&undone), after_first);
        guard.step(0.1, &mut undone, f64::NAN, grads_of(&start, first, [0.1, 0.2]));
        assert_eq!(weights(&undone), after_first);
        for (model, optim) in [(&mut undone, &mut guard), (&mut straight, &mut reference)] {
            optim.step(0.1, model, 1.0, grads_of(&start, [-0.4, 0.2, 0.3, 0.1], [0.0, 0.3]));
        }
        assert_eq!(weights(&undone), weights(&straight));
    }

    /// Without `undo` a NaN loss only refuses its own update: the weights
    /// stay where the last finite step left them.
    #[test]
    fn without_undo_the_guard_only_refuses_the_bad_update() {
        let start = layer();
        let mut model = start.clone();
        let mut guard = GuardedAdamW::new(0.0, 1.0, false);
        guard.step(0.1, &mut model, 1.0, grads_of(&start, [90.0; 4], [-70.0; 2]));
        let after = weights(&model);
        assert_ne!(after, weights(&start));
        guard.step(0.1, &mut model, f64::NAN, grads_of(&start, [0.3; 4], [0.1; 2]));
        assert_eq!(weights(&model), after);
        assert!(guard.previous.is_none(), "no copy is kept");
    }
}
