//! A run on disk: `runs/<name>/` with its RON config, metrics log and
//! checkpoints.

pub mod config;
pub mod dir;
pub mod metrics;

pub use config::RunConfig;
pub use dir::RunDir;
pub use metrics::{MetricsLog, metric};
