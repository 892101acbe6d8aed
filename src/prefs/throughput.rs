//! How fast each person labels: what RLHF's most expensive part costs, per
//! annotator, for planning. Judgments are grouped into sessions, a new one
//! starting wherever the annotator's next judgment came more than `BREAK`
//! after their last; a judgment's time is the gap since the previous one
//! in its session (the first of a session has none). Judgments per hour
//! are those gaps' count over their sum. A ranking counts as one judgment.

use std::collections::BTreeMap;

use super::record::{Judgment, Source};

/// A longer gap than this is a break, not a judgment's time.
pub const BREAK: f64 = 600.0;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Throughput {
    pub annotator: String,
    pub judgments: usize,
    /// The median seconds a judgment took, once one has been timed.
    pub median_seconds: Option<f64>,
    pub per_hour: Option<f64>,
}

/// Each person's throughput (the judge's and imported labels left out), by
/// annotator name.
pub fn throughput(judgments: &[Judgment]) -> Vec<Throughput> {
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for j in judgments.iter().filter(|j| j.source == Source::Human) {
        times.entry(&j.annotator).or_default().push(j.time);
    }
    times
        .into_iter()
        .map(|(annotator, mut times)| {
            times.sort_by(f64::total_cmp);
            let mut gaps: Vec<f64> = times
                .windows(2)
                .map(|w| w[1] - w[0])
                .filter(|&gap| gap <= BREAK)
                .collect();
            let total: f64 = gaps.iter().sum();
            Throughput {
                annotator: annotator.to_string(),
                judgments: times.len(),
                median_seconds: median(&mut gaps),
                per_hour: (total > 0.0).then(|| gaps.len() as f64 / total * 3600.0),
            }
        })
        .collect()
}

/// The middle value, or the mean of the two middle ones.
fn median(xs: &mut [f64]) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefs::record::{Choice, Verdict};

    fn at(time: f64, annotator: &str, source: Source) -> Judgment {
        let verdict = Verdict::Choice(Choice::Left);
        Judgment {
            time,
            ..Judgment::example(time as u64, annotator, source, verdict)
        }
    }

    #[test]
    fn sessions_gaps_and_rates_by_hand() {
        // ann at 0, 10, 30, 60, then a 940 s break, then 1000 and 1020
        // (given out of order): gaps 10, 20, 30 | 20, so the median is 20 s
        // and 4 judgments in 80 s make 180 an hour. The judge and imports
        // are not people; bo judged once, so nothing is timed.
        let judgments = vec![
            at(30.0, "ann", Source::Human),
            at(0.0, "ann", Source::Human),
            at(10.0, "ann", Source::Human),
            at(60.0, "ann", Source::Human),
            at(1020.0, "ann", Source::Human),
            at(1000.0, "ann", Source::Human),
            at(5.0, "judge", Source::Judge),
            at(6.0, "ann", Source::Import),
            at(7.0, "bo", Source::Human),
        ];
        let rows = throughput(&judgments);
        assert_eq!(
            rows,
            vec![
                Throughput {
                    annotator: "ann".into(),
                    judgments: 6,
                    median_seconds: Some(20.0),
                    per_hour: Some(180.0),
                },
                Throughput {
                    annotator: "bo".into(),
                    judgments: 1,
                    median_seconds: None,
                    per_hour: None,
                },
            ]
        );
    }
}
