//! The `matmul` workload: the device's sustained f32 matrix-product rate on
//! square 1024³ products, the peak that model FLOPs utilisation in the other
//! workloads is stated against.
//!
//! On the CPU a product is timed two ways: one product split over every
//! thread by burn's matmul (the gemm crate), and one product per thread at
//! once on the kernel the model's fused operations use (how the training
//! shards run theirs, `rlhf/shards.rs`). The peak is the better of the two.

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use serde_json::{Value, json};

use super::median;
use crate::device::Selected;

const N: usize = 1024;

/// Random `N × N` operands on the selected device, and on the CPU a copy
/// of them in host memory for the per-thread products.
pub struct Operands {
    a: Tensor<2>,
    b: Tensor<2>,
    host: Option<(Vec<f32>, Vec<f32>)>,
}

impl Operands {
    pub fn new(selected: &Selected) -> Self {
        let device = &selected.device;
        let a = Tensor::<2>::random([N, N], Distribution::Normal(0.0, 1.0), device);
        let b = Tensor::<2>::random([N, N], Distribution::Normal(0.0, 1.0), device);
        let values = |t: &Tensor<2>| t.to_data().convert::<f32>().try_into_vec::<f32>().expect("f32 values");
        let host = crate::device::is_cpu(device).then(|| (values(&a), values(&b)));
        Self { a, b, host }
    }

    /// GFLOP/s of one product over every thread, and of one product per
    /// thread at once (0 off the CPU), each timed once.
    pub fn rates(&self) -> (f64, f64) {
        let flops = 2.0 * (N * N * N) as f64;
        let start = Instant::now();
        // Reading one element back waits for the product on any backend.
        let c = self.a.clone().matmul(self.b.clone());
        let _ = c.slice([0..1, 0..1]).into_data();
        let whole = flops / start.elapsed().as_secs_f64() / 1e9;
        let per_thread = self
            .host
            .as_ref()
            .map_or(0.0, |(a, b)| flops / per_thread_seconds(a, b) / 1e9);
        (whole, per_thread)
    }

    /// Each rate's median over `repeats` timings, after a warm-up.
    fn median_rates(&self, repeats: usize) -> (f64, f64) {
        self.rates(); // warm-up
        let (mut whole, mut threads): (Vec<f64>, Vec<f64>) = (0..repeats.max(1)).map(|_| self.rates()).unzip();
        (median(&mut whole), median(&mut threads))
    }
}

/// Seconds per product of one product per thread at once on the fused
/// operations' kernel. The outputs are allocated before the clock starts,
/// as the product over every thread's is inside burn's matmul.
#[cfg(feature = "flex")]
fn per_thread_seconds(a: &[f32], b: &[f32]) -> f64 {
    use crate::kernels::cpu_tensor::{Matrix, Threads, product};
    use rayon::prelude::*;
    let mut outputs = vec![vec![0.0f32; N * N]; rayon::current_num_threads()];
    let start = Instant::now();
    outputs.par_iter_mut().for_each(|c| {
        let (a, b) = (Matrix::rows(a, N), Matrix::rows(b, N));
        product((N, N, N), c, N, a, b, 1.0, false, Threads::One);
    });
    start.elapsed().as_secs_f64() / outputs.len() as f64
}

/// Without the CPU backend there is no host product to time.
#[cfg(not(feature = "flex"))]
fn per_thread_seconds(_: &[f32], _: &[f32]) -> f64 {
    f64::INFINITY
}

pub fn run(selected: &Selected, repeats: usize) -> Value {
    let (whole, threads) = Operands::new(selected).median_rates(repeats);
    json!({
        "workload": "matmul", "device": selected.label, "n": N, "gflop_per_s": whole.max(threads),
        "one_product_gflop_per_s": whole, "product_per_thread_gflop_per_s": threads,
    })
}
