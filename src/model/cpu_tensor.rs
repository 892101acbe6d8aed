//! What the CPU backend's fused operations share: an f32 tensor read as a
//! slice, and a new f32 tensor to write into.

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
/// columns as `shape`'s last dimension and `k` rows.
pub fn product_tensor(shape: Shape, k: usize, lhs: Matrix, rhs: Matrix, threads: Threads) -> FlexTensor {
    let n = shape[shape.num_dims() - 1];
    let m = shape.num_elements() / n;
    let mut out = zeros(shape);
    product((m, n, k), out.storage_mut(), n, lhs, rhs, 1.0, false, threads);
    out
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
#[allow(clippy::too_many_arguments)]
pub fn product(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    lhs: Matrix,
    rhs: Matrix,
    alpha: f32,
    accumulate: bool,
    threads: Threads,
) {
    // The product reads and writes only inside the slices it is given.
    assert!(Matrix::rows(dst, dst_rs).holds(m, n), "product: destination too small");
    assert!(lhs.holds(m, k) && rhs.holds(k, n), "product: operand too small");
    let ((lhs_cs, lhs_rs), (rhs_cs, rhs_rs)) = (lhs.strides(), rhs.strides());
    let parallelism = if threads == Threads::Pool && m * n * k >= PARALLEL_MACS {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertions above bound every element each operand's
    // strides reach within its slice; `dst` is borrowed mutably, so it does
    // not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
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
