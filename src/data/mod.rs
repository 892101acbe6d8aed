//! A person's own data: chat formatting from the model directory, and the
//! demonstration, prompt and preference files in the formats TRL and
//! HH-RLHF write.

pub mod chat;
pub mod files;
pub mod sources;
pub mod turns;
