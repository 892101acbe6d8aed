//! The `matmul` workload: the device's sustained f32 matrix-product rate on
//! square 1024³ products, the peak that model FLOPs utilisation in the other
//! workloads is stated against.

use burn::tensor::{Distribution, Tensor};
use serde_json::{Value, json};

use crate::device::Selected;

const N: usize = 1024;

pub fn run(selected: &Selected, repeats: usize) -> Value {
    let device = &selected.device;
    let a = Tensor::<2>::random([N, N], Distribution::Normal(0.0, 1.0), device);
    let b = Tensor::<2>::random([N, N], Distribution::Normal(0.0, 1.0), device);
    let seconds = super::median_seconds(repeats, || {
        // Reading one element back waits for the product on any backend.
        let c = a.clone().matmul(b.clone());
        let _ = c.slice([0..1, 0..1]).into_data();
    });
    let flops = 2.0 * (N * N * N) as f64;
    json!({ "workload": "matmul", "device": selected.label, "n": N, "seconds": seconds, "gflop_per_s": flops / seconds / 1e9 })
}
