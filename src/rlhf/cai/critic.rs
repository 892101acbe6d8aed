//! The critic of Constitutional AI: it critiques a response against one
//! principle and revises it (SL-CAI's data), and says which of two
//! responses better follows a principle (RL-CAI's AI feedback). The
//! built-in world's critic is rule-based; an AI judge critiques with the
//! principle's own requests as prompts.

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::constitution::{Constitution, Principle};
use crate::rlhf::data::{Prompt, TIE_MARGIN};
use crate::trainer::protocol::{CaiView, Choice};

/// What the critic found under one principle, and the response revised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Critique {
    /// What is wrong, in words (what the critic says when nothing is).
    pub text: String,
    /// The response revised; the response itself when nothing is wrong.
    pub revision: String,
}

pub trait Critic: Send + Sync {
    /// Its name, as the labels it makes are stored under.
    fn name(&self) -> &str;

    /// Principles it cannot apply, refused before any work.
    fn check(&self, _constitution: &Constitution) -> Result<(), String> {
        Ok(())
    }

    fn critique(&self, prompt: &Prompt, response: &str, principle: &Principle) -> Result<Critique, String>;

    /// Which of `a` (left) and `b` (right) better follows `principle`.
    fn compare(&self, prompt: &Prompt, a: &str, b: &str, principle: &Principle) -> Result<Choice, String>;
}

/// One critique-and-revise round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub principle: String,
    pub critique: String,
    pub revision: String,
}

impl Step {
    /// Whether the critic changed the response it was given.
    pub fn changed(&self, before: &str) -> bool {
        self.revision.trim() != before.trim()
    }
}

/// A sampled response and its rounds of revision: one line of the run's
/// `cai_revisions.jsonl`, the data SL-CAI fine-tunes on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Revised {
    /// The prompt as a person reads it.
    pub prompt: String,
    pub original: String,
    pub steps: Vec<Step>,
    /// The judge's scores of the original and of each step's revision,
    /// where the run has a judge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<f32>,
}

impl Revised {
    /// The response after the last round.
    pub fn revision(&self) -> &str {
        self.steps.last().map_or(&self.original, |s| &s.revision)
    }

    /// The response each step was given: the original, then each revision.
    pub fn befores(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.original.as_str()).chain(self.steps.iter().map(|s| s.revision.as_str()))
    }
}

/// `response` critiqued and revised in `rounds` rounds, each under a
/// principle drawn at random; no principle twice for one response (more
/// rounds than principles stop when they run out).
pub fn revise<R: Rng>(
    critic: &dyn Critic,
    constitution: &Constitution,
    prompt: &Prompt,
    response: &str,
    rounds: usize,
    rng: &mut R,
) -> Result<Revised, String> {
    let mut order: Vec<&Principle> = constitution.principles.iter().collect();
    order.shuffle(rng);
    let mut current = response.to_string();
    let mut steps = Vec::with_capacity(rounds);
    for principle in order.into_iter().take(rounds) {
        let critique = critic.critique(prompt, &current, principle)?;
        current = critique.revision.clone();
        steps.push(Step {
            principle: principle.name.clone(),
            critique: critique.text,
            revision: critique.revision,
        });
    }
    Ok(Revised {
        prompt: prompt.readable(),
        original: response.to_string(),
        steps,
        scores: Vec::new(),
    })
}

/// One principle's counts over a set of revisions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PrincipleCount {
    pub name: String,
    /// Rounds that drew it.
    pub drawn: usize,
    /// Of those, rounds whose critique changed the response.
    pub revised: usize,
    /// Of those, revisions the judge scored above the response before
    /// them by more than a tie (where the run has a judge).
    pub beat: usize,
}

/// Counts per principle, in the constitution's order.
pub fn count(constitution: &Constitution, revised: &[Revised]) -> Vec<PrincipleCount> {
    let mut counts: Vec<PrincipleCount> = constitution
        .principles
        .iter()
        .map(|p| PrincipleCount {
            name: p.name.clone(),
            ..PrincipleCount::default()
        })
        .collect();
    for r in revised {
        for (i, (step, before)) in r.steps.iter().zip(r.befores()).enumerate() {
            let Some(c) = counts.iter_mut().find(|c| c.name == step.principle) else {
                continue;
            };
            c.drawn += 1;
            if step.changed(before) {
                c.revised += 1;
                let beat = matches!(r.scores.get(i..i + 2), Some([b, a]) if a - b >= TIE_MARGIN);
                c.beat += usize::from(beat);
            }
        }
    }
    counts
}

/// Revisions in the pane's examples.
const EXAMPLES: usize = 8;

/// What a set of revisions came to: the first few that changed their
/// response, the counts per principle, the share of responses changed
/// and, where they were `judged`, the share of those the judge scored
/// above their original by more than a tie.
pub fn summary(constitution: &Constitution, revised: &[Revised], judged: bool) -> CaiView {
    let changed: Vec<&Revised> = revised.iter().filter(|r| r.revision() != r.original).collect();
    let won = judged.then(|| {
        let beat = changed
            .iter()
            .filter(|r| matches!((r.scores.first(), r.scores.last()), (Some(a), Some(b)) if b - a >= TIE_MARGIN))
            .count();
        beat as f64 / changed.len().max(1) as f64
    });
    CaiView {
        examples: changed.iter().take(EXAMPLES).map(|r| (*r).clone()).collect(),
        counts: count(constitution, revised),
        changed: changed.len() as f64 / revised.len().max(1) as f64,
        won,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replaces "bad" by "good" under every principle.
    struct Mend;

    impl Critic for Mend {
        fn name(&self) -> &str {
            "mend"
        }

        fn critique(&self, _: &Prompt, response: &str, p: &Principle) -> Result<Critique, String> {
            Ok(Critique {
                text: format!("{}: {}", p.name, response.contains("bad")),
                revision: response.replacen("bad", "good", 1),
            })
        }

        fn compare(&self, _: &Prompt, _: &str, _: &str, _: &Principle) -> Result<Choice, String> {
            Ok(Choice::Tie)
        }
    }

    #[test]
    fn rounds_draw_distinct_principles_and_chain_revisions() {
        use rand::SeedableRng;
        let c = Constitution::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let prompt = Prompt::question("q");
        let r = revise(&Mend, &c, &prompt, "bad bad bad", 4, &mut rng).unwrap();
        assert_eq!(r.steps.len(), 4);
        let mut names: Vec<&str> = r.steps.iter().map(|s| s.principle.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 4);
        assert_eq!(r.revision(), "good good good");
        assert_eq!(r.steps[3].revision, "good good good");
        // More rounds than principles: each once.
        assert_eq!(revise(&Mend, &c, &prompt, "x", 9, &mut rng).unwrap().steps.len(), 5);
        // Counted: the first three rounds changed it, the fourth did not;
        // with scores 0.2, 0.5, 0.52, 0.9, 0.9 the first and third beat.
        let mut scored = r.clone();
        scored.scores = vec![0.2, 0.5, 0.52, 0.9, 0.9];
        let counts = count(&c, &[scored]);
        let of = |name: &str| counts.iter().find(|c| c.name == name).unwrap().clone();
        let s = &r.steps;
        assert_eq!((of(&s[0].principle).revised, of(&s[0].principle).beat), (1, 1));
        assert_eq!((of(&s[1].principle).revised, of(&s[1].principle).beat), (1, 0));
        assert_eq!((of(&s[2].principle).revised, of(&s[2].principle).beat), (1, 1));
        assert_eq!((of(&s[3].principle).drawn, of(&s[3].principle).revised), (1, 0));
        assert_eq!(counts.iter().map(|c| c.drawn).sum::<usize>(), 4);
    }
}
