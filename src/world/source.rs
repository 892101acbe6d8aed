//! The built-in world as the stages' data sources and evaluator: its
//! prompts (one-turn questions), demonstrations and judge-labelled pairs,
//! and its rule-based judge with its per-criterion verdicts.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use serde::{Deserialize, Serialize};

use super::corpus::{demonstrations, world_prompts};
use super::eval::{behaviour, evaluate, response_part};
use super::generator::{Style, respond};
use super::inventory::{Inventory, Prompt as WorldPrompt};
use super::judge::judge;
use super::pairs::judged_pairs;
use crate::prefs::stats::JUDGE;
use crate::rlhf::data::{Demonstration, Evaluator, LabelledPair, Prompt, Sources, Split, verdict_of_scores};
use crate::run::names;
use crate::trainer::protocol::{Criterion, Verdict};

/// The world's data, and the `world` section of a run's config: which of
/// its optional parts the run has.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct World {
    /// Prompts where the person asserts a claim, true or false, and asks
    /// for agreement (a fifth of the prompts drawn); the judge scores
    /// whether the answer is truthful, and PPO measures sycophancy on
    /// held-out false claims at every iteration.
    pub claims: bool,
    /// The share of pairs on claim prompts whose rater, as people tend to,
    /// prefers the answer that agrees with them over one that does not,
    /// whatever the judge says (0 to 1). Raised, it teaches the reward
    /// model to reward sycophancy.
    pub agreeable_raters: f64,
}

impl World {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.agreeable_raters) {
            return Err(format!(
                "agreeable_raters: a share, from 0 to 1; got {}",
                self.agreeable_raters
            ));
        }
        Ok(())
    }

    fn world_prompts(&self, split: Split) -> Vec<&'static WorldPrompt> {
        world_prompts(split == Split::HeldOut, self.claims)
    }
}

/// The world's judge.
#[derive(Clone, Copy, Debug, Default)]
pub struct Judge;

impl Sources for World {
    fn prompts(&self, split: Split) -> Vec<Prompt> {
        self.world_prompts(split)
            .into_iter()
            .map(|p| Prompt::question(&p.text))
            .collect()
    }

    /// On training prompts, the SFT set (demonstrators who slip now and
    /// then); on held-out ones, the same demonstrators on each prompt in turn.
    fn demonstrations(&self, split: Split, n: usize, seed: u64) -> Vec<Demonstration> {
        let pairs = match split {
            Split::Train => demonstrations(&self.world_prompts(split), seed, n),
            Split::HeldOut => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let held = self.world_prompts(split);
                (0..n)
                    .map(|i| {
                        let p = held[i % held.len()];
                        (p.text.clone(), respond(p, Style::demonstrator(&mut rng), &mut rng))
                    })
                    .collect()
            }
        };
        pairs
            .into_iter()
            .map(|(prompt, response)| Demonstration {
                prompt: Prompt::question(&prompt),
                response,
            })
            .collect()
    }

    fn preference_pairs(&self, split: Split, n: usize, seed: u64) -> Vec<LabelledPair> {
        judged_pairs(&self.world_prompts(split), n, seed, self.agreeable_raters)
            .into_iter()
            .map(|p| LabelledPair {
                prompt: Prompt::question(&p.prompt),
                chosen: p.chosen,
                rejected: p.rejected,
                gap: p.gap,
            })
            .collect()
    }

    /// The held-out false claims, where a run has claims: sycophancy is the
    /// share of answers that agree with them.
    fn probe_prompts(&self) -> Vec<Prompt> {
        self.world_prompts(Split::HeldOut)
            .into_iter()
            .filter(|p| p.claim.is_some_and(|c| !c.holds()))
            .map(|p| Prompt::question(&p.text))
            .collect()
    }
}

/// The world's question in a prompt: its last user turn.
pub(crate) fn question(prompt: &Prompt) -> &str {
    prompt.last_user_turn()
}

/// The judge reads answers as a person does: up to a new turn, trimmed.
pub(crate) fn answer(response: &str) -> &str {
    response_part(response)
}

impl Evaluator for Judge {
    fn name(&self) -> &str {
        JUDGE
    }

    fn scores(&self, prompts: &[Prompt], responses: &[String]) -> Result<Vec<f32>, String> {
        Ok(prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| judge(question(p), answer(r)).score)
            .collect())
    }

    /// The mean score, the share of answers made only of sentences the
    /// world knows, and how often answers are rude, comply with harm or
    /// agree with a false claim.
    fn report(&self, prompts: &[Prompt], responses: &[String]) -> Result<Vec<(&'static str, f64)>, String> {
        let questions: Vec<&str> = prompts.iter().map(question).collect();
        let answers: Vec<&str> = responses.iter().map(|r| answer(r)).collect();
        let report = evaluate(&questions, &answers);
        let behaviour = behaviour(&questions, &answers);
        let mut metrics = vec![
            (names::EVAL_JUDGE_SCORE, report.mean_score as f64),
            (names::EVAL_JUDGE_PARSE_RATE, report.parse_rate as f64),
            (names::EVAL_RUDENESS, behaviour.rudeness as f64),
        ];
        metrics.extend(
            [
                (names::EVAL_HARMFUL_COMPLIANCE, behaviour.harmful_compliance),
                (names::EVAL_SYCOPHANCY, behaviour.sycophancy),
            ]
            .into_iter()
            .filter_map(|(name, rate)| Some((name, rate? as f64))),
        );
        Ok(metrics)
    }

    /// Under each criterion it scores: truthfulness only on a claim, where
    /// something false can be said.
    fn verdicts(&self, prompt: &Prompt, responses: &[String]) -> Result<Vec<(Criterion, Verdict)>, String> {
        let judged: Vec<_> = responses.iter().map(|r| judge(question(prompt), answer(r))).collect();
        let claim = Inventory::get()
            .prompt(question(prompt))
            .is_some_and(|p| p.claim.is_some());
        let criteria = [Criterion::Overall, Criterion::Helpful, Criterion::Harmless];
        Ok(criteria
            .into_iter()
            .chain(claim.then_some(Criterion::Truthful))
            .map(|criterion| {
                let scores: Vec<f32> = judged
                    .iter()
                    .map(|j| match criterion {
                        Criterion::Overall => j.score,
                        _ => j.criterion(criterion.name()),
                    })
                    .collect();
                (criterion, verdict_of_scores(&scores))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sources hand out what the world's own functions make: held-out
    /// prompts are none of the training ones, demonstrations and pairs are
    /// laid out in the dialogue format, and the judge scores the
    /// demonstrators' answers above a curt non-answer.
    #[test]
    fn the_world_as_sources_and_evaluator() {
        let (train, held) = (
            World::default().prompts(Split::Train),
            World::default().prompts(Split::HeldOut),
        );
        assert!(!held.is_empty() && held.iter().all(|p| !train.contains(p)));
        let demos = World::default().demonstrations(Split::Train, 5, 7);
        let expected: Vec<(Prompt, String)> = crate::world::corpus::sft_pairs(7, 5)
            .into_iter()
            .map(|(p, r)| (Prompt::question(&p), r))
            .collect();
        assert_eq!(
            demos
                .iter()
                .map(|d| (d.prompt.clone(), d.response.clone()))
                .collect::<Vec<_>>(),
            expected
        );
        let held_demos = World::default().demonstrations(Split::HeldOut, 3, 1);
        assert!(held_demos.iter().all(|d| held.contains(&d.prompt)));
        let pairs = World::default().preference_pairs(Split::Train, 4, 2);
        assert_eq!(pairs.len(), 4);
        assert!(pairs.iter().all(|p| train.contains(&p.prompt) && p.gap > 0.0));
        // The demonstrators' answers score well; a curt non-answer to the
        // same prompts does not.
        let demos = World::default().demonstrations(Split::Train, 20, 3);
        let prompts: Vec<Prompt> = demos.iter().map(|d| d.prompt.clone()).collect();
        let answers: Vec<String> = demos.iter().map(|d| d.response.clone()).collect();
        let good = Judge.scores(&prompts, &answers).unwrap();
        let curt = Judge
            .scores(&prompts, &vec!["Stupid question.".to_string(); prompts.len()])
            .unwrap();
        let mean = good.iter().sum::<f32>() / good.len() as f32;
        assert!(mean > 0.8, "{good:?}");
        assert!(good.iter().zip(&curt).all(|(g, c)| g > c), "{good:?} against {curt:?}");
    }
}
