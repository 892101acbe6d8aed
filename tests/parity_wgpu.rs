//! The parity checks on `Device::wgpu`: on a machine without a GPU this
//! runs on Mesa's software Vulkan driver (lavapipe), which `.ci/run`
//! installs. Kept to the single-sequence cases, as the software driver is
//! slow. Tolerances are those of the CPU tests.

#![cfg(feature = "wgpu")]

mod common;
mod parity_checks;

use burn::tensor::{Device, DeviceKind};

fn wgpu() -> Device {
    Device::wgpu(DeviceKind::DefaultDevice)
}

#[test]
fn wgpu_logits_greedy_cache_and_scalar_head_match_transformers() {
    let device = wgpu();
    parity_checks::single_logits(&device, 1e-4);
    parity_checks::batch_logits(&device, 1e-4);
    parity_checks::cached_vs_uncached(&device, 1e-5);
    parity_checks::greedy(&device);
    parity_checks::scalar_head(&device, 1e-4);
}
