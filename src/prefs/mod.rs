//! Preference data: the run's own judgments (records, the append-only
//! store, rankings, agreement) and the file formats other tools use.

pub mod agreement;
pub mod config;
pub mod formats;
pub mod rank;
pub mod record;
pub mod stats;
pub mod store;
pub mod throughput;
