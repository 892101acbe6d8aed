//! The built-in world: a small universe of assistant dialogues in which a
//! small model becomes fluent in minutes, preferences mean something a
//! person can see, and a rule-based judge knows the truth.

pub mod assets;
pub mod corpus;
pub mod critic;
pub mod eval;
pub mod generator;
pub mod inventory;
pub mod judge;
pub mod pairs;
pub mod pretrain;
pub mod source;
pub mod tokenizer_training;
pub mod topics;

pub use judge::{Judgment, judge};
