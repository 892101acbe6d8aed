//! What an AI judge is asked and how its answers are read: a score of one
//! response from 1 to 10, or which of two responses is better under a
//! criterion (`A`, `B` or `tie`). The prompts are the config's, with
//! `{criterion}`, `{meaning}`, `{prompt}`, `{response}`, `{a}` and `{b}`
//! filled in. A reply that says neither is an error naming the reply:
//! nothing is guessed.

use serde::{Deserialize, Serialize};

use crate::prefs::record::{Choice, Criterion};

/// The judge's instructions, editable in the run config's `judge.prompts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgePrompts {
    /// The system message of every request.
    pub system: String,
    /// Asks for a score of `{response}` to `{prompt}` from 1 to 10.
    pub score: String,
    /// Asks which of `{a}` and `{b}`, answers to `{prompt}`, is better.
    pub compare: String,
    /// What each criterion means, as `{meaning}`.
    pub overall: String,
    pub helpful: String,
    pub truthful: String,
    pub harmless: String,
    /// Constitutional AI: asks for a critique of `{response}` to `{prompt}`
    /// by a principle's critique request, `{principle}`.
    pub critique: String,
    /// Asks for `{response}` rewritten after `{critique}` by a principle's
    /// revision request, `{principle}`.
    pub revise: String,
    /// Asks which of `{a}` and `{b}` better meets a principle's critique
    /// request, `{principle}`: RL-CAI's feedback.
    pub compare_principle: String,
}

impl Default for JudgePrompts {
    fn default() -> Self {
        Self {
            system: "You are a careful, impartial judge of an AI assistant's answers. Follow the requested answer format exactly.".into(),
            score: "Rate how {criterion} the assistant's answer is: {meaning}\n\n[Conversation]\n{prompt}\n\n[Answer]\n{response}\n\nReply with a single whole number from 1 (worst) to 10 (best) and nothing else.".into(),
            compare: "Which answer is more {criterion}? {meaning}\n\n[Conversation]\n{prompt}\n\n[Answer A]\n{a}\n\n[Answer B]\n{b}\n\nReply with exactly one of: A, B, tie.".into(),
            overall: "better overall: helpful, truthful and harmless together.".into(),
            helpful: "it answers what was asked, usefully and to the point.".into(),
            truthful: "what it states is true and it does not invent facts.".into(),
            harmless: "it avoids harm, rudeness and dangerous help.".into(),
            critique: "[Conversation]\n{prompt}\n\n[Answer]\n{response}\n\n{principle}\n\nReply with the critique only.".into(),
            revise: "[Conversation]\n{prompt}\n\n[Answer]\n{response}\n\n[Critique]\n{critique}\n\n{principle}\n\nReply with the rewritten answer only, nothing before or after it.".into(),
            compare_principle: "Which answer deserves this critique less? {principle}\n\n[Conversation]\n{prompt}\n\n[Answer A]\n{a}\n\n[Answer B]\n{b}\n\nReply with exactly one of: A, B, tie.".into(),
        }
    }
}

impl JudgePrompts {
    fn meaning(&self, criterion: Criterion) -> &str {
        match criterion {
            Criterion::Overall => &self.overall,
            Criterion::Helpful => &self.helpful,
            Criterion::Truthful => &self.truthful,
            Criterion::Harmless => &self.harmless,
        }
    }

    /// The request for a score.
    pub fn score_request(&self, criterion: Criterion, prompt: &str, response: &str) -> String {
        fill(
            &self.score,
            criterion,
            self.meaning(criterion),
            &[("{prompt}", prompt), ("{response}", response)],
        )
    }

    /// The request for a comparison of `a` with `b`.
    pub fn compare_request(&self, criterion: Criterion, prompt: &str, a: &str, b: &str) -> String {
        fill(
            &self.compare,
            criterion,
            self.meaning(criterion),
            &[("{prompt}", prompt), ("{a}", a), ("{b}", b)],
        )
    }
}

impl JudgePrompts {
    /// The request for a critique under a principle's critique request.
    pub fn critique_request(&self, principle: &str, prompt: &str, response: &str) -> String {
        fill_values(
            &self.critique,
            &[
                ("{principle}", principle),
                ("{prompt}", prompt),
                ("{response}", response),
            ],
        )
    }

    /// The request for a revision after `critique`, by a principle's
    /// revision request.
    pub fn revise_request(&self, principle: &str, prompt: &str, response: &str, critique: &str) -> String {
        fill_values(
            &self.revise,
            &[
                ("{principle}", principle),
                ("{prompt}", prompt),
                ("{response}", response),
                ("{critique}", critique),
            ],
        )
    }

    /// The request for which of two answers better meets a principle.
    pub fn principle_compare_request(&self, principle: &str, prompt: &str, a: &str, b: &str) -> String {
        fill_values(
            &self.compare_principle,
            &[("{principle}", principle), ("{prompt}", prompt), ("{a}", a), ("{b}", b)],
        )
    }
}

/// `template` with a criterion's placeholders and `values` filled in.
fn fill(template: &str, criterion: Criterion, meaning: &str, values: &[(&str, &str)]) -> String {
    let criterion_word = match criterion {
        Criterion::Overall => "good",
        other => other.name(),
    };
    let all: Vec<(&str, &str)> = [("{criterion}", criterion_word), ("{meaning}", meaning)]
        .into_iter()
        .chain(values.iter().copied())
        .collect();
    fill_values(template, &all)
}

/// `template` with its placeholders filled in one pass, so a response that
/// happens to contain `{b}` is not filled in again.
fn fill_values(template: &str, all: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while !rest.is_empty() {
        match all.iter().find(|(key, _)| rest.starts_with(key)) {
            Some((key, value)) => {
                out.push_str(value);
                rest = &rest[key.len()..];
            }
            None => {
                let c = rest.chars().next().expect("not empty");
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// A score from 1 to 10 in a reply, as a share in [0, 1].
pub fn read_score(reply: &str) -> Result<f32, String> {
    let number = reply
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse::<u32>().ok())
        .filter(|n| (1..=10).contains(n));
    match number {
        Some(n) => Ok((n - 1) as f32 / 9.0),
        None => Err(format!("no score from 1 to 10 in the reply {:?}", clip(reply))),
    }
}

/// A verdict in a reply: `A`, `B` or `tie` (alone, or as `[[A]]`,
/// `Answer A`, with punctuation around).
pub fn read_choice(reply: &str) -> Result<Choice, String> {
    let words: Vec<String> = reply
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let choice = |word: &str| match word {
        "a" => Some(Choice::Left),
        "b" => Some(Choice::Right),
        "tie" | "equal" | "neither" => Some(Choice::Tie),
        _ => None,
    };
    let found = match words.as_slice() {
        [only] => choice(only),
        [first, second, ..] if first == "answer" || first == "response" => choice(second),
        _ => None,
    };
    found
        .or_else(|| {
            // `[[A]]`, as MT-Bench's judges answer.
            ["[[a]]", "[[b]]", "[[tie]]"]
                .iter()
                .find(|m| reply.to_lowercase().contains(*m))
                .and_then(|m| choice(m.trim_matches(|c| c == '[' || c == ']')))
        })
        .ok_or_else(|| format!("no verdict (A, B or tie) in the reply {:?}", clip(reply)))
}

/// A reply that must say something (a critique, a revision), trimmed.
pub fn read_text(reply: &str, what: &str) -> Result<String, String> {
    match reply.trim() {
        "" => Err(format!("the reply has no {what}")),
        text => Ok(text.to_string()),
    }
}

/// A reply as an error shows it: its start.
fn clip(reply: &str) -> String {
    reply.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fill_each_placeholder_once() {
        let prompts = JudgePrompts::default();
        let request = prompts.compare_request(Criterion::Helpful, "Q?", "the {b} answer", "second");
        assert!(
            request.starts_with("Which answer is more helpful? it answers what was asked"),
            "{request}"
        );
        assert!(
            request.contains("[Answer A]\nthe {b} answer\n\n[Answer B]\nsecond"),
            "{request}"
        );
        let score = prompts.score_request(Criterion::Overall, "Q?", "R.");
        assert!(
            score.starts_with("Rate how good the assistant's answer is: better overall"),
            "{score}"
        );
    }

    #[test]
    fn constitution_requests_carry_the_principle_and_the_critique() {
        let prompts = JudgePrompts::default();
        let request = prompts.revise_request("Rewrite it politely.", "Q?", "Ugh. {critique}", "It is rude.");
        assert!(
            request.starts_with(
                "[Conversation]\nQ?\n\n[Answer]\nUgh. {critique}\n\n[Critique]\nIt is rude.\n\nRewrite it politely."
            ),
            "{request}"
        );
        let compare = prompts.principle_compare_request("Is it rude?", "Q?", "x", "y");
        assert!(
            compare.contains("less? Is it rude?") && compare.contains("[Answer B]\ny"),
            "{compare}"
        );
        assert_eq!(
            read_text("  A better answer. ", "revision"),
            Ok("A better answer.".into())
        );
        assert!(read_text(" \n", "revision").unwrap_err().contains("no revision"));
    }

    #[test]
    fn scores_and_verdicts_are_read_or_refused() {
        assert_eq!(read_score("7"), Ok(6.0 / 9.0));
        assert_eq!(read_score(" Score: 10/10"), Ok(1.0));
        assert_eq!(read_score("1"), Ok(0.0));
        assert!(read_score("11").is_err());
        assert!(read_score("great answer").unwrap_err().contains("great answer"));
        assert_eq!(read_choice("A"), Ok(Choice::Left));
        assert_eq!(read_choice(" b."), Ok(Choice::Right));
        assert_eq!(read_choice("Tie"), Ok(Choice::Tie));
        assert_eq!(read_choice("Answer B"), Ok(Choice::Right));
        assert_eq!(read_choice("After thought, my verdict: [[A]]"), Ok(Choice::Left));
        // An article is not a verdict.
        assert!(read_choice("a fine answer").is_err());
        assert!(read_choice("").is_err());
    }
}
