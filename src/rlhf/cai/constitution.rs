//! A constitution: the principles Constitutional AI critiques and revises
//! responses against, read from a RON file. Each principle pairs a
//! critique request with a revision request, as Anthropic's paper does;
//! the built-in world ships one (`assets/constitution.ron`).

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One principle: what the critic is asked to find and how to revise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principle {
    /// Short and unique: it names the principle in counts and labels.
    pub name: String,
    pub critique: String,
    pub revision: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constitution {
    pub principles: Vec<Principle>,
}

/// The built-in world's constitution, as shipped.
const DEFAULT: &str = include_str!("../../../assets/constitution.ron");

impl Default for Constitution {
    fn default() -> Self {
        Self::parse(DEFAULT).expect("the shipped constitution parses")
    }
}

impl Constitution {
    /// Reads a constitution file; errors name the file, the line and the
    /// column, and what is wrong there.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))
    }

    /// `None`: the built-in world's.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        path.map_or_else(|| Ok(Self::default()), Self::from_file)
    }

    /// Parses RON text; the error starts with `line:column:`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let constitution: Self =
            ron::from_str(text).map_err(|e| format!("{}:{}: {}", e.span.start.line, e.span.start.col, e.code))?;
        constitution.validate().map_err(|(i, why)| {
            // The principle's line: the (i+1)-th `name:` in the text.
            let line = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.trim_start().starts_with("name:"))
                .nth(i)
                .map_or(1, |(n, _)| n + 1);
            format!("{line}:1: principle {}: {why}", i + 1)
        })?;
        Ok(constitution)
    }

    /// At least one principle, each named once and with both requests.
    fn validate(&self) -> Result<(), (usize, String)> {
        if self.principles.is_empty() {
            return Err((0, "a constitution needs at least one principle".into()));
        }
        let mut seen = HashSet::new();
        for (i, p) in self.principles.iter().enumerate() {
            if p.name.trim().is_empty() {
                return Err((i, "its name is empty".into()));
            }
            if !seen.insert(p.name.as_str()) {
                return Err((i, format!("`{}` is named twice; names must differ", p.name)));
            }
            if p.critique.trim().is_empty() || p.revision.trim().is_empty() {
                return Err((i, format!("`{}` needs both a critique and a revision request", p.name)));
            }
        }
        Ok(())
    }

    pub fn names(&self) -> Vec<&str> {
        self.principles.iter().map(|p| p.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_constitution_has_the_five_principles() {
        let c = Constitution::default();
        assert_eq!(c.names(), ["harmless", "polite", "on_topic", "concise", "honest"]);
        assert!(c.principles.iter().all(|p| p.critique.contains("Identify")));
    }

    #[test]
    fn bad_constitutions_are_refused_at_their_line() {
        let err = Constitution::parse("(principles: [])").unwrap_err();
        assert!(err.contains("at least one principle"), "{err}");
        let twice = "(principles: [\n  (\n    name: \"a\",\n    critique: \"c\",\n    revision: \"r\",\n  ),\n  (\n    name: \"a\",\n    critique: \"c\",\n    revision: \"r\",\n  ),\n])";
        let err = Constitution::parse(twice).unwrap_err();
        assert!(err.starts_with("8:1: principle 2: `a` is named twice"), "{err}");
        let err = Constitution::parse("(principles: [(name: \"a\", critique: \"c\")])").unwrap_err();
        assert!(err.starts_with("1:"), "{err}");
        assert!(err.contains("revision"), "{err}");
        let err = Constitution::parse("(principles: [(name: \"a\", critique: \" \", revision: \"r\")])").unwrap_err();
        assert!(err.contains("needs both"), "{err}");
    }
}
