//! One AdamW step on one parameter, its gradient already scaled by the
//! clipping factor's `clip`.
//!
//! Composed, the step is about fifteen passes over the parameter (each
//! moment's products and sums, the bias corrections, the square root, the
//! division, the decay), each allocating a tensor; on the CPU, where a PPO
//! minibatch step updates two models, that was a seventh of the step. The
//! CPU's version is one pass that updates the moments in place and writes
//! the new parameter once.
//!
//! Per element, with c the clipping factor and t the step count:
//! m ← β₁m + (1 − β₁)·cg, v ← β₂v + (1 − β₂)·(cg)²,
//! p ← p·(1 − lr·λ) − lr·(m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε).
//!
//! `before_step` runs that last line backwards, for the NaN guard.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Scalar, backend_extension};
use burn::tensor::Tensor;

use super::composed_elsewhere;

pub const BETA_1: f32 = 0.9;
pub const BETA_2: f32 = 0.999;
pub const EPSILON: f32 = 1e-5;

/// One step's scalars.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// The factor the gradient is scaled by (1 when it is not clipped).
    pub clip: f32,
    pub lr: f32,
    pub weight_decay: f32,
    /// The step count, from 1.
    pub time: i32,
}

/// The parameter, first and second moments after one step: `[n]` each.
pub fn adamw_step(p: Tensor<1>, g: Tensor<1>, m: Tensor<1>, v: Tensor<1>, step: Step) -> [Tensor<1>; 3] {
    let (p, m, v) = <Dispatch as FusedAdamW>::adamw_step(
        p.into_dispatch(),
        g.into_dispatch(),
        m.into_dispatch(),
        v.into_dispatch(),
        step.clip,
        step.lr,
        step.weight_decay,
        step.time,
    );
    [p, m, v].map(Tensor::from_dispatch)
}

#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch")
)]
pub trait FusedAdamW: Backend {
    /// The parameter, its gradient and both moments in; the new parameter
    /// and moments out.
    #[allow(clippy::too_many_arguments)]
    fn adamw_step(
        p: FloatTensor<Self>,
        g: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        clip: f32,
        lr: f32,
        weight_decay: f32,
        time: i32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let step = Step {
            clip,
            lr,
            weight_decay,
            time,
        };
        composed::<Self>(p, g, m, v, step)
    }
}

/// The step from tensor operations.
fn composed<B: Backend>(
    p: FloatTensor<B>,
    g: FloatTensor<B>,
    m: FloatTensor<B>,
    v: FloatTensor<B>,
    step: Step,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let s = |x: f32| Scalar::from(x);
    let g = B::float_mul_scalar(g, s(step.clip));
    let m = B::float_add(
        B::float_mul_scalar(m, s(BETA_1)),
        B::float_mul_scalar(g.clone(), s(1.0 - BETA_1)),
    );
    let v = B::float_add(
        B::float_mul_scalar(v, s(BETA_2)),
        B::float_mul_scalar(B::float_mul(g.clone(), g), s(1.0 - BETA_2)),
    );
    let update = direction::<B>(m.clone(), v.clone(), step.time);
    let decayed = B::float_mul_scalar(p, s(1.0 - step.lr * step.weight_decay));
    let p = B::float_sub(decayed, B::float_mul_scalar(update, s(step.lr)));
    (p, m, v)
}

/// u = m̂ / (√v̂ + ε): the direction of step `time` from the moments it left.
fn direction<B: Backend>(m: FloatTensor<B>, v: FloatTensor<B>, time: i32) -> FloatTensor<B> {
    let s = |x: f32| Scalar::from(x);
    let (bias_1, bias_2) = (1.0 - BETA_1.powi(time), 1.0 - BETA_2.powi(time));
    let denominator = B::float_add_scalar(B::float_sqrt(B::float_div_scalar(v, s(bias_2))), s(EPSILON));
    B::float_div(B::float_div_scalar(m, s(bias_1)), denominator)
}

/// The parameter before `step`, which left it at `p` with moments `m` and
/// `v`: the step was p' = p·(1 − lr·λ) − lr·u, and u is read again from
/// the moments, so p = (p' + lr·u) / (1 − lr·λ), exact but for rounding.
/// (`step.clip` plays no part: the moments already hold the clipped
/// gradient.) Composed on every backend: it runs once, after a NaN.
pub fn before_step<const D: usize>(p: Tensor<D>, m: Tensor<D>, v: Tensor<D>, step: Step) -> Tensor<D> {
    let (p, m, v) = (p.into_dispatch(), m.into_dispatch(), v.into_dispatch());
    Tensor::from_dispatch(composed_before::<Dispatch>(p, m, v, step))
}

fn composed_before<B: Backend>(p: FloatTensor<B>, m: FloatTensor<B>, v: FloatTensor<B>, step: Step) -> FloatTensor<B> {
    let s = |x: f32| Scalar::from(x);
    let u = direction::<B>(m, v, step.time);
    let p = B::float_add(p, B::float_mul_scalar(u, s(step.lr)));
    B::float_div_scalar(p, s(1.0 - step.lr * step.weight_decay))
}

composed_elsewhere!(FusedAdamW);

/// The CPU's version.
#[cfg(feature = "flex")]
mod cpu {
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Flex, TensorMetadata};
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    use super::{BETA_1, BETA_2, EPSILON, FusedAdamW, Step, composed};
    use crate::kernels::cpu_tensor::{f32s, written};
    use crate::kernels::path;

    /// Elements per parallel task.
    const CHUNK: usize = 1 << 15;

    impl FusedAdamW for Flex {
        fn adamw_step(
            p: FlexTensor,
            g: FlexTensor,
            m: FlexTensor,
            v: FlexTensor,
            clip: f32,
            lr: f32,
            weight_decay: f32,
            time: i32,
        ) -> (FlexTensor, FlexTensor, FlexTensor) {
            let step = Step {
                clip,
                lr,
                weight_decay,
                time,
            };
            if path::composed() {
                return composed::<Self>(p, g, m, v, step);
            }
            let [p, g, m, v] = [p, g, m, v].map(|t| t.to_contiguous());
            let [ps, gs, ms, vs] = [&p, &g, &m, &v].map(f32s);
            assert!(
                [gs.len(), ms.len(), vs.len()] == [ps.len(); 3],
                "adamw_step: operands of different sizes"
            );
            let scalars = Scalars::of(step);
            // The new moments go to new tensors rather than over the old
            // ones: the NaN guard keeps the old ones, and an update in
            // place would first copy them (two more passes over each).
            let fill =
                |p_out: &mut [MaybeUninit<f32>], m_out: &mut [MaybeUninit<f32>], v_out: &mut [MaybeUninit<f32>]| {
                    p_out
                        .par_chunks_mut(CHUNK)
                        .zip(m_out.par_chunks_mut(CHUNK))
                        .zip(v_out.par_chunks_mut(CHUNK))
                        .zip(ps.par_chunks(CHUNK).zip(gs.par_chunks(CHUNK)))
                        .zip(ms.par_chunks(CHUNK).zip(vs.par_chunks(CHUNK)))
                        .for_each(|((((p_out, m_out), v_out), (p, g)), (m, v))| {
                            scalars.apply([p, g, m, v], [p_out, m_out, v_out])
                        })
                };
            let shape = p.shape();
            // SAFETY: `apply` writes every element of its three output
            // chunks, and the chunks cover the three outputs.
            let (p, (m, v)) = unsafe {
                written(shape.clone(), |p_out| {
                    let (m, v) = written(shape.clone(), |m_out| {
                        written(shape.clone(), |v_out| fill(p_out, m_out, v_out)).0
                    });
                    (m, v)
                })
            };
            (p, m, v)
        }
    }

    /// What every element's update reads.
    struct Scalars {
        clip: f32,
        lr: f32,
        decay: f32,
        bias_1: f32,
        bias_2: f32,
    }

    impl Scalars {
        fn of(step: Step) -> Self {
            Self {
                clip: step.clip,
                lr: step.lr,
                decay: 1.0 - step.lr * step.weight_decay,
                bias_1: 1.0 - BETA_1.powi(step.time),
                bias_2: 1.0 - BETA_2.powi(step.time),
            }
        }

        /// Writes the new parameter and moments from the old ones and the
        /// gradient, every element of each output.
        fn apply(&self, [p, g, m, v]: [&[f32]; 4], [p_out, m_out, v_out]: [&mut [MaybeUninit<f32>]; 3]) {
            crate::kernels::simd::widest(
                #[inline(always)]
                || {
                    let outputs = p_out.iter_mut().zip(m_out.iter_mut()).zip(v_out.iter_mut());
                    let inputs = p.iter().zip(g).zip(m).zip(v);
                    for (((p_out, m_out), v_out), (((&p, &g), &m), &v)) in outputs.zip(inputs) {
                        let g = g * self.clip;
                        let m = BETA_1 * m + (1.0 - BETA_1) * g;
                        let v = BETA_2 * v + (1.0 - BETA_2) * g * g;
                        let update = (m / self.bias_1) / ((v / self.bias_2).sqrt() + EPSILON);
                        p_out.write(p * self.decay - self.lr * update);
                        m_out.write(m);
                        v_out.write(v);
                    }
                },
            )
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::testutil::assert_close;
    use burn::tensor::{Device, TensorData};

    fn vec1(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// One step worked by hand with clip = 1/5 (g = [3, 4], of norm 5,
    /// clipped to norm 1): cg = [0.6, 0.8]. At t = 1 the bias corrections
    /// undo the (1 − β) factors, so m̂ = cg and v̂ = (cg)², and the update
    /// is cg / (|cg| + ε) ≈ 1 per element: p = [1, −1]·(1 − 0.1·0.5) −
    /// 0.1·[1, 1] = [0.85, −1.05] (to ε's 1e-5). Fused and composed alike.
    #[test]
    fn first_step_by_hand() {
        let device = Device::flex();
        let t = |v: [f32; 2]| Tensor::<1>::from_floats(v, &device);
        let step = Step {
            clip: 0.2,
            lr: 0.1,
            weight_decay: 0.5,
            time: 1,
        };
        let fused = adamw_step(t([1.0, -1.0]), t([3.0, 4.0]), t([0.0; 2]), t([0.0; 2]), step);
        let (p, m, v) = composed::<Dispatch>(
            t([1.0, -1.0]).into_dispatch(),
            t([3.0, 4.0]).into_dispatch(),
            t([0.0; 2]).into_dispatch(),
            t([0.0; 2]).into_dispatch(),
            step,
        );
        for [p, m, v] in [fused, [p, m, v].map(Tensor::from_dispatch)] {
            let p = vec1(p);
            assert!((p[0] - 0.85).abs() < 1e-4 && (p[1] + 1.05).abs() < 1e-4, "{p:?}");
            assert_close("m", &vec1(m), &[0.06, 0.08], 1e-6);
            assert_close("v", &vec1(v), &[0.00036, 0.00064], 1e-8);
        }
    }

    /// Three steps of the fused and the composed versions agree on the
    /// weights and both moments, over more elements than one task takes.
    #[test]
    fn fused_steps_agree_with_composed() {
        let device = Device::flex();
        let n = 3 * (1 << 15) + 17;
        let pattern = |k: usize, scale: f32| -> Vec<f32> {
            (0..n).map(|i| (((i * k) % 101) as f32 / 50.0 - 1.0) * scale).collect()
        };
        let tensor = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [n]), &device);
        let start = || [tensor(pattern(7, 1.0)), tensor(vec![0.0; n]), tensor(vec![0.0; n])];
        let (mut fused, mut other) = (start(), start());
        for (time, clip) in [(1, 1.0f32), (2, 0.3), (3, 1.0)] {
            let step = Step {
                clip,
                lr: 1e-2,
                weight_decay: 0.01,
                time,
            };
            let grad = || tensor(pattern(13 + time as usize, 0.5));
            let [p, m, v] = fused;
            fused = adamw_step(p, grad(), m, v, step);
            let [p, m, v] = other.map(Tensor::into_dispatch);
            let (p, m, v) = composed::<Dispatch>(p, grad().into_dispatch(), m, v, step);
            other = [p, m, v].map(Tensor::from_dispatch);
        }
        for ((what, f), o) in ["weights", "first moment", "second moment"]
            .iter()
            .zip(fused)
            .zip(other)
        {
            assert_close(what, &vec1(f), &vec1(o), 1e-6);
        }
    }

    /// By hand: after one step at lr 0.1 and decay 0.01, p' = 0.7 with
    /// m = 0.1 and v = 0.00025 gives m̂ = 1, v̂ = 0.25, u = 1 / 0.50001 =
    /// 1.99996, so p = (0.7 + 0.199996) / 0.999 = 0.9008969 (f32's
    /// 1 − 0.999 is 0.00099999 and moves the sixth digit).
    #[test]
    fn before_step_by_hand() {
        let device = Device::flex();
        let one = |x: f32| Tensor::<1>::from_data(TensorData::new(vec![x], [1]), &device);
        let step = Step {
            clip: 1.0,
            lr: 0.1,
            weight_decay: 0.01,
            time: 1,
        };
        let p = before_step(one(0.7), one(0.1), one(0.000_25), step);
        let p = p.into_scalar::<f32>();
        assert!((p - 0.900_896_9).abs() < 3e-6, "{p}");
    }
}
