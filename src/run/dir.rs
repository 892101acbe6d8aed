//! The run directory: where a run's files live, created on first use.

use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;

#[derive(Clone, Debug)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    /// `runs/<name>` under `base`, created if missing.
    pub fn create(base: &Path, name: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !name.starts_with('.'),
            "run name {name:?}: use letters, digits, '-', '_' and '.' only"
        );
        let root = base.join(name);
        std::fs::create_dir_all(root.join("checkpoints")).map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
        Ok(Self { root })
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.ron")
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `checkpoints/<stage>-<step>`.
    pub fn checkpoint_path(&self, stage: &str, step: usize) -> PathBuf {
        self.root.join("checkpoints").join(format!("{stage}-{step}"))
    }

    /// The checkpoint of `stage` with the highest step, if any.
    pub fn latest_checkpoint(&self, stage: &str) -> Option<PathBuf> {
        let prefix = format!("{stage}-");
        std::fs::read_dir(self.root.join("checkpoints"))
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let step: usize = name.strip_prefix(&prefix)?.parse().ok()?;
                Some((step, e.path()))
            })
            .max_by_key(|(step, _)| *step)
            .map(|(_, path)| path)
    }

    /// Writes a checkpoint directory atomically: into a temporary sibling
    /// first, renamed into place when complete, so a kill mid-write never
    /// leaves a half checkpoint under the real name.
    pub fn write_checkpoint(
        &self,
        stage: &str,
        step: usize,
        write: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> anyhow::Result<PathBuf> {
        let target = self.checkpoint_path(stage, step);
        let tmp = self
            .root
            .join("checkpoints")
            .join(format!(".tmp-{stage}-{step}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        write(&tmp).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::rename(&tmp, &target)?;
        Ok(target)
    }

    pub fn save_config(&self, ron: &str) -> anyhow::Result<()> {
        Ok(write_atomic(&self.config_path(), ron.as_bytes())?)
    }
}
