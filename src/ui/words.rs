//! How things read on screen: judgments ("left is better", "tie", a
//! ranking as "3 > 1 > 2", responses numbered from 1, best first) and
//! parameter changes ("β 0.05 → 0.1", "KL mode fixed → adaptive"), in the
//! status bar's own words.

use crate::trainer::protocol::{Choice, Param, Verdict};

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

/// A parameter change as the status bar names it: `β 0.05 → 0.1`,
/// `lr 0.001 → 0.0005`, `T 1 → 0.7`, `KL mode fixed → adaptive`.
pub fn param_change(param: &Param, old: f64) -> String {
    let mode = |v: f64| if v >= 0.5 { "adaptive" } else { "fixed" };
    match param {
        Param::Beta(v) => format!("β {old} → {v}"),
        Param::LearningRate(v) => format!("lr {old} → {v}"),
        Param::Temperature(v) => format!("T {old} → {v}"),
        Param::GroupSize(k) => format!("K {old} → {k}"),
        Param::KlMode(new) => format!("KL mode {} → {}", mode(old), mode(Param::KlMode(*new).value())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainer::protocol::KlMode;

    #[test]
    fn parameter_changes_read_as_the_status_bar_names_them() {
        assert_eq!(param_change(&Param::Beta(0.1), 0.05), "β 0.05 → 0.1");
        assert_eq!(param_change(&Param::Temperature(0.7), 1.0), "T 1 → 0.7");
        assert_eq!(
            param_change(&Param::KlMode(KlMode::Adaptive), 0.0),
            "KL mode fixed → adaptive"
        );
        assert_eq!(
            param_change(&Param::KlMode(KlMode::Fixed), 1.0),
            "KL mode adaptive → fixed"
        );
    }
}
