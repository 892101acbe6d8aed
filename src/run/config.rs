//! The run's RON config: every field has a default and a comment, unknown
//! fields are refused, and an error names the file, the line and the
//! column.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::judge::JudgeConfig;
use crate::prefs::config::PrefsConfig;
use crate::rlhf::cai::stage::CaiConfig;
use crate::rlhf::dpo::trainer::DpoConfig;
use crate::rlhf::grouped::config::GroupConfig;
use crate::rlhf::monitors::MonitorConfig;
use crate::rlhf::ppo::config::PpoConfig;
use crate::rlhf::reward::RmConfig;
use crate::rlhf::sft::SftConfig;
use crate::world::source::World;

/// Everything a run can be told, one section per stage. A section left out
/// takes its defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub sft: SftConfig,
    pub cai: CaiConfig,
    pub rm: RmConfig,
    pub ppo: PpoConfig,
    /// GRPO's and RLOO's sections: one shape (see `GroupConfig`).
    pub grpo: GroupConfig,
    pub rloo: GroupConfig,
    pub dpo: DpoConfig,
    pub prefs: PrefsConfig,
    pub monitors: MonitorConfig,
    pub checkpoints: CheckpointConfig,
    pub judge: JudgeConfig,
    /// The built-in world's optional parts (claims and sycophancy).
    pub world: World,
}

/// The `checkpoints` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Checkpoints kept per stage; older ones are removed after a new one
    /// is whole on disk (never one that a kept checkpoint starts from or
    /// is measured against: see `RunDir::keep_last`).
    pub keep_last: usize,
    /// Also write one every this many steps (PPO, GRPO, RLOO: iterations),
    /// between steps, so a crash or a kill loses at most this many.
    pub every_steps: Option<usize>,
    /// Also write one when this many minutes have passed since the last.
    pub every_minutes: Option<f64>,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            keep_last: 3,
            every_steps: None,
            every_minutes: Some(30.0),
        }
    }
}

impl CheckpointConfig {
    pub fn validate(&self) -> Result<(), String> {
        at_least_one(&[
            ("keep_last", self.keep_last),
            ("every_steps", self.every_steps.unwrap_or(1)),
        ])?;
        positive(&[("every_minutes", self.every_minutes.unwrap_or(1.0))], false)
    }
}

impl RunConfig {
    /// Reads a RON config; errors name the file, line and column and what
    /// is wrong there. The paths it names are relative to its own
    /// directory (see `resolve_paths`).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut config = Self::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?;
        // A bare file name's directory is the working directory.
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = std::path::absolute(parent).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        config.resolve_paths(&dir);
        Ok(config)
    }

    /// Makes the relative paths the config names absolute against `dir`,
    /// its file's directory, so a run's saved copy names the same files
    /// wherever it is read from. The default base model stays as it is:
    /// it is found in the working directory, or the built-in copy is used.
    pub fn resolve_paths(&mut self, dir: &Path) {
        let default_init = SftConfig::default().init;
        let absolute = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        };
        if self.sft.init != default_init {
            absolute(&mut self.sft.init);
        }
        for path in [
            &mut self.sft.data,
            &mut self.cai.init,
            &mut self.cai.constitution,
            &mut self.rm.init,
            &mut self.rm.data,
            &mut self.dpo.init,
            &mut self.dpo.data,
            &mut self.ppo.policy_init,
            &mut self.ppo.reward_init,
            &mut self.grpo.policy_init,
            &mut self.grpo.reward_init,
            &mut self.rloo.policy_init,
            &mut self.rloo.reward_init,
            &mut self.ppo.prompts,
            &mut self.prefs.prompts,
        ]
        .into_iter()
        .flatten()
        {
            absolute(path);
        }
    }

    /// Whether the run trains on a person's own files rather than the
    /// built-in world's demonstrations and prompts.
    pub fn uses_own_data(&self) -> bool {
        self.sft.data.is_some() || self.ppo.prompts.is_some() || self.prefs.prompts.is_some()
    }

    /// Parses RON text; the error starts with `line:column:`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self =
            ron::from_str(text).map_err(|e| format!("{}:{}: {}", e.span.start.line, e.span.start.col, e.code))?;
        config.validate().map_err(|e| match locate(text, &e) {
            Some((line, col)) => format!("{line}:{col}: {e}"),
            None => e,
        })?;
        Ok(config)
    }

    /// Ranges that serde's types cannot express.
    pub fn validate(&self) -> Result<(), String> {
        self.sft.validate().map_err(|e| format!("sft.{e}"))?;
        self.cai.validate().map_err(|e| format!("cai.{e}"))?;
        self.rm.validate().map_err(|e| format!("rm.{e}"))?;
        self.ppo.validate().map_err(|e| format!("ppo.{e}"))?;
        self.grpo.validate().map_err(|e| format!("grpo.{e}"))?;
        self.rloo.validate().map_err(|e| format!("rloo.{e}"))?;
        self.dpo.validate().map_err(|e| format!("dpo.{e}"))?;
        self.prefs.validate().map_err(|e| format!("prefs.{e}"))?;
        self.monitors.validate().map_err(|e| format!("monitors.{e}"))?;
        self.world.validate().map_err(|e| format!("world.{e}"))?;
        self.checkpoints.validate().map_err(|e| format!("checkpoints.{e}"))?;
        if self.uses_own_data() && self.world != World::default() {
            return Err(
                "world: this section sets the built-in world's options, and this run trains on its own files; remove it"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn to_ron(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default()).expect("the config serialises")
    }
}

/// Where the field a range error names (`ppo.beta: …`) is set in the
/// text: the first `beta:` after the section's `ppo:`, as (line, column).
fn locate(text: &str, error: &str) -> Option<(usize, usize)> {
    let path = error.split(':').next()?;
    let (section, key) = path.split_once('.')?;
    let key = key.rsplit('.').next()?;
    let is_key = |line: &str, at: usize, name: &str| {
        let before = line[..at].chars().next_back();
        let after = line[at + name.len()..].trim_start();
        before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) && after.starts_with(':')
    };
    let find = |line: &str, name: &str| {
        line.match_indices(name)
            .map(|(at, _)| at)
            .find(|&at| is_key(line, at, name))
    };
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        if !in_section {
            in_section = find(line, section).is_some();
            if !in_section {
                continue;
            }
        }
        // The key may share the section's line: `(ppo: (beta: -1.0))`.
        if let Some(at) = find(line, key).filter(|&at| key != section || Some(at) != find(line, section)) {
            return Some((i + 1, line[..at].chars().count() + 1));
        }
    }
    None
}

/// Refuses a count of zero, naming the field: the check every stage's
/// config shares.
pub fn at_least_one(fields: &[(&str, usize)]) -> Result<(), String> {
    match fields.iter().find(|(_, value)| *value == 0) {
        Some((key, _)) => Err(format!("{key}: must be at least 1")),
        None => Ok(()),
    }
}

/// Refuses a share that is not strictly between 0 and 1, naming the field.
pub fn fraction(key: &str, value: f64) -> Result<(), String> {
    match value > 0.0 && value < 1.0 {
        true => Ok(()),
        false => Err(format!("{key}: {value} is not between 0 and 1")),
    }
}

/// Refuses a value that is not a finite number above zero (or, with
/// `allow_zero`, at least zero), naming the field.
pub fn positive(fields: &[(&str, f64)], allow_zero: bool) -> Result<(), String> {
    for &(key, value) in fields {
        let ok = value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0));
        if !ok {
            let bound = if allow_zero { "0 or more" } else { "a positive number" };
            return Err(format!("{key}: must be {bound}, got {value}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_config_is_all_defaults_and_round_trips() {
        let config = RunConfig::parse("()").unwrap();
        assert_eq!(config, RunConfig::default());
        assert_eq!(RunConfig::parse(&config.to_ron()).unwrap(), config);
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = RunConfig::parse("(\n  sft: (\n    stepz: 3,\n  ),\n)").unwrap_err();
        assert!(err.starts_with("3:"), "{err}");
        assert!(err.contains("stepz"), "{err}");
        let err = RunConfig::parse("(sft: (lr: \"fast\"))").unwrap_err();
        assert!(err.starts_with("1:"), "{err}");
    }

    #[test]
    fn the_example_config_in_runs_parses_to_the_defaults() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/runs/example.ron"));
        assert_eq!(RunConfig::from_file(path).unwrap(), RunConfig::default());
    }

    #[test]
    fn paths_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.ron");
        let text = r#"(sft: (init: "my-model", data: Some("data/demos.jsonl")), ppo: (prompts: Some("/abs/p.txt")))"#;
        std::fs::write(&path, text).unwrap();
        let config = RunConfig::from_file(&path).unwrap();
        assert_eq!(config.sft.init, dir.path().join("my-model"));
        assert_eq!(config.sft.data, Some(dir.path().join("data/demos.jsonl")));
        assert_eq!(config.ppo.prompts, Some(PathBuf::from("/abs/p.txt")));
        assert!(config.uses_own_data());
        // Saved with the run and read back from elsewhere, the same files.
        let saved = dir.path().join("runs/x/config.ron");
        std::fs::create_dir_all(saved.parent().unwrap()).unwrap();
        std::fs::write(&saved, config.to_ron()).unwrap();
        assert_eq!(RunConfig::from_file(&saved).unwrap(), config);
        // The default base model is left to be found.
        std::fs::write(&path, "()").unwrap();
        assert_eq!(
            RunConfig::from_file(&path).unwrap().sft.init,
            PathBuf::from("assets/base")
        );
        // A bare file name is in the working directory.
        let cwd = std::env::current_dir().unwrap();
        let bare = "rlhf-tui-bare-config-test.ron";
        std::fs::write(cwd.join(bare), r#"(sft: (data: Some("d.jsonl")))"#).unwrap();
        let read = RunConfig::from_file(Path::new(bare));
        std::fs::remove_file(cwd.join(bare)).unwrap();
        assert_eq!(read.unwrap().sft.data, Some(cwd.join("d.jsonl")));
    }

    #[test]
    fn out_of_range_values_are_refused_at_their_line_and_column() {
        let err = RunConfig::parse("(sft: (lr: -1.0))").unwrap_err();
        assert!(err.starts_with("1:8: sft.lr"), "{err}");
        let text = "(\n  sft: (lr: 0.001),\n  ppo: (\n    lr: 0.0001,\n    beta: -0.1,\n  ),\n)";
        let err = RunConfig::parse(text).unwrap_err();
        assert!(err.starts_with("5:5: ppo.beta"), "{err}");
        assert!(err.contains("0 or more"), "{err}");
        let err = RunConfig::parse("(prefs: (rank_k: 12))").unwrap_err();
        assert!(err.starts_with("1:10: prefs.rank_k: must be 2 to 9"), "{err}");
        let err = RunConfig::parse("(\n  world: (claims: true, agreeable_raters: 1.5),\n)").unwrap_err();
        assert!(err.starts_with("2:25: world.agreeable_raters"), "{err}");
        // The world's options on a run of one's own files say so.
        let err = RunConfig::parse(r#"(sft: (data: Some("d.jsonl")), world: (claims: true))"#).unwrap_err();
        assert!(err.contains("trains on its own files; remove it"), "{err}");
    }
}
