//! A person's files as the stages' data sources: demonstrations
//! (`sft.data`), prompts (`ppo.prompts`, else the demonstrations'), and
//! prompts to label (`prefs.prompts`, else PPO's), each split by a seeded
//! draw into training and held-out parts. Preference pairs come from
//! `rm.data` and the run's own judgments, which the reward model reads
//! itself.

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::chat::Prompt;
use super::files::{Demonstration, Items, read_demonstrations, read_prompts};
use crate::prefs::formats::LineError;
use crate::rlhf::data::{LabelledPair, Sources, Split};
use crate::run::RunConfig;

/// Training and held-out parts.
#[derive(Debug)]
struct Parts<T> {
    train: Vec<T>,
    held_out: Vec<T>,
}

impl<T> Default for Parts<T> {
    fn default() -> Self {
        Self {
            train: Vec::new(),
            held_out: Vec::new(),
        }
    }
}

impl<T: Clone> Parts<T> {
    /// `items` shuffled with `seed`, `fraction` of them (at least one, and
    /// one left to train on) held out.
    fn split(mut items: Vec<T>, fraction: f64, seed: u64, path: &Path) -> anyhow::Result<Self> {
        let held = ((items.len() as f64 * fraction).round() as usize).max(1);
        if held >= items.len() {
            anyhow::bail!(
                "{}: {} usable lines cannot be split into training and held-out parts with eval_fraction {fraction}; add lines or lower the fraction",
                path.display(),
                items.len()
            );
        }
        items.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let train = items.split_off(held);
        Ok(Self { train, held_out: items })
    }

    fn of(&self, split: Split) -> &[T] {
        match split {
            Split::Train => &self.train,
            Split::HeldOut => &self.held_out,
        }
    }
}

/// The files a run names.
#[derive(Debug, Default)]
pub struct FileSources {
    demonstrations: Parts<Demonstration>,
    prompts: Parts<Prompt>,
    labeling: Option<Vec<Prompt>>,
    /// Lines skipped, each naming its file and line.
    pub warnings: Vec<String>,
}

impl FileSources {
    /// Reads the files `config` names; a file that is missing, unreadable
    /// or has nothing usable is refused here, before any training.
    pub fn load(config: &RunConfig) -> anyhow::Result<Self> {
        let mut sources = Self::default();
        let mut warnings = Vec::new();
        let mut note = |path: &Path, errors: Vec<LineError>| {
            warnings.extend(errors.iter().map(|e| e.skipped(path)));
        };
        if let Some(path) = &config.sft.data {
            let Items { items, errors } = read_demonstrations(path)?;
            note(path, errors);
            sources.demonstrations = Parts::split(items, config.sft.eval_fraction, config.sft.seed ^ 0xd3e0, path)?;
        }
        sources.prompts = match &config.ppo.prompts {
            Some(path) => {
                let Items { items, errors } = read_prompts(path)?;
                note(path, errors);
                Parts::split(items, config.ppo.eval_fraction, config.ppo.seed ^ 0x9803, path)?
            }
            // The demonstrations' prompts, on the same side of the split.
            None => Parts {
                train: distinct_prompts(&sources.demonstrations.train),
                held_out: distinct_prompts(&sources.demonstrations.held_out),
            },
        };
        if let Some(path) = &config.prefs.prompts {
            let Items { items, errors } = read_prompts(path)?;
            note(path, errors);
            sources.labeling = Some(items);
        }
        sources.warnings = warnings;
        Ok(sources)
    }
}

/// Each prompt once, in order of first appearance.
fn distinct_prompts(demos: &[Demonstration]) -> Vec<Prompt> {
    let mut seen = Vec::new();
    for demo in demos {
        if !seen.contains(&demo.prompt) {
            seen.push(demo.prompt.clone());
        }
    }
    seen
}

impl Sources for FileSources {
    fn prompts(&self, split: Split) -> Vec<Prompt> {
        self.prompts.of(split).to_vec()
    }

    /// All of the split's demonstrations; `n` and `seed` draw the world's.
    fn demonstrations(&self, split: Split, _: usize, _: u64) -> Vec<Demonstration> {
        self.demonstrations.of(split).to_vec()
    }

    /// None: a person's pairs are `rm.data` and the run's judgments.
    fn preference_pairs(&self, _: Split, _: usize, _: u64) -> Vec<LabelledPair> {
        Vec::new()
    }

    fn labeling_prompts(&self) -> Vec<Prompt> {
        self.labeling.clone().unwrap_or_else(|| self.prompts(Split::Train))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, lines: &[String]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    }

    #[test]
    fn files_split_into_training_and_held_out_parts() {
        let dir = tempfile::tempdir().unwrap();
        let demos: Vec<String> = (0..20)
            .map(|i| format!(r#"{{"prompt": [{{"role": "user", "content": "q{i}"}}], "completion": [{{"role": "assistant", "content": "a{i}"}}]}}"#))
            .chain(["not json".to_string()])
            .collect();
        let mut config = RunConfig::default();
        config.sft.data = Some(write(dir.path(), "demos.jsonl", &demos));
        config.sft.eval_fraction = 0.2;
        let sources = FileSources::load(&config).unwrap();
        let (train, held) = (
            sources.demonstrations(Split::Train, 0, 0),
            sources.demonstrations(Split::HeldOut, 0, 0),
        );
        assert_eq!((train.len(), held.len()), (16, 4));
        assert_eq!(sources.warnings.len(), 1);
        assert!(
            sources.warnings[0].contains("demos.jsonl:21: skipped"),
            "{:?}",
            sources.warnings
        );
        // Without a prompts file, PPO's prompts are the demonstrations',
        // on the same side; labeling takes the training ones.
        let held_prompts = sources.prompts(Split::HeldOut);
        assert_eq!(held_prompts.len(), 4);
        assert!(held.iter().all(|d| held_prompts.contains(&d.prompt)));
        assert_eq!(sources.labeling_prompts(), sources.prompts(Split::Train));
        // A prompts file and a labeling file of their own.
        let prompts: Vec<String> = (0..10).map(|i| format!("Question {i}?")).collect();
        config.ppo.prompts = Some(write(dir.path(), "prompts.txt", &prompts));
        config.prefs.prompts = Some(write(dir.path(), "label.txt", &["Label me?".to_string()]));
        let sources = FileSources::load(&config).unwrap();
        assert_eq!(
            sources.prompts(Split::Train).len() + sources.prompts(Split::HeldOut).len(),
            10
        );
        assert_eq!(sources.labeling_prompts(), [Prompt::question("Label me?")]);
        // One usable line cannot be split.
        config.ppo.prompts = Some(write(dir.path(), "one.txt", &["Only?".to_string()]));
        let err = FileSources::load(&config).unwrap_err().to_string();
        assert!(err.contains("one.txt: 1 usable lines cannot be split"), "{err}");
    }
}
