//! How judgments read on screen: "left is better", "tie", a ranking as
//! "3 > 1 > 2" (responses numbered from 1, best first).

use crate::trainer::protocol::{Choice, Verdict};

/// A verdict in words: "left is better", or a ranking as "3 > 1 > 2".
pub fn verdict_words(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Choice(choice) => choice_words(*choice).to_string(),
        Verdict::Ranking(order) => ranking_words(order),
    }
}

/// Response numbers as shown (from 1), best first.
pub fn ranking_words(order: &[usize]) -> String {
    let shown: Vec<String> = order.iter().map(|i| (i + 1).to_string()).collect();
    shown.join(" > ")
}

pub fn choice_words(choice: Choice) -> &'static str {
    match choice {
        Choice::Left => "left is better",
        Choice::Right => "right is better",
        Choice::Tie => "tie",
        Choice::BothBad => "both bad",
        Choice::Skip => "skipped",
    }
}
