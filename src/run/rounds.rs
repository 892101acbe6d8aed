//! The iterative loop's record, `runs/NAME/rounds.json`: the round the
//! run is in and every reward-model version trained, with the round it
//! was trained in, its checkpoint and how many pairs it learnt from.
//! Written whole and atomically after each change.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::RunDir;
use crate::fsutil::write_atomic;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rounds {
    /// From 1.
    pub round: u32,
    pub rm_versions: Vec<RmVersion>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RmVersion {
    /// From 1.
    pub version: u32,
    pub round: u32,
    pub checkpoint: String,
    /// Training pairs, all sources.
    pub pairs: usize,
    /// Of them, from the run's own judgments (people's and the judge's).
    pub run_pairs: usize,
}

impl Default for Rounds {
    fn default() -> Self {
        Self {
            round: 1,
            rm_versions: Vec::new(),
        }
    }
}

impl Rounds {
    fn path(run: &RunDir) -> std::path::PathBuf {
        run.rounds_path()
    }

    /// The run's record; a run without one is in round 1.
    pub fn load(run: &RunDir) -> anyhow::Result<Self> {
        let path = Self::path(run);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{}:{}:{}: {e}; delete the file to start again from round 1",
                    path.display(),
                    e.line(),
                    e.column()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }

    pub fn save(&self, run: &RunDir) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        Ok(write_atomic(&Self::path(run), text.as_bytes())?)
    }

    /// Records a reward model's end (finished or stopped) at `checkpoint`:
    /// a new version, or, when it went on from the checkpoint the newest
    /// version names (a resumed run), that version moved forward.
    pub fn record_rm(
        run: &RunDir,
        checkpoint: &std::path::Path,
        started_from: &std::path::Path,
        pairs: usize,
        run_pairs: usize,
    ) -> anyhow::Result<Self> {
        let mut rounds = Self::load(run)?;
        let checkpoint = checkpoint.display().to_string();
        let round = rounds.round;
        match rounds.rm_versions.last_mut() {
            Some(last) if Path::new(&last.checkpoint) == started_from => last.checkpoint = checkpoint,
            _ => rounds.rm_versions.push(RmVersion {
                version: rounds.rm_version() + 1,
                round,
                checkpoint,
                pairs,
                run_pairs,
            }),
        }
        rounds.save(run)?;
        Ok(rounds)
    }

    /// The newest reward model's version, 0 before the first.
    pub fn rm_version(&self) -> u32 {
        self.rm_versions.last().map_or(0, |v| v.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_starts_in_round_one_and_its_record_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path(), "r").unwrap();
        let mut rounds = Rounds::load(&run).unwrap();
        assert_eq!((rounds.round, rounds.rm_version()), (1, 0));
        rounds.round = 2;
        rounds.rm_versions.push(RmVersion {
            version: 1,
            round: 1,
            checkpoint: "rm-50".into(),
            pairs: 70,
            run_pairs: 6,
        });
        rounds.save(&run).unwrap();
        assert_eq!(Rounds::load(&run).unwrap(), rounds);
        // A resumed reward model moves its version on; a fresh one is the next.
        let moved = Rounds::record_rm(&run, Path::new("rm-9"), Path::new("rm-50"), 70, 6).unwrap();
        assert_eq!(
            (moved.rm_version(), moved.rm_versions[0].checkpoint.as_str()),
            (1, "rm-9")
        );
        let next = Rounds::record_rm(&run, Path::new("rm-20"), Path::new("sft-5"), 80, 7).unwrap();
        assert_eq!((next.rm_version(), next.rm_versions[1].round), (2, 2));
        std::fs::write(run.root.join("rounds.json"), "{\"round\": 2,\n \"rm_versions\": 3}").unwrap();
        let err = Rounds::load(&run).unwrap_err().to_string();
        assert!(err.contains("rounds.json:2:"), "{err}");
    }
}
