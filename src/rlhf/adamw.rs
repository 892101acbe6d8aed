//! AdamW with each parameter's gradient clipped by its own norm, as one
//! pass over the parameter on the CPU.
//!
//! burn's AdamW behind its norm clipping makes about twenty passes over
//! every parameter (the norm, the scaling, each moment's products and sums,
//! the bias corrections, the square root, the division, the decay), each
//! allocating a tensor; on the CPU, where a PPO minibatch step updates two
//! models, that was a seventh of the step. Here the norm is one pass and
//! the update another. Elsewhere the same math runs as burn's own
//! operations. The state is burn's `AdamWState`, so optimizer files stay
//! what they were.
//!
//! Per element, with c = min(1, max_norm / ‖g‖) and t the step count:
//! m ← β₁m + (1 − β₁)·cg, v ← β₂v + (1 − β₂)·(cg)²,
//! p ← p·(1 − lr·λ) − lr·(m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε).

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};
use rayon::prelude::*;

const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;
/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

#[derive(Clone)]
pub struct ClippedAdamW {
    weight_decay: f32,
    max_grad_norm: f32,
    /// burn's AdamW with the same constants, for devices other than the CPU.
    composed: AdamW,
}

impl ClippedAdamW {
    pub fn new(weight_decay: f32, max_grad_norm: f32) -> Self {
        let composed = AdamWConfig::new()
            .with_beta_1(BETA_1)
            .with_beta_2(BETA_2)
            .with_epsilon(EPSILON)
            .with_weight_decay(weight_decay)
            .build();
        Self {
            weight_decay,
            max_grad_norm,
            composed,
        }
    }

    /// burn's clipping and AdamW, operation by operation.
    fn composed_step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamWState<D>>,
    ) -> (Tensor<D>, Option<AdamWState<D>>) {
        let clipped = GradientClippingConfig::Norm(self.max_grad_norm)
            .init()
            .clip_gradient(grad);
        self.composed.step(lr, tensor, clipped, state)
    }

    /// The same step on the CPU backend's own buffers, one pass for the
    /// norm and one for the update. Read through burn's host data instead,
    /// every weight (shared with the NaN guard's copy of the model) and
    /// every moment was copied twice on the way out and once on the way in,
    /// a third of the optimizer's time.
    #[cfg(feature = "flex")]
    fn fused_step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamWState<D>>,
    ) -> (Tensor<D>, Option<AdamWState<D>>) {
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
        let flat = |t: Tensor<D>| t.reshape([n]).into_dispatch();
        let (p, m, v) = <burn::backend::Dispatch as flex::FusedAdamW>::adamw_step(
            flat(tensor),
            flat(grad),
            flat(m),
            flat(v),
            self.max_grad_norm,
            lr as f32,
            self.weight_decay,
            time as i32,
        );
        let shaped = |t| Tensor::<1>::from_dispatch(t).reshape(shape.clone());
        let momentum = AdaptiveMomentumState {
            time,
            moment_1: shaped(m),
            moment_2: shaped(v),
            max_moment_2: None,
        };
        (shaped(p), Some(AdamWState { momentum }))
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Backend, Flex, TensorMetadata, backend_extension};
    use rayon::prelude::*;

    use super::{BETA_1, BETA_2, CHUNK, Step, sum_of_squares};
    use crate::model::cpu_tensor::{f32s, owned, written};

    #[backend_extension(Flex)]
    pub trait FusedAdamW: Backend {
        /// One clipped AdamW step at step count `time` on `[n]` tensors:
        /// the parameter, its gradient and both moments in, the new
        /// parameter and moments out.
        #[allow(clippy::too_many_arguments)]
        fn adamw_step(
            p: FloatTensor<Self>,
            g: FloatTensor<Self>,
            m: FloatTensor<Self>,
            v: FloatTensor<Self>,
            max_grad_norm: f32,
            lr: f32,
            weight_decay: f32,
            time: i32,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    }

    impl FusedAdamW for Flex {
        fn adamw_step(
            p: FlexTensor,
            g: FlexTensor,
            m: FlexTensor,
            v: FlexTensor,
            max_grad_norm: f32,
            lr: f32,
            weight_decay: f32,
            time: i32,
        ) -> (FlexTensor, FlexTensor, FlexTensor) {
            let (p, g) = (p.to_contiguous(), g.to_contiguous());
            // The moments are the optimizer's alone, so they update in
            // place (a shared one would be copied first).
            let (mut m, mut v) = (owned(m), owned(v));
            let (ps, gs) = (f32s(&p), f32s(&g));
            let norm = sum_of_squares(gs).sqrt() as f32;
            let step = Step {
                clip: (max_grad_norm / (norm + f32::MIN_POSITIVE)).min(1.0),
                lr,
                decay: 1.0 - lr * weight_decay,
                bias_1: 1.0 - BETA_1.powi(time),
                bias_2: 1.0 - BETA_2.powi(time),
            };
            let (ms, vs) = (m.storage_mut::<f32>(), v.storage_mut::<f32>());
            assert!(
                ms.len() == ps.len() && vs.len() == ps.len(),
                "adamw_step: moments of another size"
            );
            let fill = |out: &mut [f32]| {
                out.par_chunks_mut(CHUNK)
                    .zip(ps.par_chunks(CHUNK))
                    .zip(gs.par_chunks(CHUNK))
                    .zip(ms.par_chunks_mut(CHUNK))
                    .zip(vs.par_chunks_mut(CHUNK))
                    .for_each(|((((out, p), g), m), v)| step.apply(p, g, m, v, out))
            };
            // SAFETY: `apply` writes every element of its output chunk.
            let p = unsafe { written(p.shape(), fill).0 };
            (p, m, v)
        }
    }
}

/// Σ x² in f64, over chunks in parallel whose sums add in order: the
/// result does not depend on how the pool split the work.
pub fn sum_of_squares(x: &[f32]) -> f64 {
    x.par_chunks(CHUNK)
        .map(|c| crate::model::simd::widest(|| lane_sum_of_squares(c)))
        .collect::<Vec<_>>()
        .iter()
        .sum()
}

/// Σ x² of one chunk in eight running f64 sums (element i goes to sum
/// i mod 8), added at the end. One running sum is a chain of dependent
/// additions that cannot vectorize; eight independent ones do (8× faster
/// here, where the two norms of a PPO step had cost more than the update)
/// and still add in a fixed order.
#[inline(always)]
fn lane_sum_of_squares(x: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let whole = x.chunks_exact(8);
    let rest: f64 = whole.remainder().iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    for eight in whole {
        for (lane, &v) in lanes.iter_mut().zip(eight) {
            *lane += f64::from(v) * f64::from(v);
        }
    }
    lanes.iter().sum::<f64>() + rest
}

/// One step's scalars.
struct Step {
    clip: f32,
    lr: f32,
    decay: f32,
    bias_1: f32,
    bias_2: f32,
}

impl Step {
    /// Updates the moments in place and writes the new parameter to `out`.
    fn apply(&self, p: &[f32], g: &[f32], m: &mut [f32], v: &mut [f32], out: &mut [f32]) {
        crate::model::simd::widest(|| {
            for ((((out, &p), &g), m), v) in out.iter_mut().zip(p).zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = g * self.clip;
                *m = BETA_1 * *m + (1.0 - BETA_1) * g;
                *v = BETA_2 * *v + (1.0 - BETA_2) * g * g;
                let update = (*m / self.bias_1) / ((*v / self.bias_2).sqrt() + EPSILON);
                *out = p * self.decay - self.lr * update;
            }
        })
    }
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
        #[cfg(feature = "flex")]
        if crate::device::is_cpu(&tensor.device()) {
            return self.fused_step(lr, tensor, grad, state);
        }
        self.composed_step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::assert_close;
    use burn::tensor::TensorData;

    fn vec1(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// 1² + 2² + … + 19² = 19·20·39/6 = 2470: two whole groups of eight
    /// and a remainder of three. Over more than one task, 0.5² per element;
    /// a NaN anywhere gives NaN.
    #[test]
    fn sum_of_squares_by_hand() {
        let x: Vec<f32> = (1..=19).map(|v| v as f32).collect();
        assert_eq!(sum_of_squares(&x), 2470.0);
        let mut halves = vec![0.5f32; 2 * CHUNK + 5];
        assert_eq!(sum_of_squares(&halves), 0.25 * (2 * CHUNK + 5) as f64);
        halves[CHUNK + 3] = f32::NAN;
        assert!(sum_of_squares(&halves).is_nan());
        assert_eq!(sum_of_squares(&[]), 0.0);
    }

    /// One step worked by hand: g = [3, 4] has norm 5, clipped to norm 1
    /// (c = 1/5): cg = [0.6, 0.8]. At t = 1 the bias corrections undo the
    /// (1 − β) factors, so m̂ = cg and v̂ = (cg)², and the update is
    /// cg / (|cg| + ε) ≈ 1 per element: p = [1, −1]·(1 − 0.1·0.5) − 0.1·[1, 1]
    /// = [0.85, −1.05] (to ε's 1e-5).
    #[test]
    fn first_step_by_hand() {
        let device = Device::flex();
        let optim = ClippedAdamW::new(0.5, 1.0);
        let p = Tensor::<1>::from_floats([1.0, -1.0], &device);
        let g = Tensor::<1>::from_floats([3.0, 4.0], &device);
        let (p, state) = optim.step(0.1, p, g, None);
        let p = vec1(p);
        assert!((p[0] - 0.85).abs() < 1e-4 && (p[1] + 1.05).abs() < 1e-4, "{p:?}");
        let state = state.unwrap().momentum;
        assert_eq!(state.time, 1);
        let m = vec1(state.moment_1);
        assert!((m[0] - 0.06).abs() < 1e-6 && (m[1] - 0.08).abs() < 1e-6, "{m:?}");
    }

    /// Three steps of the fused path and of burn's composed clipping and
    /// AdamW agree on the weights and both moments, over more elements than
    /// one task takes, with gradients both under and over the norm limit.
    #[test]
    fn fused_steps_agree_with_burns_adamw() {
        let device = Device::flex();
        let n = 3 * CHUNK + 17;
        let pattern = |k: usize, scale: f32| -> Vec<f32> {
            (0..n).map(|i| (((i * k) % 101) as f32 / 50.0 - 1.0) * scale).collect()
        };
        let optim = ClippedAdamW::new(0.01, 40.0);
        let start = Tensor::<1>::from_data(TensorData::new(pattern(7, 1.0), [n]), &device);
        let (mut fused, mut composed) = ((start.clone(), None), (start, None));
        for (step, scale) in [(0, 0.01f32), (1, 1.0), (2, 0.1)] {
            let grad = || Tensor::<1>::from_data(TensorData::new(pattern(13 + step, scale), [n]), &device);
            fused = optim.fused_step(1e-2, fused.0, grad(), fused.1);
            composed = optim.composed_step(1e-2, composed.0, grad(), composed.1);
        }
        assert_close("weights", &vec1(fused.0), &vec1(composed.0), 1e-5);
        let (f, c) = (fused.1.unwrap().momentum, composed.1.unwrap().momentum);
        assert_eq!(f.time, c.time);
        assert_close("first moment", &vec1(f.moment_1), &vec1(c.moment_1), 1e-6);
        assert_close("second moment", &vec1(f.moment_2), &vec1(c.moment_2), 1e-7);
    }
}
