//! The run's audit log, `runs/NAME/audit.jsonl`: every parameter change,
//! pause, resume, start and stop, with the stage, its step and the time,
//! appended and flushed as it happens so a later look at the charts can
//! say why a curve bent.

use std::path::Path;

use serde_json::{Value, json};

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
