//! Products of a few rows against a weight stored `[out, in]`, `x · Wᵀ`,
//! for x86-64 with AVX-512: the shape of every projection and of the LM
//! head while decoding (a row per sequence of the batch) in the Llama
//! family, whose weights are stored that way; and of a training shard's
//! forward products, of up to 192 rows, while every core computes
//! (`suits`).
//!
//! Column j of `Wᵀ` is row j of `W`, contiguous, so each output is a dot
//! product of two contiguous rows and nothing needs packing. A blocked
//! product packs `Wᵀ` into panels first, and with a few rows that copy is
//! as much work as the product: every element of a weight larger than the
//! caches is read from memory once either way, but packing reads each
//! panel as 16 strided fragments where here four rows stream in order.
//!
//! A tile is 4 rows by 4 columns: sixteen accumulators of 16 lanes run
//! along the shared dimension, and are then summed across their lanes
//! together, three rounds of shuffles giving the 16 results in one vector.
//! The four weight rows of a tile stay in L1 while every block of four
//! rows of `x` passes over them.

use std::arch::x86_64::*;

/// Rows and columns of a tile.
const TILE: usize = 4;
/// Lanes of a vector.
const LANES: usize = 16;

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// Whether a product (`m × k` by `k × n`, the right operand's columns
/// contiguous) runs here: few rows, as a decoding step has per thread,
/// against a weight of 256 KiB or more, which streams from memory (or L3)
/// once for the whole product. Measured on an AMD EPYC at SmolLM2-135M's
/// shapes, one thread, weights read from memory: a step's projections and
/// LM head about 1.4× faster than the blocked kernel with 16 rows, 1.3×
/// with 32; its key and value projections (192 × 576, 432 KiB, from L3)
/// 2.5× faster than the gemm crate's with 16 rows (104 GFLOP/s against
/// 42), 1.7× with 32. Smaller products (attention's, a small model's) and
/// longer batches keep the blocked kernels.
///
/// A team's member (`team::meeting`) takes it for every row count, so that
/// all members meet at the same products.
///
/// A thread running a shard of its own (`own_thread`) takes it up to 192
/// rows, a training shard's forward products at that shape: with both
/// cores computing at once, as they do then, it ran 0.95–1.15× the gemm
/// crate's rate on the projections, 1.2–1.5× on the down projection
/// (k = 1536, 85–99 GFLOP/s against 64), and alike on the LM head at 128
/// rows; from about 256 rows on the gemm crate was as fast or faster.
pub fn suits((m, n, k): (usize, usize, usize), meeting: bool, own_thread: bool) -> bool {
    /// Rows up to which the kernel wins.
    const ROWS: usize = 32;
    /// Rows up to which it wins while the other cores compute too.
    const ROWS_BESIDE_OTHERS: usize = 192;
    /// 256 KiB of f32.
    const STREAMED: usize = 1 << 16;
    (m <= ROWS || meeting || (own_thread && m <= ROWS_BESIDE_OTHERS)) && n * k >= STREAMED && available()
}

/// `m` rows of `k` values from `ptr`, `stride` apart (for the left
/// operand), or `n` columns of `Wᵀ`, each a row of `W` (the right).
#[derive(Clone, Copy)]
pub struct Lines {
    pub ptr: *const f32,
    pub stride: usize,
}

/// Tiles ahead whose weight rows are fetched into L2, and into L1. A
/// weight streams from memory, and L2 hides its latency where L1, which
/// the rows of `x` pass through, is too small to hold tiles that far
/// ahead. Measured at SmolLM2-135M's decoding shapes (32 rows, weights
/// from memory, AMD EPYC, one thread and two): 6 into L2 and 1 into L1
/// ran 8–12% faster than 2 into L1 alone; 3 to 16 into L2 ran alike, and
/// the fetch into L1 added about 5% where rows are 1536 long.
const FAR: usize = 6;
const NEAR: usize = 1;

/// Where a tile fetches ahead: the weight rows of the tiles `FAR` and
/// `NEAR` ahead (null past the last), `stride` apart, from vector `first`
/// on, counting along the rows in order.
#[derive(Clone, Copy)]
struct Ahead {
    far: *const f32,
    near: *const f32,
    stride: usize,
    first: usize,
}

/// The output: row-major from `ptr` with row stride `ldc`.
#[derive(Clone, Copy)]
pub struct Output {
    pub ptr: *mut f32,
    pub ldc: usize,
}

/// A product's rows: `m` rows of `a`, written to `c`.
#[derive(Clone, Copy)]
pub struct Rows {
    a: Lines,
    m: usize,
    c: Output,
}

/// One member's post to a team (`team`): its rows of a product, and the
/// product's weight and terms, which the members' posts share when they
/// meet over the same product.
#[derive(Clone, Copy)]
pub struct Job {
    rows: Rows,
    w: Lines,
    n: usize,
    k: usize,
    alpha: f32,
    accumulate: bool,
}

impl Job {
    /// What makes two posts the same product.
    fn terms(&self) -> (*const f32, usize, usize, usize, u32, bool) {
        (
            self.w.ptr,
            self.w.stride,
            self.n,
            self.k,
            self.alpha.to_bits(),
            self.accumulate,
        )
    }
}

impl super::team::Post for Job {
    fn same(&self, other: &Job) -> bool {
        self.terms() == other.terms()
    }

    /// Its tiles of columns.
    fn units(&self) -> usize {
        self.n.div_ceil(TILE)
    }
}

// SAFETY: the operands are only read, and the parts of a split product
// write disjoint columns of the output; a team's members post their rows
// and outputs for the others to use only until they all go on.
unsafe impl Sync for Lines {}
unsafe impl Sync for Output {}
unsafe impl Send for Job {}

/// `c[m×n] = alpha·a·wᵀ`, plus `c`'s own values when `accumulate`, for `a`
/// `m × k` by rows and `w` `n × k` by rows. When `meet`, a team's member
/// computes it with the other members' at once (`team`); otherwise, when
/// `parallel`, the columns are split into one block per thread of the pool.
///
/// # Safety
/// `available()` must hold; `a`, `w` and `c` must address valid memory for
/// those shapes, and `c` must not overlap either operand.
#[allow(clippy::too_many_arguments)]
pub unsafe fn product(
    (m, n, k): (usize, usize, usize),
    a: Lines,
    w: Lines,
    c: Output,
    alpha: f32,
    accumulate: bool,
    parallel: bool,
    meet: bool,
) {
    use rayon::prelude::*;
    let job = Job {
        rows: Rows { a, m, c },
        w,
        n,
        k,
        alpha,
        accumulate,
    };
    let rows = std::cell::OnceCell::new();
    let shared = meet
        && super::team::together(job, |jobs, claim| {
            let rows: &Vec<Rows> = rows.get_or_init(|| jobs.iter().map(|j| j.rows).collect());
            let tiles = |units: usize| (units * TILE).min(n);
            let cols = tiles(claim.units.start)..tiles(claim.units.end);
            // SAFETY: every member's rows and output are valid while the team
            // meets (each vouched for its own), and the claims' columns are
            // disjoint.
            unsafe { columns(rows, cols, tiles(claim.ahead), k, w, alpha, accumulate) };
        });
    if shared {
        return;
    }
    let parts = if parallel { rayon::current_num_threads() } else { 1 };
    let len = block(n, parts);
    if parts < 2 || len >= n {
        // SAFETY: as the caller guarantees.
        return unsafe { columns(&[job.rows], 0..n, n, k, w, alpha, accumulate) };
    }
    (0..n)
        .step_by(len)
        .collect::<Vec<_>>()
        .into_par_iter()
        .for_each(|start| {
            // SAFETY: each block of columns lies inside the operands and the
            // output the caller vouched for, and no two share an output element.
            let end = (start + len).min(n);
            unsafe { columns(&[job.rows], start..end, end, k, w, alpha, accumulate) };
        });
}

/// Columns per block when `n` are split `parts` ways, whole tiles each.
fn block(n: usize, parts: usize) -> usize {
    n.div_ceil(parts.max(1)).next_multiple_of(TILE).max(TILE)
}

/// Columns `cols` of the product of each of `rows` with `w`; each tile of
/// the weight passes over all of them while it is in L1. The weight rows
/// ahead are fetched up to column `ahead`, where the caller goes on.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn columns(
    rows: &[Rows],
    cols: std::ops::Range<usize>,
    ahead: usize,
    k: usize,
    w: Lines,
    alpha: f32,
    accumulate: bool,
) {
    let alpha = _mm_set1_ps(alpha);
    for j in cols.clone().step_by(TILE) {
        let width = TILE.min(cols.end - j);
        // A tile past the last column reads the last column again and
        // writes only the columns that exist; likewise for rows.
        let col_ptrs: [*const f32; TILE] =
            std::array::from_fn(|t| unsafe { w.ptr.add((j + t.min(width - 1)) * w.stride) });
        // The weight rows of the tiles ahead are fetched a vector a step,
        // spread over this tile's blocks of rows.
        let tile_ahead = |tiles: usize| match j + tiles * TILE {
            at if at < ahead => unsafe { w.ptr.add(at * w.stride) },
            _ => std::ptr::null(),
        };
        let mut fetch = Ahead {
            far: tile_ahead(FAR),
            near: tile_ahead(NEAR),
            stride: w.stride,
            first: 0,
        };
        // Plain loops: an iterator chain over the row blocks
        // and a copy of `width` values (a call to memcpy) per output row
        // cost a few percent of a decoding step.
        for &Rows { a, m, c } in rows {
            for i in (0..m).step_by(TILE) {
                let height = TILE.min(m - i);
                let row_ptrs: [*const f32; TILE] =
                    std::array::from_fn(|t| unsafe { a.ptr.add((i + t.min(height - 1)) * a.stride) });
                let sums = unsafe { tile(k, row_ptrs, col_ptrs, fetch) };
                fetch.first += k.div_ceil(LANES);
                for r in 0..height {
                    // Lane group r holds row r's four columns.
                    let row = unsafe { lane_group(sums, r) };
                    let out = unsafe { c.ptr.add((i + r) * c.ldc + j) };
                    unsafe { write_partial(out, width, row, alpha, accumulate) };
                }
            }
        }
    }
}

/// `alpha·row`, plus what is there when `accumulate`, into the first
/// `width` (≤ 4) values at `out`: a whole tile's row in one store.
#[target_feature(enable = "avx512f")]
unsafe fn write_partial(out: *mut f32, width: usize, row: __m128, alpha: __m128, accumulate: bool) {
    let whole = width == TILE;
    let scaled = if accumulate {
        let before = unsafe {
            if whole {
                _mm_loadu_ps(out)
            } else {
                read_partial(out, width)
            }
        };
        _mm_fmadd_ps(alpha, row, before)
    } else {
        _mm_mul_ps(alpha, row)
    };
    if whole {
        return unsafe { _mm_storeu_ps(out, scaled) };
    }
    let mut values = [0f32; TILE];
    unsafe {
        _mm_storeu_ps(values.as_mut_ptr(), scaled);
        std::ptr::copy_nonoverlapping(values.as_ptr(), out, width);
    }
}

/// The first `width` (≤ 4) values at `ptr`, zeros after.
#[target_feature(enable = "avx512f")]
unsafe fn read_partial(ptr: *const f32, width: usize) -> __m128 {
    let mut values = [0f32; TILE];
    unsafe {
        std::ptr::copy_nonoverlapping(ptr, values.as_mut_ptr(), width);
        _mm_loadu_ps(values.as_ptr())
    }
}

/// The 128-bit group `g` of `v`.
#[target_feature(enable = "avx512f")]
unsafe fn lane_group(v: __m512, g: usize) -> __m128 {
    match g {
        0 => _mm512_castps512_ps128(v),
        1 => _mm512_extractf32x4_ps::<1>(v),
        2 => _mm512_extractf32x4_ps::<2>(v),
        _ => _mm512_extractf32x4_ps::<3>(v),
    }
}

/// The 4 × 4 dot products of `rows` with `cols`, each `k` long, as one
/// vector: row r's four in lanes 4r..4r + 4.
#[target_feature(enable = "avx512f")]
unsafe fn tile(k: usize, rows: [*const f32; TILE], cols: [*const f32; TILE], ahead: Ahead) -> __m512 {
    let mut acc = [_mm512_setzero_ps(); TILE * TILE];
    let whole = k - k % LANES;
    let mut p = 0;
    unsafe {
        let vectors = k.div_ceil(LANES).max(1);
        // Past the last tile NEAR ahead, the one FAR ahead is past it too.
        let (mut row, mut at) = if ahead.near.is_null() {
            (TILE, 0)
        } else {
            (ahead.first / vectors, ahead.first % vectors * LANES)
        };
        while p < whole {
            if row < TILE {
                // Wrapping: the last tile ahead may have fewer rows than
                // four, and a prefetch past them is harmless where an
                // `add` past the weight would not be.
                let offset = row * ahead.stride + at;
                if !ahead.far.is_null() {
                    _mm_prefetch::<_MM_HINT_T1>(ahead.far.wrapping_add(offset).cast());
                }
                _mm_prefetch::<_MM_HINT_T0>(ahead.near.wrapping_add(offset).cast());
                at += LANES;
                if at >= k {
                    (row, at) = (row + 1, 0);
                }
            }
            let w = cols.map(|col| _mm512_loadu_ps(col.add(p)));
            for (r, row) in rows.iter().enumerate() {
                let x = _mm512_loadu_ps(row.add(p));
                for (t, &wt) in w.iter().enumerate() {
                    acc[r * TILE + t] = _mm512_fmadd_ps(x, wt, acc[r * TILE + t]);
                }
            }
            p += LANES;
        }
        if p < k {
            // The last part of a row shorter than a vector, zeros after.
            let mask: __mmask16 = (1 << (k - p)) - 1;
            let w = cols.map(|col| _mm512_maskz_loadu_ps(mask, col.add(p)));
            for (r, row) in rows.iter().enumerate() {
                let x = _mm512_maskz_loadu_ps(mask, row.add(p));
                for (t, &wt) in w.iter().enumerate() {
                    acc[r * TILE + t] = _mm512_fmadd_ps(x, wt, acc[r * TILE + t]);
                }
            }
        }
    }
    sum_lanes(acc)
}

/// The lane sums of 16 vectors, in order, as one vector. Each round adds
/// pairs of vectors after interleaving them, so that every lane of the
/// result holds half as many partial sums of twice as many lanes: 32-bit
/// interleaves (16 vectors to 8), 64-bit (8 to 4), then 128-bit groups
/// (4 to 2 to 1).
#[target_feature(enable = "avx512f")]
pub(super) fn sum_lanes(v: [__m512; 16]) -> __m512 {
    // Within each 128-bit group of a pair (a, b): [a0+a2, b0+b2, a1+a3, b1+b3].
    let halves: [__m512; 8] = std::array::from_fn(|i| {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
    });
    // Within each group of a pair of those: the four vectors' partial sums.
    let quarters: [__m512; 4] = std::array::from_fn(|i| {
        let (a, b) = (_mm512_castps_pd(halves[2 * i]), _mm512_castps_pd(halves[2 * i + 1]));
        // Interleaved as pairs of floats, added as floats.
        _mm512_add_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)),
        )
    });
    // Groups 0 and 2 plus groups 1 and 3 of each of two vectors, then once
    // more: group g of the result is quarters[g]'s four groups summed.
    let pair = |a: __m512, b: __m512| {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        )
    };
    pair(pair(quarters[0], quarters[1]), pair(quarters[2], quarters[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape at and around the tile and vector edges, with and
    /// without accumulating, scaling and splitting, against the product
    /// summed in f64 one element at a time.
    #[test]
    fn agrees_with_the_product_by_definition() {
        if !available() {
            return;
        }
        let mut case = 0;
        for m in [1, 3, 4, 5, 16, 33] {
            for n in [1, 4, 6, 17, 300] {
                for k in [0, 1, 15, 16, 17, 100] {
                    case += 1;
                    let (accumulate, parallel, alpha) = (case % 2 == 0, case % 3 == 0, [1.0, 0.5][case % 5 % 2]);
                    let value = |r: usize, c: usize, s: usize| (((r * 31 + c * 17 + s * 7) % 23) as f32 - 11.0) / 8.0;
                    // Rows padded by two elements that are never read.
                    let (lda, ldw, ldc) = (k + 2, k + 2, n + 3);
                    let a: Vec<f32> = (0..m * lda).map(|x| value(x / lda, x % lda, 1)).collect();
                    let w: Vec<f32> = (0..n * ldw).map(|x| value(x / ldw, x % ldw, 2)).collect();
                    let start = |i: usize, j: usize| ((i * 5 + j * 3) % 7) as f32;
                    let mut c: Vec<f32> = (0..m * ldc).map(|x| start(x / ldc, x % ldc)).collect();
                    let lines = |v: &[f32], stride| Lines {
                        ptr: v.as_ptr(),
                        stride,
                    };
                    let out = Output {
                        ptr: c.as_mut_ptr(),
                        ldc,
                    };
                    unsafe {
                        product(
                            (m, n, k),
                            lines(&a, lda),
                            lines(&w, ldw),
                            out,
                            alpha,
                            accumulate,
                            parallel,
                            false,
                        )
                    };
                    for i in 0..m {
                        for j in 0..ldc {
                            let expected = if j >= n {
                                start(i, j) as f64
                            } else {
                                let dot: f64 = (0..k).map(|p| a[i * lda + p] as f64 * w[j * ldw + p] as f64).sum();
                                alpha as f64 * dot + if accumulate { start(i, j) as f64 } else { 0.0 }
                            };
                            let got = c[i * ldc + j] as f64;
                            assert!(
                                (got - expected).abs() <= 1e-4 * (1.0 + expected.abs()),
                                "m {m} n {n} k {k} accumulate {accumulate} alpha {alpha}: ({i}, {j}) is {got}, not {expected}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Three members of a team, with 1, 5 and 33 rows, meet at a product:
    /// they share its columns, each computing all of their rows for its
    /// share. At the next meeting member 2 posts another weight, so each
    /// computes its own. Member 2 then leaves and the other two share;
    /// then member 1 leaves and member 0 computes alone. Every output is
    /// the product by definition, and the team's tally counts those
    /// meetings and their seats.
    #[test]
    fn a_team_computes_its_members_rows_against_one_weight() {
        if !available() {
            return;
        }
        let k = 100;
        let value = |x: usize, s: usize| (((x * 31 + s * 7) % 23) as f32 - 11.0) / 8.0;
        let weights: [Vec<f32>; 2] = [
            (0..300 * k).map(|x| value(x, 1)).collect(),
            (0..17 * k).map(|x| value(x, 2)).collect(),
        ];
        // The products each member takes part in: which weight, in order.
        let plans: [&[usize]; 3] = [&[0, 0, 0, 0], &[0, 0, 0], &[0, 1]];
        let tallies = super::super::team::run(3, |member| {
            let m = [1, 5, 33][member];
            let a: Vec<f32> = (0..m * k).map(|x| value(x, 3 + member)).collect();
            let mut tally = None;
            for (step, &which) in plans[member].iter().enumerate() {
                let w = &weights[which];
                let n = w.len() / k;
                let mut c = vec![f32::NAN; m * n];
                let lines = |v: &[f32]| Lines {
                    ptr: v.as_ptr(),
                    stride: k,
                };
                let out = Output {
                    ptr: c.as_mut_ptr(),
                    ldc: n,
                };
                unsafe { product((m, n, k), lines(&a), lines(w), out, 1.0, false, false, true) };
                for (x, got) in c.iter().enumerate() {
                    let (i, j) = (x / n, x % n);
                    let dot: f64 = (0..k).map(|p| a[i * k + p] as f64 * w[j * k + p] as f64).sum();
                    assert!(
                        (*got as f64 - dot).abs() <= 1e-4 * (1.0 + dot.abs()),
                        "member {member}: ({i}, {j}) is {got}, not {dot}"
                    );
                }
                // No meeting can be held after this one without member 0.
                if step == 2 {
                    tally = Some(super::super::team::tally());
                }
            }
            tally
        });
        // Meetings of 3, 3 (each computing its own) and 2 members.
        assert_eq!(tallies[0], Some((3, 8)));
    }

    /// The lane sums by hand: vector i holds i + lane/16 in each lane, so
    /// its sum is 16·i + (0 + 1 + … + 15)/16 = 16·i + 7.5.
    #[test]
    fn lane_sums_by_hand() {
        if !available() {
            return;
        }
        /// The vectors are made and read where AVX-512 is enabled: passing
        /// one to or from code without it changes how it is passed.
        #[target_feature(enable = "avx512f")]
        fn sums(lanes: &[[f32; 16]; 16]) -> [f32; 16] {
            let v: [__m512; 16] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(lanes[i].as_ptr()) });
            let mut out = [0f32; 16];
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), sum_lanes(v)) };
            out
        }
        let lanes: [[f32; 16]; 16] = std::array::from_fn(|i| std::array::from_fn(|l| i as f32 + l as f32 / 16.0));
        let expected: [f32; 16] = std::array::from_fn(|i| 16.0 * i as f32 + 7.5);
        assert_eq!(unsafe { sums(&lanes) }, expected);
    }
}
