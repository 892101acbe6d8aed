//! The optimizer every stage uses (AdamW, gradients clipped by their
//! global norm) behind the NaN guard, which reads that norm before an
//! update is applied.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

use super::adamw::{ClippedAdamW, Controls, clip_factor};
use super::state::{param_ids, with_param_ids};
use crate::kernels::sum_of_squares::sum_of_squares;

/// AdamW behind the NaN guard: an update is applied only when its loss
/// and every gradient are finite. When they are not, and `undo` is set,
/// the weights go back to what they were before the last update, since
/// that update may be what broke them (a learning rate far too high gives
/// a finite loss once and a NaN the step after).
///
/// The weights before are computed back from the moments the update left
/// (`kernels::adamw::before_step`), so nothing is copied; the moments keep
/// that update's gradient, which was taken at the weights they go back to.
/// An update at a learning rate above `COMPUTED_UP_TO` keeps a copy of the
/// weights and moments instead: its steps can be so much larger than the
/// weights that f32 no longer holds the weights' digits after it.
pub struct GuardedAdamW<M> {
    optim: ModuleOptimizer,
    controls: Arc<Controls>,
    max_grad_norm: f32,
    undo: bool,
    /// How to take back the last update applied, while it can be.
    last: Option<Undo<M>>,
}

/// With these moments' β, |m̂| / √v̂ ≤ (1 − β₁) / √((1 − β₂)(1 − β₁²/β₂)) =
/// 7.3, so an update moves no weight by more than 7.3·lr beside its decay,
/// and up to a learning rate of 1 a weight computed back is within about
/// 1e-6 of what it was.
const COMPUTED_UP_TO: f64 = 1.0;

enum Undo<M> {
    /// The update's learning rate and the parameters it changed.
    Computed(f64, Vec<ParamId>),
    /// The model and the optimizer before it.
    Copy(M, ModuleOptimizer),
}

impl<M: Module + Clone> GuardedAdamW<M> {
    pub fn new(weight_decay: f32, max_grad_norm: f32, undo: bool) -> Self {
        let adamw = ClippedAdamW::new(weight_decay);
        Self {
            controls: adamw.controls(),
            optim: ModuleOptimizer::from(adamw),
            max_grad_norm,
            undo,
            last: None,
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
        self.last = None;
        Ok(model)
    }

    /// Updates `model` from `grads` at `lr`, clipped to the global norm
    /// limit, when `loss` and the gradients are finite; returns the
    /// gradients' global norm (before clipping).
    pub fn step(&mut self, lr: f64, model: &mut M, loss: f64, grads: GradientsParams) -> f64 {
        let (norm, ids) = grad_norm(model, &grads);
        if loss.is_finite() && norm.is_finite() {
            self.controls
                .clip
                .store(clip_factor(norm, self.max_grad_norm).to_bits(), Ordering::Relaxed);
            // Cloning a module or an optimizer shares its tensors: a copy
            // costs the weights the update replaces and the moments it
            // would otherwise have written in place.
            self.last = match (self.undo, lr <= COMPUTED_UP_TO) {
                (false, _) => None,
                (true, true) => Some(Undo::Computed(lr, ids)),
                (true, false) => Some(Undo::Copy(model.clone(), self.optim.clone())),
            };
            *model = self.optim.step(lr, model.clone(), grads);
        } else {
            drop(grads);
            match self.last.take() {
                Some(Undo::Computed(lr, ids)) => *model = self.take_back(lr, &ids, model.clone()),
                Some(Undo::Copy(previous, optim)) => (*model, self.optim) = (previous, optim),
                None => {}
            }
        }
        norm
    }

    /// `model` before the update at `lr` that changed the parameters
    /// `ids`: burn's optimizer steps them once more with the direction
    /// reversed, each parameter standing in for its own gradient.
    fn take_back(&mut self, lr: f64, ids: &[ParamId], model: M) -> M {
        let mut stand_ins = StandIns {
            ids,
            grads: GradientsParams::new(),
        };
        model.visit(&mut stand_ins);
        self.controls.undo.store(true, Ordering::Relaxed);
        let model = self.optim.step(lr, model, stand_ins.grads);
        self.controls.undo.store(false, Ordering::Relaxed);
        model
    }
}

/// A gradient for each of `ids`: the parameter's own value, which an
/// undoing step ignores.
struct StandIns<'a> {
    ids: &'a [ParamId],
    grads: GradientsParams,
}

impl ModuleVisitor for StandIns<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.ids.contains(&param.id) {
            self.grads.register(param.id, param.val().inner());
        }
    }
}

/// The squares' sums of every gradient of a module's float parameters, as
/// one-element device tensors, added and read once at the end, and the
/// parameters they belong to.
struct SumOfSquares<'a> {
    grads: &'a GradientsParams,
    sums: Vec<Tensor<1>>,
    ids: Vec<ParamId>,
}

impl ModuleVisitor for SumOfSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            self.sums.push(sum_of_squares(grad));
            self.ids.push(param.id);
        }
    }
}

/// √(Σ g²) over every gradient of `module` in `grads`: infinite or NaN
/// when any gradient is, so an update from them must not be applied; and
/// the parameters that have one.
fn grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> (f64, Vec<ParamId>) {
    let mut visitor = SumOfSquares {
        grads,
        sums: Vec::new(),
        ids: Vec::new(),
    };
    module.visit(&mut visitor);
    if visitor.sums.is_empty() {
        return (0.0, visitor.ids);
    }
    let norm = Tensor::cat(visitor.sums, 0).sum().into_scalar::<f64>().sqrt();
    (norm, visitor.ids)
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
        let (norm, ids) = grad_norm(&layer, &grads_of([1.0, 2.0, 2.0, 0.0], [0.0, 4.0]));
        assert_eq!((norm, ids.len()), (5.0, 2));
        assert!(
            grad_norm(&layer, &grads_of([1.0, f32::NAN, 2.0, 0.0], [0.0, 4.0]))
                .0
                .is_nan()
        );
        assert_eq!(grad_norm(&layer, &GradientsParams::new()), (0.0, vec![]));
    }

    /// The factor every gradient is scaled by comes from the norm over
    /// both parameters: 5 against a limit of 1 gives 1 / 5.000001.
    #[test]
    fn clipping_reads_the_global_norm() {
        let mut layer = layer();
        let mut guard = GuardedAdamW::new(0.0, 1.0, true);
        let grads = grads_of(&layer, [1.0, 2.0, 2.0, 0.0], [0.0, 4.0]);
        assert_eq!(guard.step(0.1, &mut layer, 1.0, grads), 5.0);
        let clip = f32::from_bits(guard.controls.clip.load(Ordering::Relaxed));
        assert!((clip - 0.199_999_96).abs() < 1e-8, "{clip}");
    }

    /// After a NaN loss the weights are what they were before the last
    /// update, and only that one update is taken back; the moments keep
    /// its gradient, so the next finite step lands where it would have
    /// from those weights with that gradient seen and not applied.
    #[test]
    fn the_guard_takes_the_last_update_back() {
        let start = layer();
        let first = [0.3, -0.2, 0.1, 0.5];
        let huge = || grads_of(&start, [90.0; 4], [-70.0; 2]);
        let (mut undone, mut guard) = (start.clone(), GuardedAdamW::new(0.01, 1.0, true));
        let (mut reference, mut seen) = (start.clone(), GuardedAdamW::new(0.01, 1.0, true));
        for (model, optim) in [(&mut undone, &mut guard), (&mut reference, &mut seen)] {
            optim.step(0.1, model, 1.0, grads_of(&start, first, [0.1, 0.2]));
        }
        let after_first = weights(&undone);
        // The reference's optimizer sees the huge gradients; its weights
        // stay where the first update left them.
        guard.step(0.1, &mut undone, 1.0, huge());
        seen.step(0.1, &mut reference.clone(), 1.0, huge());
        assert!(weights(&undone)[0] < after_first[0] - 0.09, "{:?}", weights(&undone));
        guard.step(0.1, &mut undone, f64::NAN, grads_of(&start, first, [0.1, 0.2]));
        crate::testutil::assert_close("taken back", &weights(&undone), &after_first, 1e-6);
        guard.step(0.1, &mut undone, f64::NAN, grads_of(&start, first, [0.1, 0.2]));
        crate::testutil::assert_close("taken back once", &weights(&undone), &after_first, 1e-6);
        for (model, optim) in [(&mut undone, &mut guard), (&mut reference, &mut seen)] {
            optim.step(0.1, model, 1.0, grads_of(&start, [-0.4, 0.2, 0.3, 0.1], [0.0, 0.3]));
        }
        crate::testutil::assert_close("next step", &weights(&undone), &weights(&reference), 1e-6);
    }

    /// At a learning rate above `COMPUTED_UP_TO` the copy is what comes
    /// back: the weights and the moments exactly, so the next finite step
    /// lands where it would have had that update never happened.
    #[test]
    fn above_the_limit_a_copy_restores_weights_and_moments() {
        let start = layer();
        let first = [0.3, -0.2, 0.1, 0.5];
        let (mut undone, mut guard) = (start.clone(), GuardedAdamW::new(0.0, 1.0, true));
        let (mut straight, mut reference) = (start.clone(), GuardedAdamW::new(0.0, 1.0, true));
        for (model, optim) in [(&mut undone, &mut guard), (&mut straight, &mut reference)] {
            optim.step(0.1, model, 1.0, grads_of(&start, first, [0.1, 0.2]));
        }
        let after_first = weights(&undone);
        guard.step(1e30, &mut undone, 1.0, grads_of(&start, [90.0; 4], [-70.0; 2]));
        assert!(weights(&undone)[0] < -1e29, "{:?}", weights(&undone));
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
        assert!(guard.last.is_none(), "nothing is kept to take back");
    }
}
