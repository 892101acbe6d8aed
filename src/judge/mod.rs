//! The run's judge (`judge` in the run config): the built-in world's rule
//! judge, none, or an AI judge for RLAIF: a model behind an
//! OpenAI-compatible endpoint, or a program of the person's. An AI judge
//! scores responses (the held-out evaluation, PPO's judge chart, the pair
//! pane) and labels a share of the sets shown (`prefs.judge_fraction`)
//! under each of its criteria; its labels are stored under its name.

pub mod asking;
pub mod command;
pub mod endpoint;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use self::asking::{JudgePrompts, read_choice, read_score, read_text};
use self::command::{CommandConfig, CommandJudge};
use self::endpoint::{Endpoint, EndpointConfig};
use crate::prefs::record::{Choice, Criterion, Verdict};
use crate::rlhf::cai::constitution::Principle;
use crate::rlhf::cai::critic::{Critic, Critique};
use crate::rlhf::data::{Evaluator, Prompt, verdict_of_scores};

/// Which judge a run has.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum JudgeKind {
    /// The rule judge on the built-in world's data; none on a person's files.
    #[default]
    Auto,
    /// No judge: no judge chart, no judge labels.
    None,
    /// The built-in world's rule judge (it knows only the world's prompts).
    Rule,
    /// A model behind an OpenAI-compatible chat-completions endpoint.
    Endpoint(EndpointConfig),
    /// A program that answers JSON requests on stdin.
    Command(CommandConfig),
    /// One of the person's own judges, by its name in their settings
    /// (`rlhf-tui config` shows them), so no run names a key.
    Named(String),
}

/// The `judge` section of a run config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeConfig {
    pub kind: JudgeKind,
    /// What an AI judge is asked.
    pub prompts: JudgePrompts,
    /// The criteria an AI judge labels sets under (the first also scores
    /// responses); empty means overall only.
    pub criteria: Vec<Criterion>,
}

enum Backend {
    Endpoint(Endpoint),
    Command(CommandJudge),
}

/// A model or program judging.
pub struct AiJudge {
    backend: Backend,
    prompts: JudgePrompts,
    criteria: Vec<Criterion>,
    name: String,
}

impl AiJudge {
    fn new(backend: Backend, config: &JudgeConfig) -> Self {
        let name = match &backend {
            Backend::Endpoint(e) => format!("judge:{}", e.model()),
            Backend::Command(c) => format!("judge:{}", c.program()),
        };
        let criteria = match config.criteria.is_empty() {
            true => vec![Criterion::Overall],
            false => config.criteria.clone(),
        };
        Self {
            backend,
            prompts: config.prompts.clone(),
            criteria,
            name,
        }
    }

    /// An endpoint judge (retries wait `backoff` first).
    pub fn endpoint(endpoint: Endpoint, config: &JudgeConfig) -> Self {
        Self::new(Backend::Endpoint(endpoint), config)
    }

    fn score(&self, criterion: Criterion, prompt: &Prompt, response: &str) -> Result<f32, String> {
        let prompt = prompt.readable();
        match &self.backend {
            Backend::Endpoint(e) => {
                let request = self.prompts.score_request(criterion, &prompt, response.trim());
                read_score(&e.ask(&self.prompts.system, &request)?)
            }
            Backend::Command(c) => c.score(criterion, &prompt, response.trim()),
        }
    }

    fn compare(&self, criterion: Criterion, prompt: &Prompt, a: &str, b: &str) -> Result<Choice, String> {
        let prompt = prompt.readable();
        match &self.backend {
            Backend::Endpoint(e) => {
                let request = self.prompts.compare_request(criterion, &prompt, a.trim(), b.trim());
                read_choice(&e.ask(&self.prompts.system, &request)?)
            }
            Backend::Command(c) => c.compare(criterion, &prompt, a.trim(), b.trim()),
        }
    }

    /// `f` over every item: side by side for an endpoint, in turn for a program.
    fn each<T: Sync, R: Send>(&self, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
        match &self.backend {
            Backend::Endpoint(e) => e.each(items, f),
            Backend::Command(_) => items.iter().map(f).collect(),
        }
    }
}

impl Evaluator for AiJudge {
    fn name(&self) -> &str {
        &self.name
    }

    /// Under the first criterion; one failed score fails them all.
    fn scores(&self, prompts: &[Prompt], responses: &[String]) -> Result<Vec<f32>, String> {
        let pairs: Vec<(&Prompt, &String)> = prompts.iter().zip(responses).collect();
        self.each(&pairs, |(p, r)| self.score(self.criteria[0], p, r))
            .into_iter()
            .collect()
    }

    /// Two responses compared under each criterion; more ordered by score.
    fn verdicts(&self, prompt: &Prompt, responses: &[String]) -> Result<Vec<(Criterion, Verdict)>, String> {
        let verdicts = self.each(&self.criteria, |&criterion| -> Result<_, String> {
            let verdict = match responses {
                [a, b] => Verdict::Choice(self.compare(criterion, prompt, a, b)?),
                _ => {
                    let scores = responses
                        .iter()
                        .map(|r| self.score(criterion, prompt, r))
                        .collect::<Result<Vec<f32>, String>>()?;
                    verdict_of_scores(&scores)
                }
            };
            Ok((criterion, verdict))
        });
        verdicts.into_iter().collect()
    }
}

/// The judge `config` names; `Auto` is the rule judge on the world's data
/// (`world`) and none on a person's. An endpoint whose key is missing or a
/// program that cannot start is refused here, before any training.
pub fn evaluator(config: &JudgeConfig, world: bool) -> Result<Option<Arc<dyn Evaluator>>, String> {
    judges(config, world).map(|(evaluator, _)| evaluator)
}

/// A run's judge and its Constitutional AI critic, either of which it may lack.
pub type Judges = (Option<Arc<dyn Evaluator>>, Option<Arc<dyn Critic>>);

/// The run's judge and its Constitutional AI critic: an AI judge is both
/// (it critiques with the principles' requests); otherwise the world's
/// data has the world's rule critic and a person's has none.
pub fn judges(config: &JudgeConfig, world: bool) -> Result<Judges, String> {
    if let JudgeKind::Named(_) = config.kind {
        let mut resolved = config.clone();
        crate::settings::Settings::load()
            .and_then(|s| s.resolve_judge(&mut resolved))
            .map_err(|e| e.to_string())?;
        return judges(&resolved, world);
    }
    let ai = match &config.kind {
        JudgeKind::Endpoint(endpoint) => Some(AiJudge::endpoint(Endpoint::new(endpoint)?, config)),
        JudgeKind::Command(command) => Some(AiJudge::new(Backend::Command(CommandJudge::spawn(command)?), config)),
        _ => None,
    };
    if let Some(ai) = ai {
        let ai = Arc::new(ai);
        return Ok((Some(ai.clone()), Some(ai)));
    }
    let rule = || Some(Arc::new(crate::world::source::Judge) as Arc<dyn Evaluator>);
    let evaluator = match &config.kind {
        JudgeKind::Auto if world => rule(),
        JudgeKind::Rule => rule(),
        _ => None,
    };
    let critic = world.then(|| Arc::new(crate::world::critic::WorldCritic) as Arc<dyn Critic>);
    Ok((evaluator, critic))
}

/// Constitutional AI with the principles' own requests as prompts.
impl Critic for AiJudge {
    fn name(&self) -> &str {
        &self.name
    }

    fn critique(&self, prompt: &Prompt, response: &str, principle: &Principle) -> Result<Critique, String> {
        let (prompt, response) = (prompt.readable(), response.trim());
        let (text, revision) = match &self.backend {
            Backend::Endpoint(e) => {
                let ask = |request: String, what| read_text(&e.ask(&self.prompts.system, &request)?, what);
                let critique = ask(
                    self.prompts.critique_request(&principle.critique, &prompt, response),
                    "critique",
                )?;
                let request = self
                    .prompts
                    .revise_request(&principle.revision, &prompt, response, &critique);
                (critique, ask(request, "revision")?)
            }
            Backend::Command(c) => c.critique(principle, &prompt, response)?,
        };
        Ok(Critique { text, revision })
    }

    fn compare(&self, prompt: &Prompt, a: &str, b: &str, principle: &Principle) -> Result<Choice, String> {
        let prompt = prompt.readable();
        match &self.backend {
            Backend::Endpoint(e) => {
                let request = self
                    .prompts
                    .principle_compare_request(&principle.critique, &prompt, a.trim(), b.trim());
                read_choice(&e.ask(&self.prompts.system, &request)?)
            }
            Backend::Command(c) => c.compare_principle(principle, &prompt, a.trim(), b.trim()),
        }
    }
}
