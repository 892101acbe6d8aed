//! The run directory: where a run's files live, created on first use.
//! Every file name of a run is known here and nowhere else.

use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;

/// The layout of a run directory this build reads and writes; a run
/// stamped with a higher number was written by a newer rlhf-tui.
pub const RUN_FORMAT: u64 = 1;
const WRITTEN_BY: &str = concat!("rlhf-tui ", env!("CARGO_PKG_VERSION"));

const CONFIG: &str = "config.ron";
/// What continuing a stage from a checkpoint needs beside its model
/// files (step, optimizer, generator, live parameters), inside the
/// checkpoint's directory.
pub const CHECKPOINT_STATE: &str = "trainer_state.json";

/// Reads `run.json`: a run this build can open, or why not.
pub fn check_format(text: &str) -> Result<(), String> {
    let stamp: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{}:{}: {e}", e.line(), e.column()))?;
    let format = stamp["format"]
        .as_u64()
        .ok_or("no \"format\" number; write {\"format\": 1} or move the file away")?;
    if format > RUN_FORMAT {
        let by = stamp["written_by"].as_str().unwrap_or("a newer rlhf-tui");
        return Err(format!(
            "this run has format {format} (written by {by}); {WRITTEN_BY} reads format {RUN_FORMAT} and older; open it with a newer rlhf-tui"
        ));
    }
    Ok(())
}

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
        let stamp = root.join("run.json");
        match std::fs::read_to_string(&stamp) {
            Ok(text) => check_format(&text).map_err(|e| anyhow::anyhow!("{}: {e}", stamp.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = serde_json::json!({ "format": RUN_FORMAT, "written_by": WRITTEN_BY });
                write_atomic(&stamp, format!("{text}\n").as_bytes())?;
            }
            // A stamp that exists but cannot be read is not overwritten.
            Err(e) => anyhow::bail!("{}: {e}", stamp.display()),
        }
        Ok(Self { root })
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG)
    }

    /// The config a run named `name` under `base` saved, whether or not
    /// the run exists yet.
    pub fn saved_config(base: &Path, name: &str) -> PathBuf {
        base.join(name).join(CONFIG)
    }

    /// Every pause, resume, parameter change, start, stop and alert.
    pub fn audit_path(&self) -> PathBuf {
        self.root.join("audit.jsonl")
    }

    /// The sample sets the pair pane showed.
    pub fn samples_path(&self) -> PathBuf {
        self.root.join("samples.jsonl")
    }

    /// The latest reward model's reliability table.
    pub fn rm_calibration_path(&self) -> PathBuf {
        self.root.join("rm_calibration.json")
    }

    /// The iterative loop's round and reward-model versions.
    pub fn rounds_path(&self) -> PathBuf {
        self.root.join("rounds.json")
    }

    /// SL-CAI's responses, critiques and revisions.
    pub fn cai_revisions_path(&self) -> PathBuf {
        self.root.join("cai_revisions.jsonl")
    }

    /// The pairs the CAI stage's critic labelled by principle (RL-CAI's AI
    /// feedback), in TRL's conversational preference format.
    pub fn cai_pairs_path(&self) -> PathBuf {
        self.root.join("cai_pairs.jsonl")
    }

    /// The blind evaluations' verdicts, one a line.
    pub fn eval_path(&self) -> PathBuf {
        self.root.join("eval.jsonl")
    }

    pub fn prefs_path(&self) -> PathBuf {
        self.root.join("prefs.jsonl")
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
        self.latest_step(stage).map(|(_, path)| path)
    }

    /// The highest step `stage` has a checkpoint at, with its path.
    pub fn latest_step(&self, stage: &str) -> Option<(usize, PathBuf)> {
        self.checkpoints(stage).pop()
    }

    /// The checkpoints of `stage`, oldest first, as (step, path).
    fn checkpoints(&self, stage: &str) -> Vec<(usize, PathBuf)> {
        let prefix = format!("{stage}-");
        let Ok(entries) = std::fs::read_dir(self.root.join("checkpoints")) else {
            return Vec::new();
        };
        let mut found: Vec<(usize, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let step: usize = name.strip_prefix(&prefix)?.parse().ok()?;
                Some((step, e.path()))
            })
            .collect();
        found.sort();
        found
    }

    /// Removes all but the newest `keep` checkpoints of `stage`, and never
    /// one that another checkpoint of the run names in its state (PPO's
    /// frozen reference and reward model, DPO's reference): resuming that
    /// one needs it.
    pub fn keep_last(&self, stage: &str, keep: usize) -> anyhow::Result<()> {
        let found = self.checkpoints(stage);
        let old = &found[..found.len().saturating_sub(keep)];
        if old.is_empty() {
            return Ok(());
        }
        let named = self.named_by_checkpoints();
        let same =
            |a: &Path, b: &Path| a == b || a.canonicalize().ok().is_some_and(|a| b.canonicalize().ok() == Some(a));
        for (_, path) in old {
            if named.iter().any(|n| same(n, path)) {
                continue;
            }
            std::fs::remove_dir_all(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// The directories the run's checkpoints start from or are measured
    /// against, as their states name them (`reference`, `reward`).
    fn named_by_checkpoints(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.root.join("checkpoints")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join(CHECKPOINT_STATE)).ok())
            .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .flat_map(|state| {
                ["reference", "reward"]
                    .into_iter()
                    .filter_map(move |key| state[key].as_str().map(PathBuf::from))
            })
            .collect()
    }

    /// Writes a checkpoint directory atomically: into a temporary sibling
    /// first, renamed into place when complete, so a kill mid-write never
    /// leaves a half checkpoint under the real name. A checkpoint already
    /// under that name is moved aside before the rename and removed after,
    /// so at every moment one whole copy exists.
    pub fn write_checkpoint(
        &self,
        stage: &str,
        step: usize,
        write: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> anyhow::Result<PathBuf> {
        let target = self.checkpoint_path(stage, step);
        let sibling = |what: &str| {
            self.root
                .join("checkpoints")
                .join(format!(".{what}-{stage}-{step}-{}", std::process::id()))
        };
        let (tmp, old) = (sibling("tmp"), sibling("old"));
        // Left over from an earlier attempt by a process with this id, if any.
        let _ = std::fs::remove_dir_all(&tmp);
        write(&tmp).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
        let replaced = target.exists();
        if replaced {
            std::fs::rename(&target, &old)?;
        }
        std::fs::rename(&tmp, &target)?;
        // The rename itself reaches the disk with the directory's entry.
        std::fs::File::open(self.root.join("checkpoints"))?.sync_all()?;
        if replaced {
            std::fs::remove_dir_all(&old)?;
        }
        Ok(target)
    }

    pub fn save_config(&self, ron: &str) -> anyhow::Result<()> {
        Ok(write_atomic(&self.config_path(), ron.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(text: &'static str) -> impl FnOnce(&Path) -> std::io::Result<()> {
        move |dir| {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join("model.safetensors"), text)
        }
    }

    #[test]
    fn a_run_from_a_newer_version_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path(), "r").unwrap();
        let stamp = std::fs::read_to_string(run.root.join("run.json")).unwrap();
        assert!(stamp.contains("\"format\":1"), "{stamp}");
        RunDir::create(tmp.path(), "r").unwrap();
        std::fs::write(
            run.root.join("run.json"),
            r#"{"format": 7, "written_by": "rlhf-tui 9.0.0"}"#,
        )
        .unwrap();
        let err = RunDir::create(tmp.path(), "r").unwrap_err().to_string();
        assert!(
            err.contains("run.json: this run has format 7 (written by rlhf-tui 9.0.0)"),
            "{err}"
        );
        assert!(err.contains("newer rlhf-tui"), "{err}");
        std::fs::write(run.root.join("run.json"), "{\"format\": \n  \"one\"}").unwrap();
        let err = RunDir::create(tmp.path(), "r").unwrap_err().to_string();
        assert!(err.contains("no \"format\" number"), "{err}");
        // A stamp that cannot be read as text is reported and kept as it is.
        std::fs::write(run.root.join("run.json"), [0xff, 0xfe]).unwrap();
        let err = RunDir::create(tmp.path(), "r").unwrap_err().to_string();
        assert!(err.contains("run.json"), "{err}");
        assert_eq!(std::fs::read(run.root.join("run.json")).unwrap(), [0xff, 0xfe]);
    }

    /// keep_last 2 of sft-1 … sft-4 removes sft-2 but keeps sft-1, which a
    /// PPO checkpoint names as its reference.
    #[test]
    fn keep_last_keeps_what_a_kept_checkpoint_names() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path(), "r").unwrap();
        let sft: Vec<PathBuf> = (1..=4)
            .map(|step| run.write_checkpoint("sft", step, write_file("w")).unwrap())
            .collect();
        let state = serde_json::json!({ "reference": sft[0], "reward": tmp.path().join("elsewhere") });
        run.write_checkpoint("ppo", 10, |dir| {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(CHECKPOINT_STATE), state.to_string())
        })
        .unwrap();
        run.keep_last("sft", 2).unwrap();
        let left: Vec<bool> = sft.iter().map(|p| p.exists()).collect();
        assert_eq!(left, [true, false, true, true]);
    }

    #[test]
    fn checkpoints_replace_whole_and_a_failed_write_keeps_the_last() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path(), "r").unwrap();
        let path = run.write_checkpoint("sft", 5, write_file("first")).unwrap();
        run.write_checkpoint("sft", 5, write_file("second")).unwrap();
        assert_eq!(
            std::fs::read_to_string(path.join("model.safetensors")).unwrap(),
            "second"
        );

        let failed = run.write_checkpoint("sft", 5, |dir| {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join("model.safetensors"), "half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.unwrap_err().to_string().contains("disk full"));
        assert_eq!(
            std::fs::read_to_string(path.join("model.safetensors")).unwrap(),
            "second"
        );
        assert_eq!(run.latest_checkpoint("sft"), Some(path));
        // Only the checkpoint and the failed attempt's temporary directory remain.
        let names: Vec<String> = std::fs::read_dir(run.root.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| n == "sft-5" || n.starts_with(".tmp-")),
            "{names:?}"
        );
    }
}
