//! A blocked f32 matrix product for x86-64 with AVX2 and FMA.
//!
//! The operands are copied ("packed") block by block into the order the
//! inner kernel reads them: a `KC × NC` block of the right operand into
//! 16-column panels, then `MC × KC` blocks of the left operand into 6-row
//! panels. The kernel keeps a 6 × 16 tile of the output in twelve vector
//! registers while it walks the shared dimension; its right panel stays in
//! the L1 cache across a whole block of left panels, which stream from L2.
//!
//! The matrix products of the fused CPU operations run here wherever the
//! CPU has these features and lacks AVX-512 (`cpu_tensor::product`); with
//! AVX-512, only products of few rows (`suits`) do.

use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of the output tile the kernel holds in registers.
const MR: usize = 6;
/// Columns of that tile: two vectors of eight.
const NR: usize = 16;
/// Depth of one packed block (the shared dimension).
const KC: usize = 256;
/// Rows of one packed block of the left operand (a multiple of `MR`).
const MC: usize = 96;
/// Columns of one packed block of the right operand (a multiple of `NR`).
const NC: usize = 4096;

/// A matrix inside memory: element (r, c) at `ptr + r·rs + c·cs`.
#[derive(Clone, Copy)]
pub struct Operand {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

impl Operand {
    unsafe fn at(self, r: usize, c: usize) -> *const f32 {
        unsafe { self.ptr.add(r * self.rs + c * self.cs) }
    }

    /// The part of the matrix from element (r, c) on.
    unsafe fn sub(self, r: usize, c: usize) -> Self {
        let ptr = unsafe { self.at(r, c) };
        Self { ptr, ..self }
    }
}

/// The packed blocks, one pair per thread, kept between products.
struct Buffers {
    lhs: Vec<__m256>,
    rhs: Vec<__m256>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = const { RefCell::new(Buffers { lhs: Vec::new(), rhs: Vec::new() }) };
}

/// A buffer of at least `floats` f32s, 32-byte aligned, with a vector to
/// spare at the end for the left packing's overlapping stores.
fn buffer(vectors: &mut Vec<__m256>, floats: usize) -> *mut f32 {
    let len = floats.div_ceil(8) + 1;
    if vectors.len() < len {
        // SAFETY: AVX is present wherever this module runs (see `product`).
        vectors.resize(len, unsafe { _mm256_setzero_ps() });
    }
    vectors.as_mut_ptr().cast()
}

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Whether a product (`m × k` by `k × n`) runs here rather than on the
/// gemm crate. Where the CPU has AVX-512, the crate's 16-lane kernels are
/// faster on every product but one kind: few rows (at most one packed
/// block, as in a decoding step) against a right operand larger than a
/// core's L2 cache (a 135M model's weights), which streams from memory
/// once whatever is done; packing each of its panels just before use, as
/// here, keeps the panel in L1. Measured on a Xeon: an SFT step 1.3×
/// faster on the crate at the default benchmark shape and 1.4× at
/// SmolLM2-135M's; generation at 135M 1.2× faster here.
pub fn suits((m, n, k): (usize, usize, usize)) -> bool {
    /// 2 MiB of f32.
    const STREAMED: usize = 1 << 19;
    available() && (!is_x86_feature_detected!("avx512f") || (m <= MC && n * k >= STREAMED))
}

/// The output: row-major from `ptr` with row stride `ldc`.
#[derive(Clone, Copy)]
pub struct Output {
    pub ptr: *mut f32,
    pub ldc: usize,
}

impl Output {
    /// The part of the output from element (r, c) on.
    unsafe fn sub(self, r: usize, c: usize) -> Self {
        let ptr = unsafe { self.ptr.add(r * self.ldc + c) };
        Self { ptr, ..self }
    }
}

// SAFETY: the operands are only read, and the parts of a split product
// write disjoint blocks of the output.
unsafe impl Sync for Operand {}
unsafe impl Sync for Output {}

/// `c[m×n] = alpha·a·b`, plus `c`'s own values when `accumulate`; when
/// `parallel`, split into one block of rows (or of columns, if there are
/// more of them) per thread of the pool.
///
/// # Safety
/// `available()` must hold; `a` (m × k), `b` (k × n) and `c` must address
/// valid memory, and `c` must not overlap either operand.
#[allow(clippy::too_many_arguments)]
pub unsafe fn product(
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    c: Output,
    alpha: f32,
    accumulate: bool,
    parallel: bool,
) {
    use rayon::prelude::*;
    let parts = if parallel { rayon::current_num_threads() } else { 1 };
    if parts < 2 {
        // SAFETY: as the caller guarantees.
        return unsafe { product_on_thread((m, n, k), a, b, c, alpha, accumulate) };
    }
    // Blocks in whole tiles, so that only the last has a partial edge.
    let (split, tile) = if m >= n { (m, MR) } else { (n, NR) };
    let len = split.div_ceil(parts).next_multiple_of(tile);
    (0..split)
        .step_by(len)
        .collect::<Vec<_>>()
        .into_par_iter()
        .for_each(|start| {
            // Whole values, not their pointer fields, are what the closure
            // shares (a closure otherwise captures just the fields it uses).
            let (a, b, c) = (a, b, c);
            let len = len.min(split - start);
            // SAFETY: each block lies inside the operands and the output the
            // caller vouched for, and no two blocks share an output element.
            unsafe {
                if m >= n {
                    product_on_thread((len, n, k), a.sub(start, 0), b, c.sub(start, 0), alpha, accumulate);
                } else {
                    product_on_thread((m, len, k), a, b.sub(0, start), c.sub(0, start), alpha, accumulate);
                }
            }
        });
}

/// `product` on the calling thread.
#[target_feature(enable = "avx2,fma")]
unsafe fn product_on_thread(
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    Output { ptr: c, ldc }: Output,
    alpha: f32,
    accumulate: bool,
) {
    BUFFERS.with_borrow_mut(|buffers| unsafe {
        let packed_b = buffer(&mut buffers.rhs, KC.min(k) * NC.min(n.div_ceil(NR) * NR));
        let packed_a = buffer(&mut buffers.lhs, KC.min(k) * MC.min(m.div_ceil(MR) * MR));
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                // With a single block of rows, each right panel is used
                // once: it is packed just before, into one slot that stays
                // in L1, rather than the whole block being packed up front
                // and read back from L2 or beyond.
                let just_in_time = m <= MC;
                if !just_in_time {
                    for jr in (0..nc).step_by(NR) {
                        pack_b(packed_b.add(jr * kc), b.at(pc, jc + jr), NR.min(nc - jr), kc, b);
                    }
                }
                let overwrite = pc == 0 && !accumulate;
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    for ir in (0..mc).step_by(MR) {
                        pack_a(packed_a.add(ir * kc), a.at(ic + ir, pc), MR.min(mc - ir), kc, a);
                    }
                    for jr in (0..nc).step_by(NR) {
                        let panel_b = if just_in_time {
                            pack_b(packed_b, b.at(pc, jc + jr), NR.min(nc - jr), kc, b);
                            packed_b
                        } else {
                            packed_b.add(jr * kc)
                        };
                        for ir in (0..mc).step_by(MR) {
                            let panel_a = packed_a.add(ir * kc);
                            let tile = c.add((ic + ir) * ldc + jc + jr);
                            let (rows, cols) = (MR.min(mc - ir), NR.min(nc - jr));
                            if rows == MR && cols == NR {
                                kernel(kc, panel_a, panel_b, tile, ldc, alpha, overwrite);
                            } else {
                                edge(kc, panel_a, panel_b, tile, ldc, (rows, cols), alpha, overwrite);
                            }
                        }
                    }
                }
            }
        }
        // k = 0: the product is zero.
        if k == 0 && !accumulate {
            for i in 0..m {
                std::ptr::write_bytes(c.add(i * ldc), 0, n);
            }
        }
    });
}

/// A partial tile: the kernel writes a full tile into a scratch tile,
/// which is then copied into the part of the output that exists.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn edge(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    (rows, cols): (usize, usize),
    alpha: f32,
    overwrite: bool,
) {
    let mut scratch = [0f32; MR * NR];
    unsafe {
        if !overwrite {
            for i in 0..rows {
                std::ptr::copy_nonoverlapping(c.add(i * ldc), scratch.as_mut_ptr().add(i * NR), cols);
            }
        }
        kernel(kc, a, b, scratch.as_mut_ptr(), NR, alpha, overwrite);
        for i in 0..rows {
            std::ptr::copy_nonoverlapping(scratch.as_ptr().add(i * NR), c.add(i * ldc), cols);
        }
    }
}

/// The 6 × 16 tile `c = alpha·a·b` (+ `c` unless `overwrite`), `a` a packed
/// 6-row panel and `b` a packed 16-column panel, both `kc` deep.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, overwrite: bool) {
    unsafe {
        // The tile's rows are far apart in memory and last touched a whole
        // block ago: start loading them now so that the write-back after
        // the loop does not wait on memory.
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc).cast());
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + NR - 1).cast());
        }
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for p in 0..kc {
            let b0 = _mm256_load_ps(b.add(p * NR));
            let b1 = _mm256_load_ps(b.add(p * NR + 8));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*a.add(p * MR + i));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
        }
        let alpha = _mm256_set1_ps(alpha);
        for (i, row) in acc.iter().enumerate() {
            for (v, &sum) in row.iter().enumerate() {
                let out = c.add(i * ldc + v * 8);
                let value = if overwrite {
                    _mm256_mul_ps(alpha, sum)
                } else {
                    _mm256_fmadd_ps(alpha, sum, _mm256_loadu_ps(out))
                };
                _mm256_storeu_ps(out, value);
            }
        }
    }
}

/// Packs `rows` (≤ 6) rows of `a`, from `from`, `kc` deep, into a panel
/// where element (i, p) sits at `p·6 + i`; missing rows are zeros.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_a(dst: *mut f32, from: *const f32, rows: usize, kc: usize, a: Operand) {
    unsafe { pack::<MR>(dst, from, rows, kc, (a.rs, a.cs)) }
}

/// Packs `cols` (≤ 16) columns of `b`, from `from`, `kc` deep, into a
/// panel where element (p, j) sits at `p·16 + j`; missing columns are
/// zeros: the left packing of `b`'s transpose.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_b(dst: *mut f32, from: *const f32, cols: usize, kc: usize, b: Operand) {
    unsafe { pack::<NR>(dst, from, cols, kc, (b.cs, b.rs)) }
}

/// Packs `lines` lines (rows of the left operand, columns of the right),
/// element p of line i at `from + i·line_stride + p·depth_stride`, into a
/// panel `WIDTH` lines wide and `kc` deep: element (i, p) at `p·WIDTH + i`,
/// missing lines zeros. (The width is a constant so that its loops
/// unroll.)
#[target_feature(enable = "avx2,fma")]
unsafe fn pack<const WIDTH: usize>(
    dst: *mut f32,
    from: *const f32,
    lines: usize,
    kc: usize,
    (line_stride, depth_stride): (usize, usize),
) {
    let full = lines == WIDTH;
    let mut done = 0;
    unsafe {
        if full && depth_stride == 1 {
            // Each line is contiguous: transpose 8 × 8 blocks, a group of
            // eight lines at a time (zeros past the last line). Each block's
            // rows are stored `WIDTH` floats apart in ascending order, so
            // where `WIDTH` is 6 each store's two extra floats are
            // overwritten by the next (and the buffer has a vector to
            // spare after its last panel).
            while done + 8 <= kc {
                for group in (0..WIDTH).step_by(8) {
                    let mut v = [_mm256_setzero_ps(); 8];
                    for (i, line) in v.iter_mut().take(WIDTH - group).enumerate() {
                        *line = _mm256_loadu_ps(from.add((group + i) * line_stride + done));
                    }
                    for (p, column) in transpose8(v).into_iter().enumerate() {
                        _mm256_storeu_ps(dst.add((done + p) * WIDTH + group), column);
                    }
                }
                done += 8;
            }
        } else if full && line_stride == 1 {
            // Each depth step's elements are contiguous: one copy per step.
            for p in 0..kc {
                std::ptr::copy_nonoverlapping(from.add(p * depth_stride), dst.add(p * WIDTH), WIDTH);
            }
            done = kc;
        }
        for p in done..kc {
            for i in 0..WIDTH {
                let value = if i < lines {
                    *from.add(i * line_stride + p * depth_stride)
                } else {
                    0.0
                };
                *dst.add(p * WIDTH + i) = value;
            }
        }
    }
}

/// The transpose of the 8 × 8 matrix whose rows are `v`.
#[target_feature(enable = "avx2,fma")]
fn transpose8(v: [__m256; 8]) -> [__m256; 8] {
    // Interleave pairs of rows, then pairs of pairs, then swap the halves
    // of the two 128-bit lanes.
    let t0 = _mm256_unpacklo_ps(v[0], v[1]);
    let t1 = _mm256_unpackhi_ps(v[0], v[1]);
    let t2 = _mm256_unpacklo_ps(v[2], v[3]);
    let t3 = _mm256_unpackhi_ps(v[2], v[3]);
    let t4 = _mm256_unpacklo_ps(v[4], v[5]);
    let t5 = _mm256_unpackhi_ps(v[4], v[5]);
    let t6 = _mm256_unpacklo_ps(v[6], v[7]);
    let t7 = _mm256_unpackhi_ps(v[6], v[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How an m × k operand is laid out in its buffer.
    #[derive(Clone, Copy, Debug)]
    enum Layout {
        Rows,
        Transposed,
        /// Neither stride is 1: every other element of a buffer twice the
        /// size, row-major with padded rows.
        Spread,
    }

    /// A `rows × cols` matrix of distinct values in `layout`, and its
    /// values row by row.
    fn matrix(rows: usize, cols: usize, layout: Layout, seed: usize) -> (Vec<f32>, Operand, Vec<f64>) {
        let value = |r: usize, c: usize| (((r * 31 + c * 17 + seed * 7) % 23) as f32 - 11.0) / 8.0;
        let (rs, cs) = match layout {
            Layout::Rows => (cols, 1),
            Layout::Transposed => (1, rows),
            Layout::Spread => (2 * cols + 1, 2),
        };
        let mut data = vec![f32::NAN; (rows * rs + cols * cs).max(1)];
        let mut values = Vec::new();
        for r in 0..rows {
            for c in 0..cols {
                data[r * rs + c * cs] = value(r, c);
                values.push(value(r, c) as f64);
            }
        }
        let op = Operand {
            ptr: data.as_ptr(),
            rs,
            cs,
        };
        (data, op, values)
    }

    /// Every shape at and around the tile and block edges, every layout
    /// pair, with and without accumulating, scaling and splitting, against
    /// the product summed in f64 one element at a time.
    #[test]
    fn agrees_with_the_product_by_definition() {
        if !available() {
            return;
        }
        let layouts = [Layout::Rows, Layout::Transposed, Layout::Spread];
        let mut case = 0;
        for m in [1, 6, 7, 97] {
            for n in [1, 16, 17, 40, 4100] {
                for k in [0, 1, 9, 300] {
                    for (la, lb) in layouts.iter().flat_map(|&a| layouts.map(|b| (a, b))) {
                        case += 1;
                        let (accumulate, parallel, alpha) = (case % 2 == 0, case % 3 == 0, [1.0, 0.5][case % 5 % 2]);
                        let (_a, a, av) = matrix(m, k, la, case);
                        let (_b, b, bv) = matrix(k, n, lb, case + 1);
                        // Rows padded by three elements that must stay as they are.
                        let ldc = n + 3;
                        let start = |i: usize, j: usize| ((i * 5 + j * 3) % 7) as f32;
                        let mut c: Vec<f32> = (0..m * ldc).map(|x| start(x / ldc, x % ldc)).collect();
                        let out = Output {
                            ptr: c.as_mut_ptr(),
                            ldc,
                        };
                        unsafe { product((m, n, k), a, b, out, alpha, accumulate, parallel) };
                        for i in 0..m {
                            for j in 0..ldc {
                                let expected = if j >= n {
                                    start(i, j) as f64
                                } else {
                                    let dot: f64 = (0..k).map(|p| av[i * k + p] * bv[p * n + j]).sum();
                                    alpha as f64 * dot + if accumulate { start(i, j) as f64 } else { 0.0 }
                                };
                                let got = c[i * ldc + j] as f64;
                                assert!(
                                    (got - expected).abs() <= 1e-4 * (1.0 + expected.abs()),
                                    "m {m} n {n} k {k} {la:?}·{lb:?} accumulate {accumulate} alpha {alpha}: ({i}, {j}) is {got}, not {expected}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
