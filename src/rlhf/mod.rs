//! The RLHF stages and the pieces they share.

pub mod adamw;
pub mod cai;
pub mod data;
pub mod dpo;
pub mod epochs;
pub mod grouped;
pub mod held_out;
pub mod lm;
pub mod monitors;
pub mod online;
pub mod optim;
pub mod ppo;
pub mod reward;
pub mod reward_math;
pub mod schedule;
pub mod sft;
pub mod shards;
pub mod state;
pub mod win_rate;
