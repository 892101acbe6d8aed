//! The run's judgments, `runs/NAME/prefs.jsonl`: append-only, one record
//! per judgment, each synced to disk before the screen confirms it. An
//! undo appends a retraction naming the judged pair; nothing is rewritten.
//! A record with a winner also carries TRL's `prompt`/`chosen`/`rejected`
//! keys, so the file reads as a TRL preference file as it is.

use std::path::Path;

use serde_json::{Value, json};

use crate::fsutil::AppendLog;
use crate::trainer::audit::unix_seconds;
use crate::trainer::protocol::{Choice, SamplePair};

pub struct PrefStore {
    log: AppendLog,
}

/// Who made a judgment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Human,
    Judge,
}

impl PrefStore {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            log: AppendLog::open(path)?,
        })
    }

    pub fn record(&mut self, pair: &SamplePair, choice: Choice, source: Source) -> std::io::Result<()> {
        let (left, right) = (pair.left.text(), pair.right.text());
        let source = match source {
            Source::Human => "human",
            Source::Judge => "judge",
        };
        let mut record = json!({
            "pair": pair.id, "time": unix_seconds(), "prompt": pair.prompt,
            "responses": [left, right], "choice": choice, "criteria": [],
            "annotator": source, "source": source, "policy": pair.policy,
        });
        let winner = match choice {
            Choice::Left => Some((left, right)),
            Choice::Right => Some((right, left)),
            Choice::Tie | Choice::BothBad | Choice::Skip => None,
        };
        if let (Some((chosen, rejected)), Value::Object(map)) = (winner, &mut record) {
            map.insert("chosen".into(), chosen.into());
            map.insert("rejected".into(), rejected.into());
        }
        self.log.append(&record)
    }

    /// Retracts the judgment of `pair`.
    pub fn retract(&mut self, pair: u64) -> std::io::Result<()> {
        self.log.append(&json!({ "retract": pair, "time": unix_seconds() }))
    }
}
