//! Direct Preference Optimisation: the policy trained straight on
//! preference pairs against a frozen reference (the run's supervised
//! policy), with no reward model and no sampling. The loss (`loss.rs`)
//! and the stage's trainer (`trainer.rs`).

pub mod loss;
pub mod trainer;
