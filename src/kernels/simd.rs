//! What the CPU kernels share: a loop run compiled for the widest vector
//! unit the CPU has (the crate itself targets baseline x86-64), and an
//! exponential and a sum written so that such a loop vectorizes.

/// Runs `f` compiled with AVX-512 enabled when the CPU has it, else with
/// AVX2 (8 lanes): the `#[inline(always)]` arithmetic of a loop in `f` is
/// then as wide as the CPU allows. Rust never fuses a multiply and an add
/// on its own, so every path computes the same bits.
///
/// `f` must be a closure marked `#[inline(always)]` itself: one the
/// compiler leaves out of line is compiled for baseline x86-64, four lanes
/// wide, whatever the CPU (as a decoding step's attention, softmax, RMSNorm
/// and rotary embeddings were).
#[inline(always)]
pub fn widest<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature the function is compiled for.
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// eˣ within 2 ulp, written so a loop of it vectorizes: eˣ = 2ⁿ·eʳ with
/// n = round(x/ln 2) and |r| ≤ ln 2 / 2, eʳ by its Taylor polynomial to
/// degree 7 (error below 2⁻²⁴ on that interval). Inputs beyond f32's
/// range are clamped, giving about 1e38 and 1e-38 where the exact value
/// overflows or underflows; σ and softmax only need them huge or tiny.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // n sits in the low bits of `shifted`'s mantissa; reading it there
    // rather than converting n (a saturating cast, done one lane at a
    // time) keeps the whole function in vector registers.
    let biased = shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    f32::from_bits(biased << 23) * p
}

/// Σᵢ f(a[i], b[i], c[i]) over slices of one length, accumulated in 16
/// lanes so that the loop vectorizes (one running sum would have to add in
/// order).
#[inline(always)]
pub fn sum3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    const LANES: usize = 16;
    let (a, b, c) = (a.chunks_exact(LANES), b.chunks_exact(LANES), c.chunks_exact(LANES));
    let tail: f32 = (a.remainder().iter().zip(b.remainder()).zip(c.remainder()))
        .map(|((&a, &b), &c)| f(a, b, c))
        .sum();
    let mut lanes = [0.0f32; LANES];
    for ((a, b), c) in a.zip(b).zip(c) {
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane += f(a[l], b[l], c[l]);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_matches_the_library_within_two_ulp() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (super::exp(x), x.exp());
            let ulp = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}) = {got}, want {want} ({ulp} ulp)");
            x += 0.0137;
        }
    }

    #[test]
    fn sum3_adds_every_term_in_the_chunks_and_the_tail() {
        // 37 terms: two chunks of 16 and a tail of 5; Σ i·1 + 2 = 666 + 74.
        let a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let (b, c) = (vec![1.0; 37], vec![2.0; 37]);
        assert_eq!(super::sum3(&a, &b, &c, |a, b, c| a * b + c), 740.0);
    }
}
