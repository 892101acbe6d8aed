//! A blind evaluation in the workbench, InstructGPT's question put to a
//! person: the run's newest policy (A) and the policy it started from (B)
//! answer the same held-out prompts with the same seeds, and each pair is
//! shown in an order drawn at random, without the models' names; only this
//! side knows which answer is whose. Each verdict is appended to the run's
//! `eval.jsonl` (flushed before the screen confirms it), and the person's
//! and the judge's win rates for A, with Wilson intervals, and their
//! agreement come back after each.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::protocol::{Choice, EvalItem, EvalTally, Stage};
use super::run_data::RunData;
use super::stage::{newest_trained, supervised};
use crate::model::hf;
use crate::prefs::agreement::cohen_kappa;
use crate::rlhf::data::{Prompt, Split};
use crate::rlhf::held_out::{ANSWER_TOKENS, sample_answers};
use crate::rlhf::win_rate::{Outcome, WinRate, judged_outcomes};
use crate::run::{RunConfig, RunDir};

/// Pairs a person judges in one evaluation.
pub const EVAL_ITEMS: usize = 20;

/// One pair as this side knows it.
struct Hidden {
    prompt: Prompt,
    /// A's answer, then B's.
    answers: [String; 2],
    a_is_left: bool,
    judge: Option<Outcome>,
    person: Option<Outcome>,
}

pub struct EvalSession {
    pub a: PathBuf,
    pub b: PathBuf,
    items: Vec<Hidden>,
    file: File,
}

/// The run's newest policy and the policy it started from: the newest
/// trained one (PPO's, GRPO's, RLOO's or DPO's) against the supervised one (see `supervised`), a supervised one against the
/// base model.
fn models(run: &RunDir, config: &RunConfig) -> anyhow::Result<(PathBuf, PathBuf)> {
    let newest = |stage: Stage| run.latest_checkpoint(stage.name());
    match (newest_trained(run), newest(supervised(run))) {
        (Some(trained), Some(start)) => Ok((trained, start)),
        (Some(trained), None) => Ok((trained, config.sft.init.clone())),
        (None, Some(start)) => Ok((start, config.sft.init.clone())),
        (None, None) => {
            anyhow::bail!("nothing to evaluate yet: train SFT (or CAI) first, then E compares it with the base model")
        }
    }
}

impl EvalSession {
    /// Both models' answers to `EVAL_ITEMS` held-out prompts, judged by
    /// the run's judge where it has one; `seed` draws the prompts, the
    /// answers and the sides.
    pub fn start(run: &RunDir, config: &RunConfig, data: &RunData, device: &Device, seed: u64) -> anyhow::Result<Self> {
        let (a, b) = models(run, config)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut prompts = data.sources.prompts(Split::HeldOut);
        anyhow::ensure!(!prompts.is_empty(), "no held-out prompts to evaluate on");
        prompts.shuffle(&mut rng);
        prompts.truncate(EVAL_ITEMS);
        let answer_seed = rng.random::<u64>();
        let answers = |dir: &Path| -> anyhow::Result<Vec<String>> {
            let (model, tokenizer) = hf::load_language_model(dir, device)?;
            sample_answers(&model, &tokenizer, &prompts, ANSWER_TOKENS, answer_seed).map_err(anyhow::Error::msg)
        };
        let (answers_a, answers_b) = (answers(&a)?, answers(&b)?);
        let judged: Vec<Option<Outcome>> = match &data.evaluator {
            Some(judge) => judged_outcomes(judge.as_ref(), &prompts, &answers_a, &answers_b)
                .map_err(anyhow::Error::msg)?
                .into_iter()
                .map(Some)
                .collect(),
            None => vec![None; prompts.len()],
        };
        let items = prompts
            .into_iter()
            .zip(answers_a.into_iter().zip(answers_b))
            .zip(judged)
            .map(|((prompt, (x, y)), judge)| Hidden {
                prompt,
                answers: [x, y],
                a_is_left: rng.random_bool(0.5),
                judge,
                person: None,
            })
            .collect();
        let path = run.eval_path();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Self { a, b, items, file })
    }

    /// The pairs as the screen shows them: no names, sides as drawn.
    pub fn shown(&self) -> Vec<EvalItem> {
        self.items
            .iter()
            .map(|h| {
                let [a, b] = &h.answers;
                let (left, right) = if h.a_is_left { (a, b) } else { (b, a) };
                EvalItem {
                    prompt: h.prompt.readable(),
                    left: left.clone(),
                    right: right.clone(),
                }
            })
            .collect()
    }

    /// The person's verdict on pair `item`, on disk before it counts: left
    /// or right is A or B as the sides were drawn, a tie or both bad is a
    /// tie, a skip is no verdict.
    pub fn record(&mut self, item: usize, choice: Choice) -> anyhow::Result<EvalTally> {
        let hidden = self
            .items
            .get_mut(item)
            .ok_or_else(|| anyhow::anyhow!("no evaluation pair {item}"))?;
        let person = match choice {
            Choice::Left | Choice::Right if (choice == Choice::Left) == hidden.a_is_left => Some(Outcome::A),
            Choice::Left | Choice::Right => Some(Outcome::B),
            Choice::Tie | Choice::BothBad => Some(Outcome::Tie),
            Choice::Skip => None,
        };
        let name = |o: Option<Outcome>| o.map(|o| format!("{o:?}").to_lowercase());
        let line = json!({
            "a": self.a,
            "b": self.b,
            "prompt": hidden.prompt.readable(),
            "answer_a": hidden.answers[0],
            "answer_b": hidden.answers[1],
            "a_was_left": hidden.a_is_left,
            "person": name(person),
            "judge": name(hidden.judge),
        });
        writeln!(self.file, "{line}").and_then(|_| self.file.flush())?;
        hidden.person = person;
        Ok(tally(&self.items))
    }
}

/// A's win rates so far by the person and (where there is one) the judge
/// over the same pairs, and how often and how far beyond chance they agree.
fn tally(items: &[Hidden]) -> EvalTally {
    let judged: Vec<&Hidden> = items.iter().filter(|h| h.person.is_some()).collect();
    let person: Vec<Outcome> = judged.iter().filter_map(|h| h.person).collect();
    let both: Vec<(Outcome, Outcome)> = judged.iter().filter_map(|h| Some((h.person?, h.judge?))).collect();
    let judge: Vec<Outcome> = both.iter().map(|&(_, j)| j).collect();
    let agree = both.iter().filter(|(p, j)| p == j).count();
    EvalTally {
        person: WinRate::of(&person),
        judge: (!both.is_empty()).then(|| WinRate::of(&judge)),
        agreement: (!both.is_empty()).then(|| agree as f64 / both.len() as f64),
        kappa: cohen_kappa(&both),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden(a_is_left: bool, judge: Option<Outcome>) -> Hidden {
        Hidden {
            prompt: Prompt::question("q"),
            answers: ["a".into(), "b".into()],
            a_is_left,
            judge,
            person: None,
        }
    }

    /// Sides map back to models as they were drawn, and the tally is the
    /// win rates and agreement worked by hand.
    #[test]
    fn verdicts_map_to_models_and_tally() {
        let dir = tempfile::tempdir().unwrap();
        let mut session = EvalSession {
            a: "A".into(),
            b: "B".into(),
            items: vec![
                hidden(true, Some(Outcome::A)),
                hidden(false, Some(Outcome::A)),
                hidden(false, Some(Outcome::B)),
                hidden(true, Some(Outcome::Tie)),
                hidden(true, Some(Outcome::A)),
            ],
            file: File::create(dir.path().join("eval.jsonl")).unwrap(),
        };
        let shown = session.shown();
        assert_eq!((shown[0].left.as_str(), shown[1].left.as_str()), ("a", "b"));
        session.record(0, Choice::Left).unwrap(); // A, judge A
        session.record(1, Choice::Left).unwrap(); // B (A was right), judge A
        session.record(2, Choice::Left).unwrap(); // B, judge B
        session.record(3, Choice::BothBad).unwrap(); // tie, judge tie
        let t = session.record(4, Choice::Skip).unwrap(); // not counted
        // The person: A 1, B 2, tie 1 → (1 + 0.5) / 4.
        assert_eq!(
            (t.person.n, t.person.wins_a, t.person.wins_b, t.person.ties),
            (4, 1, 2, 1)
        );
        assert!((t.person.win_rate_a - 0.375).abs() < 1e-12);
        // The judge on the same four: A 2, B 1, tie 1 → 2.5 / 4.
        let judge = t.judge.unwrap();
        assert!((judge.win_rate_a - 0.625).abs() < 1e-12);
        // Agreement on 3 of 4; κ = (0.75 − pe) / (1 − pe) with
        // pe = (1·2 + 2·1 + 1·1) / 16 = 5/16.
        assert_eq!(t.agreement, Some(0.75));
        let pe = 5.0 / 16.0;
        assert!((t.kappa.unwrap() - (0.75 - pe) / (1.0 - pe)).abs() < 1e-12);
        let lines = std::fs::read_to_string(dir.path().join("eval.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 5);
        assert!(lines.lines().nth(1).unwrap().contains("\"person\":\"b\""));
        assert!(session.record(9, Choice::Left).is_err());
    }
}
