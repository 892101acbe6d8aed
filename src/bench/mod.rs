//! DESIGN.md's fixed benchmark workloads: the same numbers in every run, so
//! results compare across machines and with other tools' scripts under
//! `scripts/`.

pub mod dpo;
pub mod generation;
pub mod grouped;
pub mod matmul;
pub mod ppo;
pub mod shape;
pub mod training;
pub mod ui;

use std::time::Instant;

/// Median wall time in seconds of `repeats` runs of `f`, after one warm-up.
pub fn median_seconds(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    median(&mut times)
}

/// The middle value (the upper one of an even count).
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}
