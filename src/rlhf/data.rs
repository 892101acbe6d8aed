//! What the stages train and evaluate on, behind small interfaces: a stage
//! asks its `Sources` for prompts, demonstrations and preference pairs, and
//! the run's `Evaluator`, when it has one, for scores. No stage knows which
//! world the data comes from; the built-in world is one implementation of
//! each (`source.rs` in the built-in world's module).

use crate::prefs::formats::PreferencePair;

/// Which prompts: those training may use, or those held out of every
/// training set for evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    HeldOut,
}

/// A prompt and a response to imitate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demonstration {
    pub prompt: String,
    pub response: String,
}

/// A labelled pair in model text, with how much better the chosen side is
/// where the labeller says (0 where it does not).
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledPair {
    pub pair: PreferencePair,
    pub gap: f32,
}

/// A run's data. Prompts and responses are plain text; `prompt_text` and
/// `response_text` lay them out as the model reads them.
pub trait Sources: Send + Sync {
    /// `split`'s prompts, in a fixed order.
    fn prompts(&self, split: Split) -> Vec<String>;
    /// `n` demonstrations on `split`'s prompts, drawn with `seed`.
    fn demonstrations(&self, split: Split, n: usize, seed: u64) -> Vec<Demonstration>;
    /// `n` labelled pairs on `split`'s prompts, drawn with `seed`.
    fn preference_pairs(&self, split: Split, n: usize, seed: u64) -> Vec<LabelledPair>;
    /// A prompt laid out for the model to answer.
    fn prompt_text(&self, prompt: &str) -> String;
    /// A response as it follows its laid-out prompt.
    fn response_text(&self, response: &str) -> String;
    /// The token that ends a response.
    fn eos(&self) -> &str;
    /// The answer in a decoded continuation: up to where the model starts
    /// a new turn, trimmed.
    fn answer<'a>(&self, continuation: &'a str) -> &'a str;
}

/// Scores responses independently of the reward model being trained (the
/// built-in world's judge; an AI judge for a person's own data).
pub trait Evaluator: Send + Sync {
    /// A score in [0, 1] for each response to its prompt.
    fn scores(&self, prompts: &[String], responses: &[String]) -> Vec<f32>;
}
