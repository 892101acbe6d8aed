//! How often one model's responses beat another's in a blind comparison,
//! with a 95% interval: ties count half a win to each side (as InstructGPT
//! and the chatbot arenas report them), and the interval is Wilson's score
//! interval, which stays inside [0, 1] and behaves at small counts and at
//! rates near 0 or 1, where the normal approximation does not.

use serde::Serialize;

use super::data::{Evaluator, Prompt};

/// The standard normal quantile of 0.975: a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Which response of a pair won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    A,
    B,
    Tie,
}

impl Outcome {
    /// The outcome of two scores, higher better; scores within `1e-6` tie.
    pub fn of_scores(a: f32, b: f32) -> Self {
        match a - b {
            d if d > 1e-6 => Self::A,
            d if d < -1e-6 => Self::B,
            _ => Self::Tie,
        }
    }
}

/// The judge's outcome of each pair of answers to `prompts`, A's against
/// B's, each scored without the judge knowing whose it is.
pub fn judged_outcomes(
    judge: &dyn Evaluator,
    prompts: &[Prompt],
    answers_a: &[String],
    answers_b: &[String],
) -> Result<Vec<Outcome>, String> {
    let (a, b) = (judge.scores(prompts, answers_a)?, judge.scores(prompts, answers_b)?);
    Ok(a.iter().zip(&b).map(|(&a, &b)| Outcome::of_scores(a, b)).collect())
}

/// A's win rate over B and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct WinRate {
    pub n: usize,
    pub wins_a: usize,
    pub wins_b: usize,
    pub ties: usize,
    /// (wins of A + ties / 2) / n.
    pub win_rate_a: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

impl WinRate {
    pub fn of(outcomes: &[Outcome]) -> Self {
        let count = |o: Outcome| outcomes.iter().filter(|&&x| x == o).count();
        let (wins_a, wins_b, ties) = (count(Outcome::A), count(Outcome::B), count(Outcome::Tie));
        let n = outcomes.len();
        let score = wins_a as f64 + ties as f64 / 2.0;
        let (ci_low, ci_high) = wilson(score, n as f64, Z_95);
        Self {
            n,
            wins_a,
            wins_b,
            ties,
            win_rate_a: if n == 0 { f64::NAN } else { score / n as f64 },
            ci_low,
            ci_high,
        }
    }
}

/// Wilson's score interval for `successes` out of `n` at quantile `z`:
/// (p̂ + z²/2n ± z·√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n). With no trials
/// it is the whole of [0, 1].
pub fn wilson(successes: f64, n: f64, z: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let p = successes / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    ((center - half).max(0.0), (center + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_worked_by_hand() {
        // 7 of 10, z = 1.96: z²/n = 0.38416, so the centre is
        // (0.7 + 0.19208)/1.38416 = 0.644492 and the half-width
        // 1.96·√(0.021 + 0.009604)/1.38416 = 0.247718: [0.396774, 0.892210].
        let (low, high) = wilson(7.0, 10.0, 1.96);
        assert!(
            (low - 0.396_774).abs() < 1e-6 && (high - 0.892_210).abs() < 1e-6,
            "{low} {high}"
        );
        // 0 of 4: p̂ = 0, centre (z²/8)/(1 + z²/4) = 0.480200/1.960400 = 0.244950
        // and half-width (1.96·√(z²/64))/1.960400 = 0.480200/1.960400: [0, 0.489900].
        let (low, high) = wilson(0.0, 4.0, 1.96);
        assert!(low.abs() < 1e-12 && (high - 0.489_900).abs() < 1e-6, "{low} {high}");
        assert_eq!(wilson(0.0, 0.0, 1.96), (0.0, 1.0));
    }

    #[test]
    fn ties_count_half_a_win() {
        // 5 wins for A, 2 for B, 3 ties: (5 + 1.5)/10 = 0.65, the interval
        // Wilson's for 6.5 of 10 at the 95% quantile.
        let outcomes: Vec<Outcome> = [[Outcome::A; 5].as_slice(), &[Outcome::B; 2], &[Outcome::Tie; 3]].concat();
        let rate = WinRate::of(&outcomes);
        assert_eq!((rate.n, rate.wins_a, rate.wins_b, rate.ties), (10, 5, 2, 3));
        assert!((rate.win_rate_a - 0.65).abs() < 1e-12);
        assert_eq!((rate.ci_low, rate.ci_high), wilson(6.5, 10.0, Z_95));
        assert!(rate.ci_low < 0.65 && 0.65 < rate.ci_high);
    }

    #[test]
    fn scores_decide_the_outcome() {
        assert_eq!(Outcome::of_scores(0.9, 0.2), Outcome::A);
        assert_eq!(Outcome::of_scores(0.2, 0.9), Outcome::B);
        assert_eq!(Outcome::of_scores(0.5, 0.5), Outcome::Tie);
    }
}
