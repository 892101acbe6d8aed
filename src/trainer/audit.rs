//! The run's audit log, `runs/NAME/audit.jsonl`: every parameter change,
//! pause, resume, start and stop, with the stage, its step and the time,
//! appended and flushed as it happens so a later look at the charts can
//! say why a curve bent.

use std::path::Path;

use serde_json::{Value, json};

use super::protocol::{Event, Param, Stage};
use crate::fsutil::AppendLog;

pub struct AuditLog {
    log: AppendLog,
}

impl AuditLog {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            log: AppendLog::open(path)?,
        })
    }

    /// Appends `{"time", "stage", "step", "event", <details>}`.
    pub fn record(&mut self, stage: Option<&str>, step: usize, event: &str, details: Value) -> std::io::Result<()> {
        let mut line = json!({ "time": unix_seconds(), "stage": stage, "step": step, "event": event });
        if let (Value::Object(line), Value::Object(details)) = (&mut line, details) {
            line.extend(details);
        }
        self.log.append(&line)
    }
}

/// Seconds since the Unix epoch, with milliseconds.
pub fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

/// The parameter changes an audit log holds, as marker events for a
/// reopened run's charts; lines that cannot be read are passed over (the
/// log's torn last line after a kill among them).
pub fn past_changes(path: &Path) -> Vec<Event> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let change = |line: &str| -> Option<Event> {
        let record: Value = serde_json::from_str(line).ok()?;
        if record["event"] != "set" {
            return None;
        }
        let stage = Stage::ALL.iter().copied().find(|s| record["stage"] == s.name());
        Some(Event::PastChange {
            stage,
            param: Param::from_name(record["param"].as_str()?, record["new"].as_f64()?)?,
            old: record["old"].as_f64()?,
            step: record["step"].as_u64()? as usize,
        })
    };
    text.lines().filter_map(change).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two changes written and one line torn: the two come back as
    /// markers with their stage, step and values.
    #[test]
    fn changes_come_back_from_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        log.record(
            Some("ppo"),
            25,
            "set",
            json!({ "param": "beta", "old": 0.05, "new": 0.1 }),
        )
        .unwrap();
        log.record(Some("ppo"), 26, "pause", json!({})).unwrap();
        log.record(None, 0, "set", json!({ "param": "kl_mode", "old": 0.0, "new": 1.0 }))
            .unwrap();
        drop(log);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"event\": \"set\", \"par");
        std::fs::write(&path, text).unwrap();
        let changes = past_changes(&path);
        assert_eq!(
            changes,
            [
                Event::PastChange {
                    stage: Some(Stage::Ppo),
                    param: Param::Beta(0.1),
                    old: 0.05,
                    step: 25
                },
                Event::PastChange {
                    stage: None,
                    param: Param::KlMode(crate::trainer::protocol::KlMode::Adaptive),
                    old: 0.0,
                    step: 0
                },
            ]
        );
    }
}
