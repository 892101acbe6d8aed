//! What a run trains and evaluates on: a person's files where the config
//! names them, else the built-in world; and the judge the config names.
//! Read once where the run is set up, so a bad file, a missing key or a
//! judge program that cannot start is refused before any training, and
//! shared by the stages and the labeling queue.

use std::sync::Arc;

use crate::data::sources::FileSources;
use crate::rlhf::cai::critic::Critic;
use crate::rlhf::data::{Evaluator, Prompt, Sources};
use crate::run::RunConfig;

/// What a run trains and evaluates on: a person's files where the config
/// names them, else the built-in world; and the judge the config names.
#[derive(Clone)]
pub struct RunData {
    pub sources: Arc<dyn Sources>,
    pub evaluator: Option<Arc<dyn Evaluator>>,
    /// Constitutional AI's critic: the run's AI judge, else the built-in
    /// world's rule critic on the world's data.
    pub critic: Option<Arc<dyn Critic>>,
    /// The prompts the pair pane asks about, read once.
    pub labeling: Vec<Prompt>,
    /// Lines of the files that were skipped, each naming its file and line.
    pub warnings: Vec<String>,
}

impl RunData {
    /// Reads the files `config` names and starts its judge; a bad file, a
    /// missing API key or a judge program that cannot start is refused here.
    pub fn of(config: &RunConfig) -> anyhow::Result<Self> {
        let world = !config.uses_own_data();
        let (evaluator, critic) = crate::judge::judges(&config.judge, world).map_err(anyhow::Error::msg)?;
        let (sources, warnings): (Arc<dyn Sources>, _) = match world {
            true => (Arc::new(config.world.clone()), Vec::new()),
            false => {
                let files = FileSources::load(config)?;
                let warnings = files.warnings.clone();
                (Arc::new(files), warnings)
            }
        };
        Ok(Self {
            critic,
            labeling: sources.labeling_prompts(),
            sources,
            evaluator,
            warnings,
        })
    }

    pub fn parts(&self) -> (Arc<dyn Sources>, Option<Arc<dyn Evaluator>>) {
        (self.sources.clone(), self.evaluator.clone())
    }
}
