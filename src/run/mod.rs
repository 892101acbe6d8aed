//! A run on disk: `runs/<name>/` with its RON config, metrics log,
//! checkpoints and the iterative loop's rounds.

pub mod config;
pub mod dir;
pub mod metrics;
pub mod names;
pub mod rounds;

pub use config::RunConfig;
pub use dir::RunDir;
pub use metrics::{MetricsLog, metric};
pub use rounds::Rounds;
