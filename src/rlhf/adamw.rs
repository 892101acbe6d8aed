//! AdamW as burn's `Optimizer`, each parameter's step one
//! `kernels::adamw` call. Gradients are clipped by their global norm over
//! every parameter, as TRL and OpenRLHF clip them: the norm needs every
//! gradient, which burn's per-parameter `step` never sees together, so the
//! NaN guard (which computes it anyway) sets the factor before each update.
//! The state is burn's `AdamWState`, so optimizer files stay what they were.
//!
//! The same optimizer also takes its last update back (`Controls::undo`):
//! the moments it leaves hold that update's direction, so the weights
//! before it are computed from the weights after, with no copy kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use burn::optim::{AdamW, AdamWState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use crate::kernels::adamw::{Step, adamw_step, before_step};

/// What the NaN guard sets before it calls burn's per-parameter `step`.
pub struct Controls {
    /// The factor every gradient of the next update is scaled by, as f32 bits.
    pub clip: AtomicU32,
    /// Whether the next `step` takes each parameter's last update back
    /// (its gradient is then ignored) rather than making a new one.
    pub undo: AtomicBool,
}

#[derive(Clone)]
pub struct ClippedAdamW {
    weight_decay: f32,
    controls: Arc<Controls>,
}

impl ClippedAdamW {
    pub fn new(weight_decay: f32) -> Self {
        let controls = Controls {
            clip: AtomicU32::new(1.0f32.to_bits()),
            undo: AtomicBool::new(false),
        };
        Self {
            weight_decay,
            controls: Arc::new(controls),
        }
    }

    /// Where the clipping factor and the direction are set.
    pub fn controls(&self) -> Arc<Controls> {
        self.controls.clone()
    }
}

/// torch's `clip_grad_norm_` factor: gradients of global norm `norm` are
/// scaled to at most `max_norm`.
pub fn clip_factor(norm: f64, max_norm: f32) -> f32 {
    (f64::from(max_norm) / (norm + 1e-6)).min(1.0) as f32
}

impl Optimizer for ClippedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let step = |time: usize| Step {
            clip: f32::from_bits(self.controls.clip.load(Ordering::Relaxed)),
            lr: lr as f32,
            weight_decay: self.weight_decay,
            time: time as i32,
        };
        if self.controls.undo.load(Ordering::Relaxed) {
            // A parameter never updated has nothing to take back.
            let tensor = match &state {
                Some(s) => {
                    let s = &s.momentum;
                    before_step(tensor, s.moment_1.clone(), s.moment_2.clone(), step(s.time))
                }
                None => tensor,
            };
            return (tensor, state);
        }
        let shape = tensor.shape();
        let n = shape.num_elements();
        let (time, m, v) = match state {
            Some(s) => (s.momentum.time + 1, s.momentum.moment_1, s.momentum.moment_2),
            None => (
                1,
                Tensor::zeros(shape.clone(), &tensor.device()),
                Tensor::zeros(shape.clone(), &tensor.device()),
            ),
        };
        let flat = |t: Tensor<D>| t.reshape([n]);
        let [p, m, v] = adamw_step(flat(tensor), flat(grad), flat(m), flat(v), step(time));
        let shaped = |t: Tensor<1>| t.reshape(shape.clone());
        let momentum = AdaptiveMomentumState {
            time,
            moment_1: shaped(m),
            moment_2: shaped(v),
            max_moment_2: None,
        };
        (shaped(p), Some(AdamWState { momentum }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::adamw::{BETA_1, BETA_2, EPSILON};
    use burn::optim::AdamWConfig;

    /// A thousand values in [−1, 1), a different pattern for each `k`.
    fn tensor(k: usize) -> Tensor<1> {
        let values: Vec<f32> = (0..1000).map(|i| ((i * k) % 101) as f32 / 50.0 - 1.0).collect();
        Tensor::from_data(burn::tensor::TensorData::new(values, [1000]), &Device::flex())
    }

    fn v(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// torch's factor: 1 under the limit, max / (norm + 1e-6) over it:
    /// 1 / 5.000001 = 0.19999996, 2 / 4.000001 = 0.49999988.
    #[test]
    fn clip_factor_by_hand() {
        assert_eq!(clip_factor(0.5, 1.0), 1.0);
        assert!((clip_factor(5.0, 1.0) - 0.199_999_96).abs() < 1e-8);
        assert!((clip_factor(4.0, 2.0) - 0.499_999_88).abs() < 1e-8);
    }

    /// Three steps agree with burn's own AdamW (same constants, no
    /// clipping) on the weights and both moments.
    #[test]
    fn steps_agree_with_burns_adamw() {
        let ours = ClippedAdamW::new(0.01);
        let burns = AdamWConfig::new()
            .with_beta_1(BETA_1)
            .with_beta_2(BETA_2)
            .with_epsilon(EPSILON)
            .with_weight_decay(0.01)
            .build();
        let (mut a, mut b) = ((tensor(7), None), (tensor(7), None));
        for k in 0..3 {
            a = ours.step(1e-2, a.0, tensor(13 + k), a.1);
            b = burns.step(1e-2, b.0, tensor(13 + k), b.1);
        }
        crate::testutil::assert_close("weights", &v(a.0), &v(b.0), 1e-6);
        let (a, b) = (a.1.unwrap().momentum, b.1.unwrap().momentum);
        crate::testutil::assert_close("second moment", &v(a.moment_2), &v(b.moment_2), 1e-7);
    }

    /// Three steps, then the undoing step: the weights are those after two
    /// steps and the moments and step count are left as the third made them.
    #[test]
    fn an_undoing_step_takes_the_last_update_back() {
        let optim = ClippedAdamW::new(0.01);
        let mut at = (tensor(7), None);
        for k in 0..2 {
            at = optim.step(1e-2, at.0, tensor(13 + k), at.1);
        }
        let after_two = v(at.0.clone());
        let (p, state) = optim.step(1e-2, at.0, tensor(15), at.1);
        let moments = state.clone().unwrap().momentum;
        optim.controls().undo.store(true, Ordering::Relaxed);
        let (p, state) = optim.step(1e-2, p, tensor(99), state);
        crate::testutil::assert_close("weights", &v(p), &after_two, 1e-6);
        let kept = state.unwrap().momentum;
        assert_eq!(kept.time, 3);
        assert_eq!(v(kept.moment_1), v(moments.moment_1));
        assert_eq!(v(kept.moment_2), v(moments.moment_2));
    }
}
