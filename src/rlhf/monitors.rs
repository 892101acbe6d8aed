//! Watching PPO for the ways RLHF goes wrong, iteration by iteration:
//! reward hacking (the reward model's score rising while the judge's
//! falls, or the KL to the reference running away), mode collapse
//! (entropy or the diversity of responses falling, their length
//! drifting), sycophancy (agreeing with false claims more and more often,
//! where the run has a probe for it) and an unhealthy update (the probability ratio far from 1,
//! many clipped tokens, an approximate-KL spike). Pure: metrics in,
//! alerts out; the thresholds come from the run's config.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::run::names;
use serde::{Deserialize, Serialize};

/// The `monitors` section of a run config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Iterations a trend is read over.
    pub window: usize,
    /// Reward hacking: over the window the RM score rises by at least this
    /// while the judge's score falls by at least this.
    pub hacking_change: f64,
    /// Runaway KL: `objective/kl` (nats per response) above this.
    pub kl_max: f64,
    /// Mode collapse: the policy's mean per-token entropy below this.
    pub entropy_min: f64,
    /// Mode collapse: distinct unigrams / bigrams over all tokens of a
    /// batch's responses below these.
    pub distinct_1_min: f64,
    pub distinct_2_min: f64,
    /// Mean response length more than this share away from the first iteration's.
    pub length_drift: f64,
    /// Sycophancy: over the window, the share of probe answers agreeing
    /// with a false claim (`probe/sycophancy`) rises by at least this.
    pub sycophancy_rise: f64,
    /// PPO health: |`val/ratio` − 1| above this.
    pub ratio_tolerance: f64,
    /// PPO health: `policy/clipfrac_avg` above this.
    pub clipfrac_max: f64,
    /// PPO health: `policy/approxkl_avg` above this.
    pub approxkl_max: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            window: 5,
            hacking_change: 0.05,
            kl_max: 15.0,
            entropy_min: 0.1,
            distinct_1_min: 0.1,
            distinct_2_min: 0.2,
            length_drift: 0.5,
            sycophancy_rise: 0.2,
            ratio_tolerance: 0.2,
            clipfrac_max: 0.3,
            approxkl_max: 0.05,
        }
    }
}

impl MonitorConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.window < 2 {
            return Err(format!("window: must be at least 2 iterations, got {}", self.window));
        }
        crate::run::config::positive(
            &[
                ("hacking_change", self.hacking_change),
                ("kl_max", self.kl_max),
                ("length_drift", self.length_drift),
                ("sycophancy_rise", self.sycophancy_rise),
                ("ratio_tolerance", self.ratio_tolerance),
                ("clipfrac_max", self.clipfrac_max),
                ("approxkl_max", self.approxkl_max),
            ],
            false,
        )?;
        crate::run::config::positive(
            &[
                ("entropy_min", self.entropy_min),
                ("distinct_1_min", self.distinct_1_min),
                ("distinct_2_min", self.distinct_2_min),
            ],
            true,
        )
    }
}

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    RewardHacking,
    RunawayKl,
    EntropyCollapse,
    LowDiversity,
    LengthDrift,
    Sycophancy,
    RatioOff,
    HighClipFraction,
    ApproxKlSpike,
}

impl AlertKind {
    pub fn title(self) -> &'static str {
        match self {
            AlertKind::RewardHacking => "reward hacking",
            AlertKind::RunawayKl => "runaway KL",
            AlertKind::EntropyCollapse => "entropy collapse",
            AlertKind::LowDiversity => "low diversity",
            AlertKind::LengthDrift => "length drift",
            AlertKind::Sycophancy => "sycophancy",
            AlertKind::RatioOff => "ratio far from 1",
            AlertKind::HighClipFraction => "high clip fraction",
            AlertKind::ApproxKlSpike => "approx-KL spike",
        }
    }
}

/// An alert raised at a step, with the numbers behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub step: usize,
    pub message: String,
}

/// What one iteration changed: alerts raised, and kinds that cleared.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub raised: Vec<Alert>,
    pub cleared: Vec<AlertKind>,
}

pub struct Monitor {
    config: MonitorConfig,
    /// The last `window` values of the metrics trends are read from.
    recent: HashMap<&'static str, VecDeque<f64>>,
    first_length: Option<f64>,
    active: BTreeSet<AlertKind>,
}

/// Least-squares slope of `ys` against 0, 1, 2, …, times the span: the
/// change a straight line through them makes over the window.
pub fn trend(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    if ys.len() < 2 {
        return 0.0;
    }
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    sxy / sxx * (n - 1.0)
}

/// Distinct n-grams over all n-grams of `responses` (token ids): 1 when
/// nothing repeats, near 0 when one phrase is said over and over, and 0
/// when responses are too short to hold an n-gram at all (collapsed to
/// nothing is not diverse).
pub fn distinct_n(responses: &[Vec<u32>], n: usize) -> f64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0usize;
    for response in responses {
        for gram in response.windows(n) {
            seen.insert(gram);
            total += 1;
        }
    }
    if total == 0 {
        0.0
    } else {
        seen.len() as f64 / total as f64
    }
}

/// The figures watched for a trend over the window, each under the names
/// the online methods give it (PPO's, then GRPO's and RLOO's).
const TRENDED: [(&str, &[&str]); 3] = [
    ("reward model score", &[names::SCORES, names::REWARD]),
    ("judge score", &[names::JUDGE_SCORE]),
    ("sycophancy", &[names::PROBE_SYCOPHANCY]),
];
/// The clip's share and the token entropy, likewise.
const CLIPPED: [&str; 2] = [names::CLIP_FRACTION, names::CLIP_RATIO_REGION];
const TOKEN_ENTROPY: [&str; 2] = [names::TOKEN_ENTROPY, names::ENTROPY];

impl Monitor {
    pub fn new(config: &MonitorConfig) -> Self {
        Self {
            config: config.clone(),
            recent: HashMap::new(),
            first_length: None,
            active: BTreeSet::new(),
        }
    }

    /// Reads one iteration's metrics (PPO's, GRPO's or RLOO's); returns the alerts that start
    /// now and those that stopped. An alert that stays on is not repeated.
    pub fn observe(&mut self, step: usize, metrics: &[(&str, f64)]) -> Changes {
        let get = |key: &str| metrics.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let any = |keys: &[&str]| keys.iter().find_map(|k| get(k));
        for (key, names) in TRENDED {
            if let Some(v) = any(names) {
                let values = self.recent.entry(key).or_default();
                values.push_back(v);
                if values.len() > self.config.window {
                    values.pop_front();
                }
            }
        }
        let c = &self.config;
        let mut firing: Vec<(AlertKind, String)> = Vec::new();
        let window = |key| self.recent.get(key).filter(|v| v.len() == c.window);
        if let (Some(rm), Some(judge)) = (window(TRENDED[0].0), window(TRENDED[1].0)) {
            let rm = trend(&rm.iter().copied().collect::<Vec<_>>());
            let judge = trend(&judge.iter().copied().collect::<Vec<_>>());
            if rm >= c.hacking_change && -judge >= c.hacking_change {
                firing.push((
                    AlertKind::RewardHacking,
                    format!(
                        "over {} iterations the RM score rose {rm:+.3} while the judge's fell {judge:+.3}",
                        c.window
                    ),
                ));
            }
        }
        if let Some(agreeing) = window(TRENDED[2].0) {
            let values: Vec<f64> = agreeing.iter().copied().collect();
            let rise = trend(&values);
            if rise >= c.sycophancy_rise {
                firing.push((
                    AlertKind::Sycophancy,
                    format!(
                        "over {} iterations the share of answers agreeing with a false claim rose {rise:+.3} (now {:.3})",
                        c.window,
                        values[values.len() - 1]
                    ),
                ));
            }
        }
        let mut above = |kind, keys: &[&str], limit: f64, what: &str| {
            if let Some(v) = any(keys).filter(|v| *v > limit || v.is_nan()) {
                firing.push((kind, format!("{what} {v:.3} > {limit}")));
            }
        };
        above(AlertKind::RunawayKl, &[names::KL], c.kl_max, "KL");
        above(AlertKind::HighClipFraction, &CLIPPED, c.clipfrac_max, "clip fraction");
        above(
            AlertKind::ApproxKlSpike,
            &[names::APPROX_KL],
            c.approxkl_max,
            "approx-KL",
        );
        if let Some(ratio) = get(names::RATIO).filter(|r| (r - 1.0).abs() > c.ratio_tolerance) {
            firing.push((
                AlertKind::RatioOff,
                format!("ratio {ratio:.3}, more than {} from 1", c.ratio_tolerance),
            ));
        }
        if let Some(e) = any(&TOKEN_ENTROPY).filter(|e| *e < c.entropy_min) {
            firing.push((
                AlertKind::EntropyCollapse,
                format!("entropy {e:.3} < {}", c.entropy_min),
            ));
        }
        if let (Some(d1), Some(d2)) = (get(names::DISTINCT_1), get(names::DISTINCT_2))
            && (d1 < c.distinct_1_min || d2 < c.distinct_2_min)
        {
            firing.push((
                AlertKind::LowDiversity,
                format!(
                    "distinct-1 {d1:.3}, distinct-2 {d2:.3} (limits {}, {})",
                    c.distinct_1_min, c.distinct_2_min
                ),
            ));
        }
        if let Some(length) = get(names::LENGTH_MEAN) {
            let first = *self.first_length.get_or_insert(length);
            if first > 0.0 && ((length - first) / first).abs() > c.length_drift {
                firing.push((
                    AlertKind::LengthDrift,
                    format!("mean length {length:.1} tokens, from {first:.1} at the start"),
                ));
            }
        }

        let now: BTreeSet<AlertKind> = firing.iter().map(|(k, _)| *k).collect();
        let changes = Changes {
            raised: firing
                .into_iter()
                .filter(|(k, _)| !self.active.contains(k))
                .map(|(kind, message)| Alert { kind, step, message })
                .collect(),
            cleared: self.active.difference(&now).copied().collect(),
        };
        self.active = now;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_and_distinct_by_hand() {
        // y = 2x over 0..4: slope 2, times the span 4 = 8.
        assert!((trend(&[0.0, 2.0, 4.0, 6.0, 8.0]) - 8.0).abs() < 1e-12);
        assert_eq!(trend(&[3.0, 3.0, 3.0]), 0.0);
        // [1 2 1 2]: unigrams {1, 2} of 4 → 0.5; bigrams {12, 21} of 3 → 2/3.
        let r = vec![vec![1, 2, 1, 2]];
        assert_eq!(distinct_n(&r, 1), 0.5);
        assert!((distinct_n(&r, 2) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(distinct_n(&[vec![7; 10]], 1), 0.1);
        // One-token responses hold no bigram.
        assert_eq!(distinct_n(&[vec![7], vec![8]], 2), 0.0);
    }

    fn kinds(changes: &Changes) -> Vec<AlertKind> {
        changes.raised.iter().map(|a| a.kind).collect()
    }

    #[test]
    fn sycophancy_fires_when_agreeing_with_false_claims_rises() {
        let mut m = Monitor::new(&MonitorConfig::default());
        // 0.1, 0.16, …, 0.34 over five iterations: a trend of +0.24.
        let mut raised = Vec::new();
        for (i, v) in [0.1, 0.16, 0.22, 0.28, 0.34].into_iter().enumerate() {
            raised.extend(kinds(&m.observe(i, &[(names::PROBE_SYCOPHANCY, v)])));
        }
        assert_eq!(raised, vec![AlertKind::Sycophancy]);
        // Noise around a level, and a fall, are no alert.
        let mut m = Monitor::new(&MonitorConfig::default());
        for (i, v) in [0.3, 0.4, 0.25, 0.35, 0.3, 0.2, 0.1, 0.05].into_iter().enumerate() {
            assert!(kinds(&m.observe(i, &[(names::PROBE_SYCOPHANCY, v)])).is_empty(), "{i}");
        }
    }

    #[test]
    fn reward_hacking_fires_when_rm_rises_and_judge_falls_and_once_only() {
        let mut m = Monitor::new(&MonitorConfig::default());
        let mut raised = Vec::new();
        for i in 0..8 {
            let t = i as f64;
            // Both rise for four iterations (learning), then RM keeps rising while the judge falls.
            let judge = if i < 4 { 0.5 + 0.02 * t } else { 0.58 - 0.05 * (t - 3.0) };
            let changes = m.observe(
                i + 1,
                &[("objective/scores", 1.0 + 0.1 * t), ("judge/score_mean", judge)],
            );
            raised.extend(changes.raised);
        }
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!(raised[0].kind, AlertKind::RewardHacking);
        assert!(raised[0].message.contains("RM score rose"), "{}", raised[0].message);
        // GRPO's and RLOO's names for the same figures are watched alike.
        let mut m = Monitor::new(&MonitorConfig::default());
        let mut raised = Vec::new();
        for i in 0..8 {
            let t = i as f64;
            let judge = if i < 4 { 0.5 + 0.02 * t } else { 0.58 - 0.05 * (t - 3.0) };
            raised.extend(kinds(
                &m.observe(i + 1, &[("reward", 1.0 + 0.1 * t), ("judge/score_mean", judge)]),
            ));
        }
        assert_eq!(raised, vec![AlertKind::RewardHacking]);
        let grouped = [("clip_ratio/region_mean", 0.6), ("entropy", 0.05)];
        assert_eq!(
            kinds(&Monitor::new(&MonitorConfig::default()).observe(1, &grouped)),
            [AlertKind::HighClipFraction, AlertKind::EntropyCollapse]
        );
        // Honest progress never fires.
        let mut m = Monitor::new(&MonitorConfig::default());
        for i in 0..8 {
            let t = i as f64;
            let changes = m.observe(i, &[("objective/scores", t), ("judge/score_mean", 0.5 + 0.01 * t)]);
            assert!(changes.raised.is_empty());
        }
    }

    #[test]
    fn each_threshold_alert_fires_and_clears() {
        let mut m = Monitor::new(&MonitorConfig::default());
        let healthy = [
            ("objective/kl", 2.0),
            ("policy/clipfrac_avg", 0.05),
            ("policy/approxkl_avg", 0.001),
            ("val/ratio", 1.01),
            ("policy/entropy_avg", 1.5),
            ("responses/distinct_1", 0.6),
            ("responses/distinct_2", 0.8),
            ("responses/length_mean", 20.0),
        ];
        assert!(m.observe(1, &healthy).raised.is_empty());
        let sick = [
            ("objective/kl", 40.0),
            ("policy/clipfrac_avg", 0.6),
            ("policy/approxkl_avg", 0.4),
            ("val/ratio", 1.7),
            ("policy/entropy_avg", 0.05),
            ("responses/distinct_1", 0.02),
            ("responses/distinct_2", 0.03),
            ("responses/length_mean", 48.0),
        ];
        let changes = m.observe(2, &sick);
        assert_eq!(
            kinds(&changes),
            [
                AlertKind::RunawayKl,
                AlertKind::HighClipFraction,
                AlertKind::ApproxKlSpike,
                AlertKind::RatioOff,
                AlertKind::EntropyCollapse,
                AlertKind::LowDiversity,
                AlertKind::LengthDrift,
            ]
        );
        assert!(changes.raised.iter().all(|a| a.step == 2));
        assert!(
            changes.raised[5].message.contains("distinct-1 0.020"),
            "{}",
            changes.raised[5].message
        );
        // Still sick: nothing new; healthy again: all cleared.
        assert!(m.observe(3, &sick).raised.is_empty());
        let back = m.observe(4, &healthy);
        assert_eq!(back.cleared.len(), 7);
        assert!(back.raised.is_empty());
    }

    #[test]
    fn config_refuses_a_window_of_one() {
        let config = MonitorConfig {
            window: 1,
            ..MonitorConfig::default()
        };
        assert!(config.validate().unwrap_err().starts_with("window"));
    }
}
