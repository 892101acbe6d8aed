//! Preference data: the run's own judgments and the file formats other
//! tools use.

pub mod formats;
pub mod store;
