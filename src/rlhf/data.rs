//! What the stages train and evaluate on, behind small interfaces: a stage
//! asks its `Sources` for prompts, demonstrations and preference pairs, and
//! the run's `Evaluator`, when it has one, for scores and verdicts. No
//! stage knows where the data comes from (the built-in world, or a
//! person's files); how a prompt is laid out for a model is the model's
//! own chat format, which travels with its tokenizer.

pub use crate::data::chat::Prompt;
pub use crate::data::files::Demonstration;
use crate::prefs::formats::PreferencePair;
use crate::trainer::protocol::{Choice, Criterion, Verdict};

/// Which prompts: those training may use, or those held out of every
/// training set for evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    HeldOut,
}

/// A labelled pair: `chosen` beat `rejected` as answers to `prompt`, by
/// `gap` where the labeller says how much (0 where it does not).
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledPair {
    pub prompt: Prompt,
    pub chosen: String,
    pub rejected: String,
    pub gap: f32,
}

impl From<&PreferencePair> for LabelledPair {
    /// A pair from a file or a person's judgment: text the model reads as
    /// it is, with no judge's gap.
    fn from(pair: &PreferencePair) -> Self {
        Self {
            prompt: Prompt::Text(pair.prompt.clone()),
            chosen: pair.chosen.clone(),
            rejected: pair.rejected.clone(),
            gap: 0.0,
        }
    }
}

/// A run's data.
pub trait Sources: Send + Sync {
    /// `split`'s prompts, in a fixed order.
    fn prompts(&self, split: Split) -> Vec<Prompt>;
    /// Up to `n` demonstrations on `split`'s prompts, drawn with `seed`
    /// (a file's are all of its split).
    fn demonstrations(&self, split: Split, n: usize, seed: u64) -> Vec<Demonstration>;
    /// Up to `n` labelled pairs on `split`'s prompts, drawn with `seed`.
    fn preference_pairs(&self, split: Split, n: usize, seed: u64) -> Vec<LabelledPair>;
    /// The prompts a person labels responses to: the training prompts
    /// unless the run names others.
    fn labeling_prompts(&self) -> Vec<Prompt> {
        self.prompts(Split::Train)
    }
    /// Held-out prompts on which the RL stages measure a behaviour at every
    /// iteration, through the evaluator's report (the world's false claims,
    /// for sycophancy); none by default.
    fn probe_prompts(&self) -> Vec<Prompt> {
        Vec::new()
    }
}

/// Scores responses independently of the reward model being trained (the
/// built-in world's rule judge; an AI judge for a person's own data). A
/// judge that can fail (a model behind a network, a program) says why;
/// nothing stands in for a verdict it did not give.
pub trait Evaluator: Send + Sync {
    /// Its name, as the judgments it makes are stored under.
    fn name(&self) -> &str;

    /// A score in [0, 1] for each response to its prompt.
    fn scores(&self, prompts: &[Prompt], responses: &[String]) -> Result<Vec<f32>, String>;

    /// The held-out figures of responses to prompts: the mean score, and
    /// whatever else the evaluator measures.
    fn report(&self, prompts: &[Prompt], responses: &[String]) -> Result<Vec<(&'static str, f64)>, String> {
        let scores = self.scores(prompts, responses)?;
        let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / scores.len().max(1) as f64;
        Ok(vec![(crate::run::names::EVAL_JUDGE_SCORE, mean)])
    }

    /// Its verdicts on responses to one prompt, by criterion: for two, the
    /// better (a tie within `TIE_MARGIN`); for more, their order.
    fn verdicts(&self, prompt: &Prompt, responses: &[String]) -> Result<Vec<(Criterion, Verdict)>, String> {
        let prompts = vec![prompt.clone(); responses.len()];
        Ok(vec![(
            Criterion::Overall,
            verdict_of_scores(&self.scores(&prompts, responses)?),
        )])
    }
}

/// Each item through `f`; an item it refuses is left out with a warning
/// naming it (`what` and its number) and why.
pub fn kept<T, R>(items: &[T], what: &str, f: impl Fn(&T) -> Result<R, String>) -> (Vec<R>, Vec<String>) {
    let mut warnings = Vec::new();
    let kept = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            f(item)
                .map_err(|why| warnings.push(format!("{what} {}: skipped: {why}", i + 1)))
                .ok()
        })
        .collect();
    (kept, warnings)
}

/// Scores closer than this are a tie.
pub const TIE_MARGIN: f32 = 0.05;

/// The verdict scores give: the better of two (closer than `TIE_MARGIN`,
/// a tie), or the order of more, best first.
pub fn verdict_of_scores(scores: &[f32]) -> Verdict {
    if let [a, b] = scores {
        return Verdict::Choice(match a - b {
            d if d.abs() < TIE_MARGIN => Choice::Tie,
            d if d > 0.0 => Choice::Left,
            _ => Choice::Right,
        });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    Verdict::Ranking(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_from_scores() {
        assert_eq!(verdict_of_scores(&[0.9, 0.5]), Verdict::Choice(Choice::Left));
        assert_eq!(verdict_of_scores(&[0.5, 0.9]), Verdict::Choice(Choice::Right));
        assert_eq!(verdict_of_scores(&[0.52, 0.5]), Verdict::Choice(Choice::Tie));
        assert_eq!(verdict_of_scores(&[0.1, 0.9, 0.5]), Verdict::Ranking(vec![1, 2, 0]));
    }
}
