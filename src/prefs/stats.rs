//! Agreement over a run's judgments, per criterion: what the workbench
//! shows and `prefs stats` prints. A unit is one judged pair: a pair
//! judged in pair mode, or each of the K(K−1)/2 pairs of a ranking
//! (labelled by which of its two was ranked higher). Skips are not labels.

use std::collections::BTreeMap;

use super::agreement::{cohen_kappa, krippendorff_alpha};
use super::rank::ranking_pairs;
use super::record::{Choice, Criterion, Judgment, Source, Verdict};

/// Agreement on one criterion.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Agreement {
    pub criterion: Criterion,
    /// Units labelled by at least two annotators.
    pub shared: usize,
    /// Krippendorff's α over every annotator.
    pub alpha: Option<f64>,
    /// Cohen's κ for each pair of annotators, with the units both labelled.
    pub kappas: Vec<Kappa>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Kappa {
    pub first: String,
    pub second: String,
    pub units: usize,
    pub kappa: Option<f64>,
}

impl Agreement {
    /// κ between people and the judge: the pair of annotators where one is
    /// the judge with the most shared units.
    pub fn human_judge(&self) -> Option<&Kappa> {
        self.kappas
            .iter()
            .filter(|k| (k.first == JUDGE) != (k.second == JUDGE))
            .max_by_key(|k| k.units)
    }
}

/// The judge's annotator name.
pub const JUDGE: &str = "judge";

/// A unit: the judged set, and for a ranking the two responses compared.
type Unit = (u64, usize, usize);

/// Labels by unit and annotator, for one criterion; a later judgment by
/// the same annotator replaces an earlier one.
fn labels(judgments: &[Judgment], criterion: Criterion) -> BTreeMap<Unit, BTreeMap<String, Choice>> {
    let mut units: BTreeMap<Unit, BTreeMap<String, Choice>> = BTreeMap::new();
    for j in judgments.iter().filter(|j| j.criterion() == criterion) {
        let annotator = match j.source {
            Source::Judge => JUDGE.to_string(),
            _ => j.annotator.clone(),
        };
        let mut put = |unit: Unit, choice: Choice| {
            units.entry(unit).or_default().insert(annotator.clone(), choice);
        };
        match &j.verdict {
            Verdict::Choice(Choice::Skip) => {}
            Verdict::Choice(choice) => put((j.pair, 0, 1), *choice),
            Verdict::Ranking(order) => {
                for (better, worse) in ranking_pairs(order) {
                    let (a, b) = (better.min(worse), better.max(worse));
                    put((j.pair, a, b), if better == a { Choice::Left } else { Choice::Right });
                }
            }
        }
    }
    units
}

/// Agreement for every criterion some judgment was made under.
pub fn agreement(judgments: &[Judgment]) -> Vec<Agreement> {
    Criterion::ALL
        .iter()
        .filter(|&&c| judgments.iter().any(|j| j.criterion() == c))
        .map(|&criterion| {
            let units = labels(judgments, criterion);
            let annotators: Vec<&String> = {
                let mut names: Vec<&String> = units.values().flat_map(|u| u.keys()).collect();
                names.sort();
                names.dedup();
                names
            };
            let mut kappas = Vec::new();
            for (i, first) in annotators.iter().enumerate() {
                for second in &annotators[i + 1..] {
                    let both: Vec<(Choice, Choice)> = units
                        .values()
                        .filter_map(|u| Some((*u.get(*first)?, *u.get(*second)?)))
                        .collect();
                    if !both.is_empty() {
                        kappas.push(Kappa {
                            first: first.to_string(),
                            second: second.to_string(),
                            units: both.len(),
                            kappa: cohen_kappa(&both),
                        });
                    }
                }
            }
            let rows: Vec<Vec<Choice>> = units.values().map(|u| u.values().copied().collect()).collect();
            Agreement {
                criterion,
                shared: rows.iter().filter(|r| r.len() >= 2).count(),
                alpha: krippendorff_alpha(&rows),
                kappas,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pair: u64, annotator: &str, criterion: Criterion, verdict: Verdict) -> Judgment {
        let source = if annotator == JUDGE {
            Source::Judge
        } else {
            Source::Human
        };
        Judgment {
            responses: vec!["a".into(), "b".into(), "c".into()],
            criteria: vec![criterion],
            ..Judgment::example(pair, annotator, source, verdict)
        }
    }

    #[test]
    fn per_criterion_kappa_and_alpha_from_pairs_and_rankings() {
        use Choice::*;
        let c = |choice| Verdict::Choice(choice);
        let h = Criterion::Helpful;
        let judgments = vec![
            // The hand-worked κ = 0.4 case: (L, L), (L, R), (R, R)...
            judged(1, "ann", h, c(Left)),
            judged(1, JUDGE, h, c(Left)),
            judged(2, "ann", h, c(Left)),
            judged(2, JUDGE, h, c(Right)),
            // ...the third as a ranking of two, which is the same unit shape.
            judged(3, "ann", h, Verdict::Ranking(vec![1, 0])),
            judged(3, JUDGE, h, Verdict::Ranking(vec![1, 0])),
            // Skipped and unshared units do not count.
            judged(4, "ann", h, c(Skip)),
            judged(4, JUDGE, h, c(Left)),
            // Another criterion is counted apart.
            judged(1, "ann", Criterion::Harmless, c(Tie)),
        ];
        let rows = agreement(&judgments);
        assert_eq!(rows.len(), 2);
        let helpful = &rows[0];
        assert_eq!((helpful.criterion, helpful.shared), (h, 3));
        let kappa = helpful.human_judge().unwrap();
        assert_eq!(
            (kappa.first.as_str(), kappa.second.as_str(), kappa.units),
            ("ann", "judge", 3)
        );
        assert!((kappa.kappa.unwrap() - 0.4).abs() < 1e-12);
        assert!((helpful.alpha.unwrap() - 4.0 / 9.0).abs() < 1e-12);
        assert_eq!(rows[1].criterion, Criterion::Harmless);
        assert_eq!((rows[1].shared, rows[1].alpha), (0, None));
    }
}
