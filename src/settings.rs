//! A person's own settings, kept apart from any run: who labels at this
//! keyboard, the device to use, and their judges (endpoint and the
//! environment variable holding its key), in a RON file in the platform's
//! config directory (`~/.config/rlhf-tui/settings.ron` on Linux;
//! `RLHF_TUI_SETTINGS` names another). Command-line flags override it; a
//! run config's `judge: (kind: Named("local"))` takes a judge from it, so
//! no run names a key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::DeviceChoice;
use crate::judge::endpoint::EndpointConfig;
use crate::judge::{JudgeConfig, JudgeKind};

/// The variable that names a settings file other than the platform's.
pub const SETTINGS_VAR: &str = "RLHF_TUI_SETTINGS";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Who labels at this keyboard (else `--annotator`, else the login name).
    pub annotator: Option<String>,
    /// Where tensors live when `--device` is not given.
    pub device: Option<DeviceChoice>,
    /// Judges by name, for a run's `judge: (kind: Named("…"))`.
    pub judges: BTreeMap<String, EndpointConfig>,
}

impl Settings {
    /// Where the settings are read from.
    pub fn path() -> Option<PathBuf> {
        match std::env::var_os(SETTINGS_VAR) {
            Some(path) => Some(PathBuf::from(path)),
            None => directories::ProjectDirs::from("", "", "rlhf-tui").map(|d| d.config_dir().join("settings.ron")),
        }
    }

    /// The settings in force: the file's, or the defaults where there is
    /// none; a file that does not parse is an error naming its line.
    pub fn load() -> anyhow::Result<Self> {
        match Self::path() {
            Some(path) if path.exists() => Self::from_file(&path),
            _ => Ok(Self::default()),
        }
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        ron::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}:{}: {}",
                path.display(),
                e.span.start.line,
                e.span.start.col,
                e.code
            )
        })
    }

    /// A named judge replaced by the endpoint these settings give it.
    pub fn resolve_judge(&self, judge: &mut JudgeConfig) -> anyhow::Result<()> {
        if let JudgeKind::Named(name) = &judge.kind {
            let endpoint = self.judges.get(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "judge: no judge named {name:?} in {}; `rlhf-tui config` shows the settings in force",
                    Self::path().map_or("the settings".into(), |p| p.display().to_string())
                )
            })?;
            judge.kind = JudgeKind::Endpoint(endpoint.clone());
        }
        Ok(())
    }

    pub fn to_ron(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default()).expect("settings serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_resolve_named_judges_and_name_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.ron");
        std::fs::write(
            &path,
            r#"(annotator: Some("alice"), device: Some(cpu), judges: {"local": (base_url: "http://localhost:8000/v1", model: "qwen", api_key_env: Some("MY_KEY"))})"#,
        )
        .unwrap();
        let settings = Settings::from_file(&path).unwrap();
        assert_eq!(settings.annotator.as_deref(), Some("alice"));
        assert_eq!(settings.device, Some(DeviceChoice::Cpu));
        let mut judge = JudgeConfig {
            kind: JudgeKind::Named("local".into()),
            ..JudgeConfig::default()
        };
        settings.resolve_judge(&mut judge).unwrap();
        let JudgeKind::Endpoint(endpoint) = &judge.kind else {
            panic!("{:?}", judge.kind)
        };
        assert_eq!(
            (endpoint.model.as_str(), endpoint.api_key_env.as_deref()),
            ("qwen", Some("MY_KEY"))
        );
        judge.kind = JudgeKind::Named("remote".into());
        let err = settings.resolve_judge(&mut judge).unwrap_err().to_string();
        assert!(err.contains("no judge named \"remote\""), "{err}");
        std::fs::write(&path, "(\n  annotater: Some(\"x\"),\n)").unwrap();
        let err = Settings::from_file(&path).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:2:", path.display())), "{err}");
        assert!(Settings::from_file(&path.with_extension("x")).is_err());
    }
}
