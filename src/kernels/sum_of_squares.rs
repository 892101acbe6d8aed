//! Σ x² over a tensor: the gradients' norms behind clipping and the NaN
//! guard. Composed, squaring writes a copy of every gradient only for the
//! sum to read it back; the CPU's version is one pass in f64.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

use super::composed_elsewhere;

/// Σ x² of every element, as a one-element tensor (f64 on the CPU, the
/// tensor's own type elsewhere) so that a caller adding many of them reads
/// the device once.
pub fn sum_of_squares<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    let n = x.shape().num_elements();
    Tensor::from_dispatch(<Dispatch as FusedSumOfSquares>::sum_of_squares(
        x.reshape([n]).into_dispatch(),
    ))
}

#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(any(feature = "wgpu", feature = "cuda")),
    LibTorch: cfg(feature = "tch")
)]
pub trait FusedSumOfSquares: Backend {
    /// `[n]` → `[1]`.
    fn sum_of_squares(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed::<Self>(x)
    }
}

/// A square and a sum.
fn composed<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::float_sum(B::float_mul(x.clone(), x))
}

composed_elsewhere!(FusedSumOfSquares);

/// The CPU's version.
#[cfg(feature = "flex")]
mod cpu {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::tensor::TensorData;
    use rayon::prelude::*;

    use super::{FusedSumOfSquares, composed};
    use crate::kernels::cpu_tensor::f32s;
    use crate::kernels::path;

    /// Elements per parallel task.
    pub const CHUNK: usize = 1 << 15;

    impl FusedSumOfSquares for Flex {
        fn sum_of_squares(x: FlexTensor) -> FlexTensor {
            if path::composed() {
                return composed::<Self>(x);
            }
            let sum = host(f32s(&x.to_contiguous()));
            FlexTensor::from_data(TensorData::new(vec![sum], [1]))
        }
    }

    /// Σ x² in f64, over chunks in parallel whose sums add in order: the
    /// result does not depend on how the pool split the work.
    pub fn host(x: &[f32]) -> f64 {
        x.par_chunks(CHUNK)
            .map(|c| {
                crate::kernels::simd::widest(
                    #[inline(always)]
                    || lanes(c),
                )
            })
            .collect::<Vec<_>>()
            .iter()
            .sum()
    }

    /// Σ x² of one chunk in eight running f64 sums (element i goes to sum
    /// i mod 8), added at the end. One running sum is a chain of dependent
    /// additions that cannot vectorize; eight independent ones do, and
    /// still add in a fixed order.
    #[inline(always)]
    fn lanes(x: &[f32]) -> f64 {
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
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::cpu::{CHUNK, host};
    use super::*;
    use burn::tensor::Device;

    /// 1² + 2² + … + 19² = 19·20·39/6 = 2470: two whole groups of eight
    /// and a remainder of three. Over more than one task, 0.5² per element;
    /// a NaN anywhere gives NaN.
    #[test]
    fn sum_of_squares_by_hand() {
        let x: Vec<f32> = (1..=19).map(|v| v as f32).collect();
        assert_eq!(host(&x), 2470.0);
        let mut halves = vec![0.5f32; 2 * CHUNK + 5];
        assert_eq!(host(&halves), 0.25 * (2 * CHUNK + 5) as f64);
        halves[CHUNK + 3] = f32::NAN;
        assert!(host(&halves).is_nan());
        assert_eq!(host(&[]), 0.0);
        let t = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &Device::flex());
        assert_eq!(sum_of_squares(t).into_scalar::<f64>(), 30.0);
    }
}
