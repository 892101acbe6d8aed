//! The built-in world as the stages' data sources and evaluator: its
//! prompts, demonstrations and judge-labelled pairs, laid out in the
//! HH-RLHF dialogue format, and its rule-based judge.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::corpus::{held_out_prompts, sft_pairs, train_prompts};
use super::eval::response_part;
use super::generator::{Style, prompt_text, respond};
use super::inventory::Prompt;
use super::judge::judge;
use super::pairs::judged_pairs;
use super::tokenizer_training::EOS;
use crate::prefs::formats::PreferencePair;
use crate::rlhf::data::{Demonstration, Evaluator, LabelledPair, Sources, Split};

/// The world's data.
#[derive(Clone, Copy, Debug, Default)]
pub struct World;

/// The world's judge.
#[derive(Clone, Copy, Debug, Default)]
pub struct Judge;

fn prompts(split: Split) -> Vec<&'static Prompt> {
    match split {
        Split::Train => train_prompts(),
        Split::HeldOut => held_out_prompts(),
    }
}

impl Sources for World {
    fn prompts(&self, split: Split) -> Vec<String> {
        prompts(split).into_iter().map(|p| p.text.clone()).collect()
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
            .map(|(prompt, response)| Demonstration { prompt, response })
            .collect()
    }

    fn preference_pairs(&self, split: Split, n: usize, seed: u64) -> Vec<LabelledPair> {
        judged_pairs(&prompts(split), n, seed)
            .into_iter()
            .map(|p| LabelledPair {
                pair: PreferencePair {
                    prompt: self.prompt_text(&p.prompt),
                    chosen: self.response_text(&p.chosen),
                    rejected: self.response_text(&p.rejected),
                },
                gap: p.gap,
            })
            .collect()
    }

    fn prompt_text(&self, prompt: &str) -> String {
        prompt_text(prompt)
    }

    fn response_text(&self, response: &str) -> String {
        format!(" {response}")
    }

    fn eos(&self) -> &str {
        EOS
    }

    fn answer<'a>(&self, continuation: &'a str) -> &'a str {
        response_part(continuation)
    }
}

impl Evaluator for Judge {
    fn scores(&self, prompts: &[String], responses: &[String]) -> Vec<f32> {
        prompts.iter().zip(responses).map(|(p, r)| judge(p, r).score).collect()
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
        let expected: Vec<(String, String)> = sft_pairs(7, 5);
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
        assert!(
            pairs
                .iter()
                .all(|p| p.pair.prompt.ends_with("Assistant:") && p.pair.chosen.starts_with(' '))
        );
        // The demonstrators' answers score well; a curt non-answer to the
        // same prompts does not.
        let demos = World.demonstrations(Split::Train, 20, 3);
        let prompts: Vec<String> = demos.iter().map(|d| d.prompt.clone()).collect();
        let answers: Vec<String> = demos.iter().map(|d| d.response.clone()).collect();
        let good = Judge.scores(&prompts, &answers);
        let curt = Judge.scores(&prompts, &vec!["Stupid question.".to_string(); prompts.len()]);
        let mean = good.iter().sum::<f32>() / good.len() as f32;
        assert!(mean > 0.8, "{good:?}");
        assert!(good.iter().zip(&curt).all(|(g, c)| g > c), "{good:?} against {curt:?}");
    }
}
