//! One line of a run's `prefs.jsonl`, as written and as read back: a
//! judgment of K responses to one prompt (a choice between two, or a
//! ranking of all K), or the retraction of an earlier judgment.

use serde::{Deserialize, Serialize};

/// A judgment of a pair of responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    Left,
    Right,
    Tie,
    BothBad,
    Skip,
}

/// What a judgment decided: a choice between two responses, or the order
/// of K responses, best first (indices into the responses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Choice(Choice),
    Ranking(Vec<usize>),
}

impl Verdict {
    /// A skip is stored (the set was seen) but says nothing about the
    /// responses: it is no label to count or to agree with.
    pub fn is_skip(&self) -> bool {
        *self == Verdict::Choice(Choice::Skip)
    }
}

/// What a judgment was about. A record without criteria judged the
/// responses overall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    Overall,
    Helpful,
    Truthful,
    Harmless,
}

impl Criterion {
    pub const ALL: [Criterion; 4] = [
        Criterion::Overall,
        Criterion::Helpful,
        Criterion::Truthful,
        Criterion::Harmless,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Criterion::Overall => "overall",
            Criterion::Helpful => "helpful",
            Criterion::Truthful => "truthful",
            Criterion::Harmless => "harmless",
        }
    }
}

/// Who made a judgment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Human,
    /// The built-in world's judge (RLAIF).
    Judge,
    /// A preference file brought in with `prefs import`.
    Import,
}

/// One judgment. A pair with a winner also carries TRL's `chosen` and
/// `rejected` keys, so the file reads as a TRL preference file as it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    /// The id of the judged set of responses, unique within the run.
    pub pair: u64,
    /// Unix seconds.
    pub time: f64,
    pub prompt: String,
    pub responses: Vec<String>,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Empty: judged overall.
    #[serde(default)]
    pub criteria: Vec<Criterion>,
    pub annotator: String,
    pub source: Source,
    /// The model that produced the responses, e.g. `ppo-12`.
    pub policy: String,
    /// The temperature each response was sampled at, where known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub temperatures: Vec<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

impl Judgment {
    /// Fills in `chosen` and `rejected` from a pair's verdict.
    pub fn with_trl_keys(mut self) -> Self {
        let winner = match (&self.verdict, self.responses.as_slice()) {
            (Verdict::Choice(Choice::Left), [a, b]) => Some((a, b)),
            (Verdict::Choice(Choice::Right), [a, b]) => Some((b, a)),
            _ => None,
        };
        (self.chosen, self.rejected) = winner.map_or((None, None), |(c, r)| (Some(c.clone()), Some(r.clone())));
        self
    }

    /// The one criterion this judgment is counted under.
    pub fn criterion(&self) -> Criterion {
        self.criteria.first().copied().unwrap_or(Criterion::Overall)
    }

    /// A judgment of set `pair` (responses "a" and "b" to prompt "P", at
    /// time 0, overall), for tests to adjust.
    #[cfg(test)]
    pub fn example(pair: u64, annotator: &str, source: Source, verdict: Verdict) -> Self {
        Judgment {
            pair,
            time: 0.0,
            prompt: "P".into(),
            responses: vec!["a".into(), "b".into()],
            verdict,
            criteria: Vec::new(),
            annotator: annotator.into(),
            source,
            policy: "base".into(),
            temperatures: Vec::new(),
            chosen: None,
            rejected: None,
        }
    }
}

/// An undo: the latest live judgment of `retract` by `annotator` no longer counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retraction {
    pub retract: u64,
    pub annotator: String,
    pub time: f64,
}

/// A line of the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Record {
    Retraction(Retraction),
    Judgment(Box<Judgment>),
}
