//! File writes that never leave a half-written file behind: write a
//! temporary sibling, flush it to disk, then rename it over the target.

use std::io::Write;
use std::path::Path;

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// A JSON Lines file opened for appending: each record is written whole
/// and synced to disk before `append` returns, so what a caller confirms
/// after it survives a crash or a kill.
pub struct AppendLog {
    file: std::fs::File,
}

impl AppendLog {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Self { file })
    }

    pub fn append(&mut self, record: &serde_json::Value) -> std::io::Result<()> {
        // One write call per line: a kill cannot interleave half of it with
        // another record, and at worst leaves this line torn at the end.
        let mut line = record.to_string();
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()
    }
}
