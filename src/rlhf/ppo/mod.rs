//! PPO against a reward model with a per-token KL penalty: advantage
//! estimation (`advantage.rs`), the clipped losses (`loss.rs`) and the KL
//! coefficient's controller (`kl_control.rs`), the parameters a person can
//! change mid-run (`live.rs`), scoring (`rollout.rs`), what an optimizer
//! step reports (`stats.rs`) and the loop (`trainer.rs`).

pub mod advantage;
pub mod config;
pub mod kl_control;
pub mod live;
pub mod loss;
pub mod rollout;
pub mod stats;
pub mod trainer;
