//! The run's judgments, `runs/NAME/prefs.jsonl`: append-only, one record
//! per judgment, each synced to disk before the screen confirms it. An
//! undo appends a retraction; nothing is rewritten. Reading it back skips
//! a line a crash tore (with a warning naming the line), never failing on
//! one, and applies the retractions.

use std::io::Write;
use std::path::Path;

use super::record::{Judgment, Record, Retraction};
use crate::fsutil::AppendLog;
use crate::trainer::audit::unix_seconds;

pub struct PrefStore {
    log: AppendLog,
}

/// What the store holds once retractions are applied.
#[derive(Debug, Default)]
pub struct Contents {
    /// Live judgments, in the order they were made.
    pub judgments: Vec<Judgment>,
    pub retracted: usize,
    /// One line per line skipped, naming the file and line.
    pub warnings: Vec<String>,
}

impl PrefStore {
    /// Opens the store for appending. A last line without its newline (a
    /// write cut short by a kill or a crash) is ended first, so the next
    /// record starts on a line of its own and the torn one stays visible
    /// to `load` as a line it skips.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let torn = std::fs::read(path).is_ok_and(|bytes| bytes.last().is_some_and(|&b| b != b'\n'));
        if torn {
            let end_line = || -> std::io::Result<()> {
                let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
                file.write_all(b"\n")?;
                file.sync_data()
            };
            end_line().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        Ok(Self {
            log: AppendLog::open(path)?,
        })
    }

    pub fn record(&mut self, judgment: Judgment) -> std::io::Result<()> {
        self.log.append(&serde_json::to_value(judgment.with_trl_keys())?)
    }

    /// Retracts `annotator`'s latest judgment of the set `pair`.
    pub fn retract(&mut self, pair: u64, annotator: &str) -> std::io::Result<()> {
        let record = Retraction {
            retract: pair,
            annotator: annotator.to_string(),
            time: unix_seconds(),
        };
        self.log.append(&serde_json::to_value(record)?)
    }
}

/// The id new sets and judgments count on from: past every stored one,
/// and past the clock's milliseconds, so ids stay unique across the
/// sessions of a run even if its store was deleted.
pub fn last_id(judgments: &[Judgment]) -> u64 {
    let stored = judgments.iter().map(|j| j.pair).max().unwrap_or(0);
    stored.max(unix_seconds() as u64 * 1000)
}

/// What a retraction does to the live judgments: `annotator`'s latest
/// judgment of the set `pair` goes. False when there is none.
pub fn remove_latest(judgments: &mut Vec<Judgment>, pair: u64, annotator: &str) -> bool {
    let found = judgments
        .iter()
        .rposition(|j| j.pair == pair && j.annotator == annotator);
    found.map(|at| judgments.remove(at)).is_some()
}

/// Reads a store; a missing file is an empty store.
pub fn load(path: &Path) -> anyhow::Result<Contents> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse(&text, &path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contents::default()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// Parses a store's text; `name` is used in warnings.
pub fn parse(text: &str, name: &str) -> Contents {
    let mut contents = Contents::default();
    // The last line is torn when the file does not end its line.
    let torn_line = (!text.ends_with('\n')).then(|| text.lines().count());
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(Record::Judgment(judgment)) => contents.judgments.push(*judgment),
            Ok(Record::Retraction(r)) => {
                if remove_latest(&mut contents.judgments, r.retract, &r.annotator) {
                    contents.retracted += 1;
                } else {
                    contents.warnings.push(format!(
                        "{name}:{}: a retraction of set {} by {} matches no judgment; ignored",
                        i + 1,
                        r.retract,
                        r.annotator
                    ));
                }
            }
            Err(e) => {
                let what = if torn_line == Some(i + 1) {
                    "a torn line (cut short by a crash or a kill)"
                } else {
                    "an unreadable line"
                };
                contents.warnings.push(format!(
                    "{name}:{}: skipped {what}: {e}; the other lines are kept",
                    i + 1
                ));
            }
        }
    }
    contents
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefs::record::{Choice, Source, Verdict};

    pub fn judgment(pair: u64, annotator: &str, verdict: Verdict) -> Judgment {
        Judgment {
            pair,
            time: 0.0,
            prompt: "Q".into(),
            responses: vec![" a".into(), " b".into()],
            verdict,
            criteria: Vec::new(),
            annotator: annotator.into(),
            source: Source::Human,
            policy: "base".into(),
            temperatures: Vec::new(),
            chosen: None,
            rejected: None,
        }
    }

    #[test]
    fn records_round_trip_with_trl_keys_and_retractions_apply() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("prefs.jsonl");
        let mut store = PrefStore::open(&path).unwrap();
        store
            .record(judgment(1, "ann", Verdict::Choice(Choice::Right)))
            .unwrap();
        store
            .record(judgment(1, "judge", Verdict::Choice(Choice::Left)))
            .unwrap();
        store.record(judgment(2, "ann", Verdict::Ranking(vec![1, 0]))).unwrap();
        store.retract(1, "ann").unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            (&first["choice"], &first["chosen"], &first["rejected"]),
            (&"right".into(), &" b".into(), &" a".into())
        );
        let third: serde_json::Value = serde_json::from_str(text.lines().nth(2).unwrap()).unwrap();
        assert_eq!(third["ranking"], serde_json::json!([1, 0]));
        assert!(third.get("chosen").is_none());

        let contents = load(&path).unwrap();
        assert_eq!(contents.warnings, Vec::<String>::new());
        assert_eq!(contents.retracted, 1);
        // Only ann's judgment of set 1 went; the judge's stays.
        let left: Vec<(u64, &str)> = contents
            .judgments
            .iter()
            .map(|j| (j.pair, j.annotator.as_str()))
            .collect();
        assert_eq!(left, [(1, "judge"), (2, "ann")]);
    }

    #[test]
    fn a_torn_last_line_is_skipped_with_a_warning_and_ended_before_the_next_record() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("prefs.jsonl");
        PrefStore::open(&path)
            .unwrap()
            .record(judgment(1, "ann", Verdict::Choice(Choice::Left)))
            .unwrap();
        let whole = std::fs::read_to_string(&path).unwrap();
        // A kill part way through the second record's write.
        std::fs::write(&path, format!("{whole}{}", &whole[..40])).unwrap();
        let contents = load(&path).unwrap();
        assert_eq!(contents.judgments.len(), 1);
        assert_eq!(contents.warnings.len(), 1);
        assert!(
            contents.warnings[0].contains("prefs.jsonl:2: skipped a torn"),
            "{:?}",
            contents.warnings
        );

        let mut store = PrefStore::open(&path).unwrap();
        store.record(judgment(3, "ann", Verdict::Choice(Choice::Tie))).unwrap();
        let contents = load(&path).unwrap();
        let pairs: Vec<u64> = contents.judgments.iter().map(|j| j.pair).collect();
        assert_eq!(pairs, [1, 3]);
        assert!(contents.warnings[0].contains(":2: skipped an unreadable line"));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }

    #[test]
    fn a_missing_store_is_empty_and_a_stray_retraction_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(load(&tmp.path().join("none.jsonl")).unwrap().judgments.is_empty());
        let contents = parse(r#"{"retract": 9, "annotator": "ann", "time": 1.0}"#, "p.jsonl");
        assert!(contents.warnings[0].starts_with("p.jsonl:1: a retraction of set 9"));
    }
}
