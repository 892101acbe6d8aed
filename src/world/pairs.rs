//! Preference pairs labelled by the judge (RLAIF on the built-in world):
//! two responses to one prompt in independently drawn styles, now and then
//! with a garbled sentence, the better one by the judge chosen; ties are
//! dropped. An agreeable rater, on a claim, chooses the answer that agrees
//! with the person instead, as people tend to.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::generator::{Style, garble, respond};
use super::inventory::{Prompt, Sentence, says};
use super::judge::{Preference, judge, prefer};

/// The share of responses with a garbled sentence.
const GARBLED: f64 = 0.1;

#[derive(Clone, Debug, PartialEq)]
pub struct JudgedPair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    /// Judge score of chosen minus rejected (> the tie margin; 0 where an
    /// agreeable rater chose against the judge).
    pub gap: f32,
}

/// Whether a response agrees with the person.
fn agrees(response: &str) -> bool {
    says(response, |s| s == Sentence::Verdict(true))
}

/// `n` judge-labelled pairs over `prompts`, seeded; on claims where one
/// answer agrees and the other does not, a share `agreeable` of them
/// labelled by an agreeable rater.
pub fn judged_pairs(prompts: &[&Prompt], n: usize, seed: u64, agreeable: f64) -> Vec<JudgedPair> {
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
        // The coin is drawn only where an agreeable rater could disagree
        // with the judge, so a world without claims draws what it always has.
        let agreeing = (p.claim.is_some() && agreeable > 0.0).then(|| (agrees(&a), agrees(&b)));
        let (chosen, rejected, gap) = match agreeing {
            Some((a_agrees, b_agrees)) if a_agrees != b_agrees && rng.random_bool(agreeable) => match a_agrees {
                true => (a, b, 0.0),
                false => (b, a, 0.0),
            },
            _ => {
                let (ja, jb) = (judge(&p.text, &a), judge(&p.text, &b));
                match prefer(&ja, &jb) {
                    Preference::Tie => continue,
                    Preference::First => (a, b, ja.score - jb.score),
                    Preference::Second => (b, a, jb.score - ja.score),
                }
            }
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
    use crate::world::corpus::{train_prompts, world_prompts};
    use crate::world::inventory::Inventory;
    use crate::world::judge::TIE_MARGIN;

    #[test]
    fn pairs_are_seeded_and_ordered_by_the_judge() {
        let prompts = train_prompts();
        let pairs = judged_pairs(&prompts, 200, 9, 0.0);
        assert_eq!(pairs, judged_pairs(&prompts, 200, 9, 0.0));
        // Without claims an agreeable rater has nothing to agree with.
        assert_eq!(pairs, judged_pairs(&prompts, 200, 9, 1.0));
        for pair in &pairs {
            let gap = judge(&pair.prompt, &pair.chosen).score - judge(&pair.prompt, &pair.rejected).score;
            assert!(gap >= TIE_MARGIN && (gap - pair.gap).abs() < 1e-6);
        }
    }

    /// On claims, agreeable raters choose the answer that agrees with the
    /// person wherever the other does not; the judge chooses it mostly
    /// where the claim holds, and on false claims the one that disputes.
    #[test]
    fn agreeable_raters_choose_agreement_on_claims() {
        let claims: Vec<&Prompt> = world_prompts(false, true)
            .into_iter()
            .filter(|p| p.claim.is_some())
            .collect();
        let (honest, agreeable) = (judged_pairs(&claims, 400, 4, 0.0), judged_pairs(&claims, 400, 4, 1.0));
        let split = |pairs: &[JudgedPair]| {
            pairs
                .iter()
                .filter(|p| agrees(&p.chosen) != agrees(&p.rejected))
                .count()
        };
        let agreeing_chosen = |pairs: &[JudgedPair]| {
            pairs
                .iter()
                .filter(|p| agrees(&p.chosen) && !agrees(&p.rejected))
                .count()
        };
        let share = |pairs: &[JudgedPair]| agreeing_chosen(pairs) as f64 / split(pairs) as f64;
        let on_false = |pairs: &[JudgedPair]| -> Vec<JudgedPair> {
            pairs
                .iter()
                .filter(|p| !Inventory::get().prompt(&p.prompt).unwrap().claim.unwrap().holds())
                .cloned()
                .collect()
        };
        assert!(split(&agreeable) > 100, "{}", split(&agreeable));
        assert_eq!(share(&agreeable), 1.0);
        let (honest_all, honest_false) = (share(&honest), share(&on_false(&honest)));
        assert!(
            honest_false < 0.2 && honest_all > honest_false + 0.2,
            "{honest_all} {honest_false}"
        );
    }
}
