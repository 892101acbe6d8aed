//! The built-in world as the stages' data sources and evaluator: its
//! prompts (one-turn questions), demonstrations and judge-labelled pairs,
//! and its rule-based judge with its per-criterion verdicts.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::corpus::{held_out_prompts, sft_pairs, train_prompts};
use super::eval::{behaviour, evaluate, response_part};
use super::generator::{Style, respond};
use super::inventory::Prompt as WorldPrompt;
use super::judge::judge;
use super::pairs::judged_pairs;
use crate::prefs::stats::JUDGE;
use crate::rlhf::data::{Demonstration, Evaluator, LabelledPair, Prompt, Sources, Split, verdict_of_scores};
use crate::run::names;
use crate::trainer::protocol::{Criterion, Verdict};

/// The world's data.
#[derive(Clone, Copy, Debug, Default)]
pub struct World;

/// The world's judge.
#[derive(Clone, Copy, Debug, Default)]
pub struct Judge;

fn prompts(split: Split) -> Vec<&'static WorldPrompt> {
    match split {
        Split::Train => train_prompts(),
        Split::HeldOut => held_out_prompts(),
    }
}

impl Sources for World {
    fn prompts(&self, split: Split) -> Vec<Prompt> {
        prompts(split).into_iter().map(|p| Prompt::question(&p.text)).collect()
    }

    /// On training prompts, the SFT set (demonstrators who slip now and
    /// then); on held-out ones, the same demonstrators on each prompt in turn.
    fn demonstrations(&self, split: Split, n: usize, seed: u64) -> Vec<Demonstration> {
        let pairs = match split {
            Split::Train => sft_pairs(seed, n),
            Split::HeldOut => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let held = held_out_prompts();
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
        judged_pairs(&prompts(split), n, seed)
            .into_iter()
            .map(|p| LabelledPair {
                prompt: Prompt::question(&p.prompt),
                chosen: p.chosen,
                rejected: p.rejected,
                gap: p.gap,
            })
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
    /// world knows, and how often answers are rude or comply with harm.
    fn report(&self, prompts: &[Prompt], responses: &[String]) -> Result<Vec<(&'static str, f64)>, String> {
        let questions: Vec<&str> = prompts.iter().map(question).collect();
        let answers: Vec<&str> = responses.iter().map(|r| answer(r)).collect();
        let report = evaluate(&questions, &answers);
        let (compliance, rudeness) = behaviour(&questions, &answers);
        let mut metrics = vec![
            (names::EVAL_JUDGE_SCORE, report.mean_score as f64),
            (names::EVAL_JUDGE_PARSE_RATE, report.parse_rate as f64),
            (names::EVAL_RUDENESS, rudeness as f64),
        ];
        metrics.extend(compliance.map(|c| (names::EVAL_HARMFUL_COMPLIANCE, c as f64)));
        Ok(metrics)
    }

    /// Under each criterion it scores (it has no measure of truthfulness).
    fn verdicts(&self, prompt: &Prompt, responses: &[String]) -> Result<Vec<(Criterion, Verdict)>, String> {
        let judged: Vec<_> = responses.iter().map(|r| judge(question(prompt), answer(r))).collect();
        Ok([Criterion::Overall, Criterion::Helpful, Criterion::Harmless]
            .into_iter()
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
        let (train, held) = (World.prompts(Split::Train), World.prompts(Split::HeldOut));
        assert!(!held.is_empty() && held.iter().all(|p| !train.contains(p)));
        let demos = World.demonstrations(Split::Train, 5, 7);
        let expected: Vec<(Prompt, String)> = sft_pairs(7, 5)
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
        let held_demos = World.demonstrations(Split::HeldOut, 3, 1);
        assert!(held_demos.iter().all(|d| held.contains(&d.prompt)));
        let pairs = World.preference_pairs(Split::Train, 4, 2);
        assert_eq!(pairs.len(), 4);
        assert!(pairs.iter().all(|p| train.contains(&p.prompt) && p.gap > 0.0));
        // The demonstrators' answers score well; a curt non-answer to the
        // same prompts does not.
        let demos = World.demonstrations(Split::Train, 20, 3);
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
