//! The trainer thread and the protocol the workbench speaks to it.

pub mod audit;
pub mod control;
pub mod driver;
pub mod eval_session;
pub mod protocol;
pub mod run_data;
pub mod samples;
pub mod stage;
pub mod stage_trainer;
pub mod watch;
pub mod worker;
