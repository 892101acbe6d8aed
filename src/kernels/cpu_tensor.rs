//! What the CPU backend's fused operations share: an f32 tensor read as a
//! slice, and a new f32 tensor to write into.

use std::mem::MaybeUninit;

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};

/// The elements of a contiguous f32 tensor.
pub fn f32s(t: &FlexTensor) -> &[f32] {
    assert_eq!(t.dtype(), DType::F32, "the fused CPU operations run on f32 tensors");
    t.as_slice::<f32>().expect("contiguous")
}

/// A zero-filled f32 tensor. `FlexTensor::empty` allocates bytes and then
/// copies them into a second, aligned allocation; a vector of f32 is
/// aligned for f32 already and becomes the tensor's storage as it is.
pub fn zeros(shape: Shape) -> FlexTensor {
    let n = shape.num_elements();
    FlexTensor::from_data(TensorData::new(vec![0.0f32; n], shape))
}

/// A new f32 tensor of `shape` that `fill` writes in full, handed over
/// without being zeroed first (zeroing is a pass of its own over outputs
/// of megabytes, all of it overwritten), and what `fill` returned.
///
/// # Safety
/// `fill` must write every element of the slice it is given.
pub unsafe fn written<R>(shape: Shape, fill: impl FnOnce(&mut [MaybeUninit<f32>]) -> R) -> (FlexTensor, R) {
    let n = shape.num_elements();
    let mut out = Vec::<f32>::with_capacity(n);
    let result = fill(&mut out.spare_capacity_mut()[..n]);
    // SAFETY: the capacity is at least `n`, and `fill` has written each of
    // the first `n` elements, as the caller guarantees.
    unsafe { out.set_len(n) };
    (FlexTensor::from_data(TensorData::new(out, shape)), result)
}

/// The backward pass of a per-row operation with `K` parameter vectors of
/// the row's length (a norm's γ, β): `row(x, g, dx, sums)` writes one
/// row's ∂L/∂x and adds its terms into the parameters' gradients. Rows go
/// in tasks of `rows`; each task sums into its own vectors, which are then
/// added in task order, so a step's result does not depend on how the
/// tasks were scheduled. Returns ∂L/∂x (`x`'s shape) and the `K` sums.
///
/// # Safety
/// `row` must write every element of its `dx`.
pub unsafe fn row_backward<const K: usize>(
    (x, g): (&FlexTensor, &FlexTensor),
    rows: usize,
    row: impl Fn(&[f32], &[f32], &mut [MaybeUninit<f32>], &mut [Vec<f32>; K]) + Sync,
) -> (FlexTensor, [Vec<f32>; K]) {
    use rayon::prelude::*;
    let d = x.shape()[1];
    let (xs, gs) = (f32s(x), f32s(g));
    let fill = |dx: &mut [MaybeUninit<f32>]| -> Vec<[Vec<f32>; K]> {
        dx.par_chunks_mut(rows * d)
            .zip(xs.par_chunks(rows * d))
            .zip(gs.par_chunks(rows * d))
            .map(|((dx, x), g)| {
                let mut sums = std::array::from_fn(|_| vec![0.0; d]);
                for ((dx, x), g) in dx.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
                    row(x, g, dx, &mut sums);
                }
                sums
            })
            .collect()
    };
    // SAFETY: `row` writes each element of its row, as the caller guarantees.
    let (dx, partials) = unsafe { written(x.shape(), fill) };
    let mut sums: [Vec<f32>; K] = std::array::from_fn(|_| vec![0.0; d]);
    for partial in partials {
        for (sum, part) in sums.iter_mut().zip(partial) {
            sum.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
    }
    (dx, sums)
}

/// A slice of initialised values, to hand to a kernel that writes its
/// output through `MaybeUninit` (tests call kernels on plain arrays).
/// Sound as long as only initialised values are written through it, which
/// is all the kernels write.
#[cfg(test)]
pub fn as_uninit(x: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: MaybeUninit<f32> has f32's layout; see above for writes.
    unsafe { &mut *(x as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// A matrix operand inside a slice: element (r, c) sits at `r·stride + c`,
/// or at `c·stride + r` when `transposed` (the slice holds the matrix's
/// transpose row-major).
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    pub data: &'a [f32],
    pub stride: usize,
    pub transposed: bool,
}

impl<'a> Matrix<'a> {
    pub fn rows(data: &'a [f32], stride: usize) -> Self {
        Self {
            data,
            stride,
            transposed: false,
        }
    }

    /// The transpose of the row-major matrix in `data`.
    pub fn t(data: &'a [f32], stride: usize) -> Self {
        Self {
            data,
            stride,
            transposed: true,
        }
    }

    /// (column stride, row stride).
    fn strides(self) -> (isize, isize) {
        if self.transposed {
            (self.stride as isize, 1)
        } else {
            (1, self.stride as isize)
        }
    }

    /// Whether a `rows × cols` matrix fits in the slice.
    fn holds(self, rows: usize, cols: usize) -> bool {
        let (cs, rs) = self.strides();
        rows == 0 || cols == 0 || ((rows - 1) * rs as usize + (cols - 1) * cs as usize) < self.data.len()
    }
}

/// A new tensor of `shape` holding `lhs·rhs`, where `rhs` has as many
/// columns as `shape`'s last dimension and `k` rows. The product writes
/// every element of its fresh output, so the output is not zeroed first
/// (zeroing was a pass of its own over every gradient the linear layers
/// produce).
pub fn product_tensor(shape: Shape, k: usize, lhs: Matrix, rhs: Matrix, threads: Threads) -> FlexTensor {
    let n = shape[shape.num_dims() - 1];
    let m = shape.num_elements() / n.max(1);
    let fill = |out: &mut [MaybeUninit<f32>]| {
        let dst = Destination {
            ptr: out.as_mut_ptr().cast(),
            len: out.len(),
        };
        // SAFETY: `dst` is the slice `out`, borrowed mutably here; it is
        // written, never read, as `accumulate` is false.
        unsafe { product_into((m, n, k), dst, n, lhs, rhs, 1.0, false, threads) }
    };
    // SAFETY: neither kernel reads a destination it is told not to
    // accumulate into, and both write every element of it (zeros when
    // k = 0).
    unsafe { written(shape, fill).0 }
}

/// Where a product runs.
#[derive(Clone, Copy, PartialEq)]
pub enum Threads {
    /// On the calling thread.
    One,
    /// Split over the thread pool when it has at least `PARALLEL_MACS`
    /// multiply-adds.
    Pool,
}

const PARALLEL_MACS: usize = 1 << 21;

/// `dst[m×n] = alpha·lhs·rhs` (`lhs` m×k, `rhs` k×n), plus `dst`'s own
/// values when `accumulate`; `dst` is row-major with row stride `dst_rs`.
/// Runs on our own kernels where the CPU has their features and the shape
/// suits them (`gemm_rows`, then `gemm_avx2`), else on the gemm crate's.
#[allow(clippy::too_many_arguments)]
pub fn product(
    dims: (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    lhs: Matrix,
    rhs: Matrix,
    alpha: f32,
    accumulate: bool,
    threads: Threads,
) {
    let dst = Destination {
        ptr: dst.as_mut_ptr(),
        len: dst.len(),
    };
    // SAFETY: `dst` is the slice, borrowed mutably here, and initialised.
    unsafe { product_into(dims, dst, dst_rs, lhs, rhs, alpha, accumulate, threads) }
}

/// Where a product writes: a slice's start and length, which may not be
/// initialised when the product does not accumulate into it.
#[derive(Clone, Copy)]
struct Destination {
    ptr: *mut f32,
    len: usize,
}

/// `product` into `dst`.
///
/// # Safety
/// `dst` is valid for writes of `len` elements and aliases nothing else
/// for the call; its elements are initialised when `accumulate`.
#[allow(clippy::too_many_arguments)]
unsafe fn product_into(
    (m, n, k): (usize, usize, usize),
    dst: Destination,
    dst_rs: usize,
    lhs: Matrix,
    rhs: Matrix,
    alpha: f32,
    accumulate: bool,
    threads: Threads,
) {
    // The product reads and writes only inside the slices it is given.
    let reach = if m == 0 || n == 0 { 0 } else { (m - 1) * dst_rs + n };
    assert!(reach <= dst.len, "product: destination too small");
    assert!(lhs.holds(m, k) && rhs.holds(k, n), "product: operand too small");
    let own_thread = super::own_thread::kept();
    let parallel = threads == Threads::Pool && m * n * k >= PARALLEL_MACS && !own_thread;
    // A decoding team meets at the products of its layers' weights, which
    // are the ones the pool may split.
    #[cfg(target_arch = "x86_64")]
    let meet = threads == Threads::Pool && super::team::meeting();
    #[cfg(target_arch = "x86_64")]
    if !lhs.transposed && rhs.transposed && super::gemm_rows::suits((m, n, k), meet, own_thread) {
        use super::gemm_rows::{Lines, Output};
        let lines = |x: Matrix| Lines {
            ptr: x.data.as_ptr(),
            stride: x.stride,
        };
        let out = Output {
            ptr: dst.ptr,
            ldc: dst_rs,
        };
        // SAFETY: as below; the left operand's rows and the right's
        // columns are each contiguous, `stride` apart.
        unsafe {
            super::gemm_rows::product(
                (m, n, k),
                lines(lhs),
                lines(rhs),
                out,
                alpha,
                accumulate,
                parallel,
                meet,
            )
        };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::gemm_avx2::suits((m, n, k)) {
        use super::gemm_avx2::{Operand, Output};
        let operand = |x: Matrix| {
            let (cs, rs) = x.strides();
            Operand {
                ptr: x.data.as_ptr(),
                rs: rs as usize,
                cs: cs as usize,
            }
        };
        let out = Output {
            ptr: dst.ptr,
            ldc: dst_rs,
        };
        // SAFETY: the CPU has the kernel's features; the assertions above
        // bound every element each operand's strides reach within its
        // slice, and the destination's within its own; the caller
        // guarantees the destination aliases nothing, and that it is
        // initialised where the kernel reads it (when accumulating).
        unsafe { super::gemm_avx2::product((m, n, k), operand(lhs), operand(rhs), out, alpha, accumulate, parallel) };
        return;
    }
    // SAFETY: as above.
    unsafe { crate_product((m, n, k), dst, dst_rs, lhs, rhs, alpha, accumulate, parallel) };
}

/// `product` on the gemm crate, once its operands are checked.
///
/// # Safety
/// As `product_into`'s, with the bounds already checked.
#[allow(clippy::too_many_arguments)]
unsafe fn crate_product(
    (m, n, k): (usize, usize, usize),
    dst: Destination,
    dst_rs: usize,
    lhs: Matrix,
    rhs: Matrix,
    alpha: f32,
    accumulate: bool,
    parallel: bool,
) {
    let ((lhs_cs, lhs_rs), (rhs_cs, rhs_rs)) = (lhs.strides(), rhs.strides());
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `product_into` has bounded every element each operand's
    // strides reach within its slice and the destination's within its
    // own; the caller guarantees the destination aliases nothing and is
    // initialised when it is read (when accumulating).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.data.as_ptr(),
            rhs_cs,
            rhs_rs,
            1.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [[1, 2], [3, 4]] · [[5, 6, 7], [8, 9, 10]] by hand, with the right
    /// operand read transposed; and an empty inner dimension gives zeros
    /// (the output is not zeroed beforehand, so gemm must write them).
    #[test]
    fn product_tensor_by_hand() {
        let (a, bt) = ([1.0, 2.0, 3.0, 4.0], [5.0, 8.0, 6.0, 9.0, 7.0, 10.0]);
        let out = product_tensor(
            Shape::new([2, 3]),
            2,
            Matrix::rows(&a, 2),
            Matrix::t(&bt, 2),
            Threads::One,
        );
        assert_eq!(f32s(&out), [21.0, 24.0, 27.0, 47.0, 54.0, 61.0]);
        let empty = product_tensor(
            Shape::new([2, 3]),
            0,
            Matrix::rows(&[], 0),
            Matrix::rows(&[], 3),
            Threads::One,
        );
        assert_eq!(f32s(&empty), [0.0; 6]);
    }

    /// The gemm crate (the path on CPUs without AVX2) and `product` agree
    /// on a product of many tiles with a transposed operand, scaling and
    /// accumulation.
    #[test]
    fn crate_path_agrees() {
        let (m, n, k) = (37, 70, 300);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 13) % 29) as f32 / 7.0 - 2.0).collect();
        let bt: Vec<f32> = (0..k * n).map(|i| ((i * 7) % 31) as f32 / 9.0 - 1.5).collect();
        let (lhs, rhs) = (Matrix::rows(&a, k), Matrix::t(&bt, k));
        let start: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
        let (mut ours, mut theirs) = (start.clone(), start);
        product((m, n, k), &mut ours, n, lhs, rhs, 0.5, true, Threads::Pool);
        let dst = Destination {
            ptr: theirs.as_mut_ptr(),
            len: theirs.len(),
        };
        // SAFETY: `theirs` is initialised, borrowed mutably, and holds the
        // product's reach (the sizes above).
        unsafe { crate_product((m, n, k), dst, n, lhs, rhs, 0.5, true, true) };
        for (x, y) in ours.iter().zip(&theirs) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{x} against {y}");
        }
    }
}
