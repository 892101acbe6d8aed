//! The world's data sets, all generated from a seed: the pretraining corpus
//! (every attribute combination, good and bad), the SFT demonstrations
//! (good, with the demonstrators' occasional slips) and the held-out prompts for PPO and evaluation.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::generator::{Style, dialogue, respond};
use super::inventory::{Inventory, Prompt, PromptKind, is_held_out};

/// The share of drawn prompts that are claims, in a world that has them.
const CLAIM_SHARE: f64 = 0.2;

/// Prompts that training may use.
pub fn train_prompts() -> Vec<&'static Prompt> {
    world_prompts(false, false)
}

/// Prompts no training set contains.
pub fn held_out_prompts() -> Vec<&'static Prompt> {
    world_prompts(true, false)
}

/// The held-out or training prompts, with the claim prompts or without.
pub fn world_prompts(held_out: bool, claims: bool) -> Vec<&'static Prompt> {
    Inventory::get()
        .prompts
        .iter()
        .filter(|p| is_held_out(p) == held_out && (claims || p.kind != PromptKind::Claim))
        .collect()
}

/// A training prompt drawn so harmful requests are about one in eight of
/// the others, and claims (where `prompts` has them: `claims`) one in five
/// of all.
fn draw_prompt<R: Rng>(prompts: &[&'static Prompt], claims: bool, rng: &mut R) -> &'static Prompt {
    // Only a world with claims draws for them, so a world without draws
    // the same prompts from a seed as it always has.
    if claims && rng.random_bool(CLAIM_SHARE) {
        loop {
            let p = *prompts.choose(rng).unwrap();
            if p.kind == PromptKind::Claim {
                return p;
            }
        }
    }
    let harmful = rng.random_bool(0.125);
    loop {
        let p = *prompts.choose(rng).unwrap();
        if p.kind != PromptKind::Claim && (p.kind == PromptKind::Harmful) == harmful {
            return p;
        }
    }
}

/// `n` pretraining documents: dialogues in the random style mixture.
pub fn pretrain_documents(seed: u64, n: usize) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let prompts = train_prompts();
    (0..n)
        .map(|_| {
            let p = draw_prompt(&prompts, false, &mut rng);
            let style = Style::random(&mut rng);
            dialogue(&p.text, &respond(p, style, &mut rng))
        })
        .collect()
}

/// `n` SFT demonstrations: (prompt, demonstrator's response) over training prompts.
pub fn sft_pairs(seed: u64, n: usize) -> Vec<(String, String)> {
    demonstrations(&train_prompts(), seed, n)
}

/// `n` demonstrations on prompts drawn from `prompts`.
pub fn demonstrations(prompts: &[&'static Prompt], seed: u64, n: usize) -> Vec<(String, String)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let claims = prompts.iter().any(|p| p.kind == PromptKind::Claim);
    (0..n)
        .map(|_| {
            let p = draw_prompt(prompts, claims, &mut rng);
            (p.text.clone(), respond(p, Style::demonstrator(&mut rng), &mut rng))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::judge::judge;

    #[test]
    fn generation_is_deterministic_for_a_seed() {
        assert_eq!(pretrain_documents(3, 50), pretrain_documents(3, 50));
        assert_ne!(pretrain_documents(3, 50), pretrain_documents(4, 50));
        assert_eq!(sft_pairs(3, 50), sft_pairs(3, 50));
    }

    #[test]
    fn no_training_set_contains_a_held_out_prompt() {
        let held: std::collections::HashSet<&str> = held_out_prompts().iter().map(|p| p.text.as_str()).collect();
        for (prompt, _) in sft_pairs(1, 2000) {
            assert!(!held.contains(prompt.as_str()), "{prompt}");
        }
        for doc in pretrain_documents(1, 2000) {
            let prompt = doc
                .split("\n\nAssistant:")
                .next()
                .unwrap()
                .trim_start_matches("\n\nHuman: ");
            assert!(!held.contains(prompt), "{prompt}");
        }
    }

    /// With claims, a fifth of the demonstrations answer one, always with a
    /// true verdict (or none, where the demonstrator evades); held-out
    /// claims stay out of training.
    #[test]
    fn demonstrations_on_claims_are_truthful() {
        let prompts = world_prompts(false, true);
        let demos = demonstrations(&prompts, 2, 5_000);
        let inv = Inventory::get();
        let claims: Vec<&(String, String)> = demos
            .iter()
            .filter(|(p, _)| inv.prompt(p).unwrap().kind == PromptKind::Claim)
            .collect();
        let share = claims.len() as f64 / demos.len() as f64;
        assert!((0.17..0.23).contains(&share), "{share}");
        let truthful = |(p, r): &&(String, String)| judge(p, r).criterion("truthful");
        for (prompt, response) in &claims {
            let j = judge(prompt, response);
            assert!(j.parsed && j.criterion("truthful") >= 0.5, "{prompt} {response}");
            assert!(!is_held_out(inv.prompt(prompt).unwrap()));
        }
        let true_verdicts = claims.iter().filter(|c| truthful(c) == 1.0).count();
        assert!(
            true_verdicts * 10 > claims.len() * 8,
            "{true_verdicts} of {}",
            claims.len()
        );
    }

    #[test]
    fn sft_demonstrations_are_good_and_the_corpus_is_mixed() {
        let sft = sft_pairs(0, 10_000);
        let sft_mean = sft.iter().map(|(p, r)| judge(p, r).score).sum::<f32>() / sft.len() as f32;
        assert!(sft.iter().all(|(p, r)| judge(p, r).parsed));
        eprintln!("SFT demonstrations: mean judge score {sft_mean:.4}");
        // Good, yet with room above them for preference learning.
        assert!((0.85..0.93).contains(&sft_mean), "SFT mean judge score {sft_mean}");

        let docs = pretrain_documents(0, 5_000);
        let scores: Vec<f32> = docs
            .iter()
            .map(|d| {
                let (prompt, response) = d.split_once("\n\nAssistant:").unwrap();
                let j = judge(prompt, response);
                assert!(j.parsed, "{d}");
                j.score
            })
            .collect();
        let mean = scores.iter().sum::<f32>() / scores.len() as f32;
        assert!(mean < sft_mean - 0.2, "corpus mean {mean}");
        // Every kind of response is in the corpus: refusals and compliance,
        // rude and polite, evasive and on topic.
        for marker in [
            "I can't help",
            "First, wait until",
            "Ugh, fine.",
            "Hope this helps!",
            "That is hard to say.",
            "As I said before.",
        ] {
            assert!(docs.iter().any(|d| d.contains(marker)), "no {marker:?}");
        }
    }
}
