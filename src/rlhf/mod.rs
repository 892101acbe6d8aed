//! The RLHF stages and the pieces they share.

pub mod lm;
pub mod schedule;
pub mod sft;
