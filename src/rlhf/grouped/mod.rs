//! The critic-free online methods: GRPO and RLOO. Both sample K responses
//! to each prompt and judge each against its group instead of against a
//! value model; they differ in the baseline, where the KL to the
//! reference enters, and at what grain the importance ratio is taken.

pub mod advantages;
pub mod aggregation;
pub mod config;
pub mod loss;
pub mod trainer;
