//! The metrics log: JSON Lines, one object per step, appended and synced
//! as each step ends so a crash loses nothing already reported.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::fsutil::AppendLog;

pub struct MetricsLog {
    log: AppendLog,
    path: PathBuf,
}

impl MetricsLog {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            log: AppendLog::open(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Before a stage resumes from its checkpoint at `step`: takes out the
    /// stage's lines past that step (and a line a kill cut short), which a
    /// crash or a kill after the checkpoint left, so the steps run again
    /// are logged once. The log is rewritten whole, atomically; returns the
    /// lines taken out.
    pub fn drop_after(&mut self, stage: &str, step: usize) -> anyhow::Result<usize> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        let past = |line: &str| match serde_json::from_str::<Value>(line) {
            Ok(v) => v["stage"] == stage && v["step"].as_u64().is_some_and(|s| s as usize > step),
            Err(_) => true,
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let kept: Vec<&str> = lines.iter().copied().filter(|l| !past(l)).collect();
        let dropped = lines.len() - kept.len();
        if dropped > 0 {
            let mut whole = kept.join("\n");
            whole.push('\n');
            crate::fsutil::write_atomic(&self.path, whole.as_bytes())
                .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
            self.log = AppendLog::open(&self.path)?;
        }
        Ok(dropped)
    }

    /// Appends `{"stage": ..., "step": ..., <metrics>}` and syncs it.
    pub fn append(&mut self, stage: &str, step: usize, metrics: &[(&str, f64)]) -> std::io::Result<()> {
        let mut line = Map::new();
        line.insert("stage".into(), Value::from(stage));
        line.insert("step".into(), Value::from(step));
        for (key, value) in metrics {
            // JSON has no NaN; a missing number says "not a number" plainly.
            let v = serde_json::Number::from_f64(*value).map_or(Value::Null, Value::Number);
            line.insert((*key).into(), v);
        }
        self.log.append(&Value::Object(line))
    }
}

/// One logged step: its stage's name, step and metrics (`null`s left out).
pub type LoggedStep = (String, usize, Vec<(String, f64)>);

/// Reads a metrics log back, in order, with the count of lines that could
/// not be read (one cut short by a kill), which are left out.
pub fn read_log(path: &Path) -> (Vec<LoggedStep>, usize) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (Vec::new(), 0);
    };
    let parse = |line: &str| -> Option<LoggedStep> {
        let Value::Object(mut map) = serde_json::from_str(line).ok()? else {
            return None;
        };
        let stage = map.remove("stage")?.as_str()?.to_string();
        let step = map.remove("step")?.as_u64()? as usize;
        let values = map.into_iter().filter_map(|(k, v)| Some((k, v.as_f64()?))).collect();
        Some((stage, step, values))
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let steps: Vec<LoggedStep> = lines.iter().filter_map(|l| parse(l)).collect();
    let skipped = lines.len() - steps.len();
    (steps, skipped)
}

/// The value of `key` among one step's metrics.
pub fn metric(metrics: &[(&str, f64)], key: &str) -> Option<f64> {
    metrics.iter().find(|(k, _)| *k == key).map(|m| m.1)
}
