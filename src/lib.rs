//! rlhf-tui: a terminal workbench for running RLHF end to end on one
//! machine (SFT, a reward model, PPO against it) and watching it live.

// burn 0.22 marks its LibTorch backend deprecated; the `tch` feature uses
// it on purpose, as the GPU path that builds without a network download.
#![cfg_attr(feature = "tch", allow(deprecated))]

pub mod bench;
pub mod cli;
pub mod data;
pub mod device;
pub mod fsutil;
pub mod judge;
pub mod kernels;
pub mod memory;
pub mod model;
pub mod prefs;
pub mod remote;
pub mod rlhf;
pub mod run;
pub mod settings;
#[cfg(test)]
mod testutil;
pub mod trainer;
pub mod ui;
pub mod world;

// The program, its tests and its benchmarks allocate alike.
#[global_allocator]
static ALLOCATOR: memory::HugePages = memory::HugePages;
