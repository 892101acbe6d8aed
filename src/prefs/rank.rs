//! From judgments to what the reward model trains on: a ranking of K
//! responses is K(K−1)/2 pairs (InstructGPT's expansion), a choice with a
//! winner is one pair, and ties, "both bad" and skips teach it nothing.
//! Where a person and the judge both judged a set, the person's judgment
//! counts.

use std::collections::BTreeMap;

use super::formats::PreferencePair;
use super::record::{Choice, Criterion, Judgment, Source, Verdict};

/// Every (better, worse) pair of a ranking given best first: K(K−1)/2 of them.
pub fn ranking_pairs(ranking: &[usize]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::with_capacity(ranking.len() * ranking.len().saturating_sub(1) / 2);
    for (i, &better) in ranking.iter().enumerate() {
        for &worse in &ranking[i + 1..] {
            pairs.push((better, worse));
        }
    }
    pairs
}

/// The (better, worse) pairs of one verdict, as response indices.
pub fn verdict_pairs(verdict: &Verdict) -> Vec<(usize, usize)> {
    match verdict {
        Verdict::Choice(Choice::Left) => vec![(0, 1)],
        Verdict::Choice(Choice::Right) => vec![(1, 0)],
        Verdict::Choice(_) => Vec::new(),
        Verdict::Ranking(order) => ranking_pairs(order),
    }
}

/// Whether a ranking orders each of `k` responses exactly once.
pub fn is_ranking_of(order: &[usize], k: usize) -> bool {
    let mut seen = vec![false; k];
    order.len() == k && order.iter().all(|&i| i < k && !std::mem::replace(&mut seen[i], true))
}

/// The training pairs of a run's live judgments: per judged set one
/// judgment, a person's (or an imported file's) over the judge's, one made
/// overall over one on a single criterion, and the latest of equals.
pub fn training_pairs(judgments: &[Judgment]) -> Vec<PreferencePair> {
    let rank = |j: &Judgment| (j.source != Source::Judge, j.criterion() == Criterion::Overall);
    let mut by_set: BTreeMap<u64, &Judgment> = BTreeMap::new();
    for j in judgments {
        if by_set.get(&j.pair).is_none_or(|held| rank(j) >= rank(held)) {
            by_set.insert(j.pair, j);
        }
    }
    by_set
        .values()
        .flat_map(|j| {
            verdict_pairs(&j.verdict)
                .into_iter()
                .filter(|&(a, b)| a.max(b) < j.responses.len() && j.responses[a] != j.responses[b])
                .map(|(a, b)| PreferencePair {
                    prompt: j.prompt.clone(),
                    chosen: j.responses[a].clone(),
                    rejected: j.responses[b].clone(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ranking_of_k_is_k_choose_2_pairs_in_order() {
        assert_eq!(ranking_pairs(&[2, 0, 1]), [(2, 0), (2, 1), (0, 1)]);
        for k in 2..=9 {
            let order: Vec<usize> = (0..k).rev().collect();
            assert_eq!(ranking_pairs(&order).len(), k * (k - 1) / 2);
        }
        assert!(ranking_pairs(&[4]).is_empty());
        assert!(is_ranking_of(&[2, 0, 1], 3));
        assert!(!is_ranking_of(&[2, 2, 1], 3));
        assert!(!is_ranking_of(&[0, 1], 3));
        assert!(!is_ranking_of(&[0, 3, 1], 3));
    }

    fn judged(pair: u64, source: Source, verdict: Verdict, responses: &[&str]) -> Judgment {
        Judgment {
            prompt: "P:".into(),
            responses: responses.iter().map(|s| s.to_string()).collect(),
            ..Judgment::example(pair, &format!("{source:?}"), source, verdict)
        }
    }

    #[test]
    fn a_persons_judgment_outranks_the_judges_and_ties_give_no_pair() {
        let judgments = [
            judged(1, Source::Judge, Verdict::Choice(Choice::Left), &["a", "b"]),
            judged(1, Source::Human, Verdict::Choice(Choice::Right), &["a", "b"]),
            judged(2, Source::Human, Verdict::Choice(Choice::Tie), &["c", "d"]),
            judged(3, Source::Human, Verdict::Ranking(vec![1, 2, 0]), &["x", "y", "z"]),
            judged(4, Source::Judge, Verdict::Choice(Choice::Left), &["e", "f"]),
            judged(4, Source::Judge, Verdict::Choice(Choice::Right), &["e", "f"]),
            // The judge's overall verdict, not its verdict on one criterion.
            judged(5, Source::Judge, Verdict::Choice(Choice::Left), &["g", "h"]),
            Judgment {
                criteria: vec![Criterion::Harmless],
                ..judged(5, Source::Judge, Verdict::Choice(Choice::Right), &["g", "h"])
            },
        ];
        let pairs: Vec<(String, String)> = training_pairs(&judgments)
            .into_iter()
            .map(|p| (p.chosen, p.rejected))
            .collect();
        let want = [("b", "a"), ("y", "z"), ("y", "x"), ("z", "x"), ("f", "e"), ("g", "h")];
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(pairs, want);
    }
}
