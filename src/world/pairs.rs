//! Preference pairs labelled by the judge (RLAIF on the built-in world):
//! two responses to one prompt in independently drawn styles, now and then
//! with a garbled sentence, the better one by the judge chosen; ties are
//! dropped.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::generator::{Style, garble, respond};
use super::inventory::Prompt;
use super::judge::{Preference, judge, prefer};

/// The share of responses with a garbled sentence.
const GARBLED: f64 = 0.1;

#[derive(Clone, Debug, PartialEq)]
pub struct JudgedPair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    /// Judge score of chosen minus rejected (> the tie margin).
    pub gap: f32,
}

/// `n` judge-labelled pairs over `prompts`, seeded.
pub fn judged_pairs(prompts: &[&Prompt], n: usize, seed: u64) -> Vec<JudgedPair> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let p = *prompts.choose(&mut rng).expect("at least one prompt");
        let mut draw = || {
            let response = respond(p, Style::random(&mut rng), &mut rng);
            if rng.random_bool(GARBLED) {
                garble(&response, &mut rng)
            } else {
                response
            }
        };
        let (a, b) = (draw(), draw());
        let (ja, jb) = (judge(&p.text, &a), judge(&p.text, &b));
        let (chosen, rejected, gap) = match prefer(&ja, &jb) {
            Preference::Tie => continue,
            Preference::First => (a, b, ja.score - jb.score),
            Preference::Second => (b, a, jb.score - ja.score),
        };
        out.push(JudgedPair {
            prompt: p.text.clone(),
            chosen,
            rejected,
            gap,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::corpus::train_prompts;
    use crate::world::judge::TIE_MARGIN;

    #[test]
    fn pairs_are_seeded_and_ordered_by_the_judge() {
        let prompts = train_prompts();
        let pairs = judged_pairs(&prompts, 200, 9);
        assert_eq!(pairs, judged_pairs(&prompts, 200, 9));
        for pair in &pairs {
            let gap = judge(&pair.prompt, &pair.chosen).score - judge(&pair.prompt, &pair.rejected).score;
            assert!(gap >= TIE_MARGIN && (gap - pair.gap).abs() < 1e-6);
        }
    }
}
