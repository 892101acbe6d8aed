//! Preference data: the file formats other tools use.

pub mod formats;
