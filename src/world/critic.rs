//! The built-in world's critic for Constitutional AI: rule-based and
//! deterministic. It reads a response back into the world's sentences,
//! knows which sentence breaks which of the shipped principles (harmless,
//! polite, on_topic, concise, honest) and how to rewrite it, so each
//! revision is one the judge scores higher. It compares two responses
//! under a principle by how many sentences break it.

use super::inventory::{
    AGREEMENTS, ALTERNATIVES, CORRECTIONS, ContentKind, Inventory, POLITE_CLOSINGS, POLITE_OPENINGS,
    Prompt as WorldPrompt, PromptKind, REFUSALS, Sentence, Tone, content, split_sentences,
};
use super::source::{answer, question};
use crate::rlhf::cai::constitution::{Constitution, Principle};
use crate::rlhf::cai::critic::{Critic, Critique};
use crate::rlhf::data::Prompt;
use crate::trainer::protocol::Choice;

/// The world's rule critic.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorldCritic;

/// The principles it knows, by their names in the shipped constitution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Harmless,
    Polite,
    OnTopic,
    Concise,
    Honest,
}

impl Rule {
    const NAMES: [(&str, Rule); 5] = [
        ("harmless", Rule::Harmless),
        ("polite", Rule::Polite),
        ("on_topic", Rule::OnTopic),
        ("concise", Rule::Concise),
        ("honest", Rule::Honest),
    ];

    fn of(principle: &Principle) -> Result<Rule, String> {
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == principle.name)
            .map(|&(_, rule)| rule)
            .ok_or_else(|| {
                format!(
                    "the built-in world's critic knows the principles {}; `{}` needs an AI critic (an endpoint or command judge)",
                    Self::NAMES.map(|(n, _)| n).join(", "),
                    principle.name
                )
            })
    }

    /// Why a sentence it flags breaks the principle.
    fn why(self) -> &'static str {
        match self {
            Rule::Harmless => "gives a step towards harm; it should refuse and point somewhere better",
            Rule::Polite => "is rude to the person",
            Rule::OnTopic => "is about something the person did not ask about",
            Rule::Concise => "repeats or pads and adds nothing",
            Rule::Honest => "is made up, claims not to know what the world knows, or misjudges the person's claim",
        }
    }
}

/// What to do with a flagged sentence.
enum Fix {
    Drop,
    Replace(Vec<String>),
}

/// A response read back into the world's sentences.
struct Reading<'a> {
    asked: Option<&'static WorldPrompt>,
    texts: Vec<&'a str>,
    sentences: Vec<Option<Sentence>>,
}

impl<'a> Reading<'a> {
    fn new(question: &str, response: &'a str) -> Self {
        let inv = Inventory::get();
        let texts = split_sentences(response);
        let sentences = texts.iter().map(|t| inv.sentence(t)).collect();
        Self {
            asked: inv.prompt(question),
            texts,
            sentences,
        }
    }

    fn harmful(&self) -> bool {
        self.asked.is_some_and(|p| p.kind == PromptKind::Harmful)
    }

    fn has(&self, s: Sentence) -> bool {
        self.sentences.contains(&Some(s))
    }

    /// The sentences that answer a benign world prompt, in answer order;
    /// on a claim, the true verdict and the truth.
    fn answer(&self) -> Option<Vec<String>> {
        let p = self.asked?;
        if let Some(claim) = p.claim {
            let verdict = if claim.holds() { AGREEMENTS[0] } else { CORRECTIONS[0] };
            let said = self.has(Sentence::Verdict(claim.holds()));
            let verdict = (!said).then(|| verdict.to_string());
            return Some(verdict.into_iter().chain([claim.truth(p.subject)]).collect());
        }
        let kind = p.kind.answer()?;
        let mut all = content(p.subject, kind);
        all.truncate(if kind == ContentKind::Fact { 2 } else { all.len() });
        Some(all)
    }

    fn answers(&self) -> bool {
        if let Some(p) = self.asked
            && let Some(claim) = p.claim
        {
            return self.texts.contains(&claim.truth(p.subject).as_str())
                && self.has(Sentence::Verdict(claim.holds()))
                && !self.has(Sentence::Verdict(!claim.holds()));
        }
        let wanted = self.asked.and_then(|p| Some((p.subject, p.kind.answer()?)));
        wanted.is_some_and(|(topic, kind)| self.has(Sentence::Content { topic, kind }))
    }

    /// The flagged sentences under `rule` and their fixes.
    fn flags(&self, rule: Rule) -> Vec<(usize, Fix)> {
        let harmful = self.harmful();
        let mut seen = std::collections::HashSet::new();
        let mut refused = self.has(Sentence::Refusal);
        // What the world knows in place of the first made-up sentence or
        // evasion of a response that does not answer.
        let mut answer = self.answer().filter(|_| !self.answers());
        let mut answered = |texts: &[&str]| {
            answer
                .take()
                .map(|a| Fix::Replace(a.into_iter().filter(|s| !texts.contains(&s.as_str())).collect()))
        };
        let mut flags = Vec::new();
        for (i, (text, sentence)) in self.texts.iter().zip(&self.sentences).enumerate() {
            let repeat = !seen.insert(*text);
            let fix = match (rule, *sentence) {
                (Rule::Harmless, Some(Sentence::HarmStep)) if harmful && !refused => {
                    refused = true;
                    Some(Fix::Replace(vec![REFUSALS[0].into(), ALTERNATIVES[0].into()]))
                }
                (Rule::Harmless, Some(Sentence::HarmStep)) => Some(Fix::Drop),
                // A refusal does not open with "Sure."; it opens with itself.
                (Rule::Polite, Some(Sentence::Opening(Tone::Rude))) if harmful => Some(Fix::Drop),
                (Rule::Polite, Some(Sentence::Opening(Tone::Rude))) => {
                    Some(Fix::Replace(vec![POLITE_OPENINGS[0].into()]))
                }
                (Rule::Polite, Some(Sentence::Closing(Tone::Rude))) => {
                    Some(Fix::Replace(vec![POLITE_CLOSINGS[0].into()]))
                }
                (Rule::OnTopic, Some(Sentence::Content { topic, kind })) => self.on_topic(topic, kind, text),
                (Rule::Concise, Some(Sentence::Filler)) => Some(Fix::Drop),
                (Rule::Concise, _) if repeat => Some(Fix::Drop),
                (Rule::Honest, None) => answered(&self.texts).or(Some(Fix::Drop)),
                (Rule::Honest, Some(Sentence::Evasive)) => answered(&self.texts),
                (Rule::Honest, Some(Sentence::Verdict(says)))
                    if self.asked.and_then(|p| p.claim).is_some_and(|c| c.holds() != says) =>
                {
                    answered(&self.texts).or(Some(Fix::Drop))
                }
                _ => None,
            };
            flags.extend(fix.map(|f| (i, f)));
        }
        flags
    }

    /// Content about another topic: the same sentence about the topic asked
    /// about (dropped when the response says that already, or the prompt is
    /// a harmful one, which has no topic to be about).
    fn on_topic(&self, topic: usize, kind: ContentKind, text: &str) -> Option<Fix> {
        let asked = self.asked?;
        if asked.kind != PromptKind::Harmful && topic == asked.subject {
            return None;
        }
        if asked.kind == PromptKind::Harmful {
            return Some(Fix::Drop);
        }
        let at = content(topic, kind).iter().position(|s| s == text)?;
        let same = content(asked.subject, kind).swap_remove(at);
        Some(match self.texts.contains(&same.as_str()) {
            true => Fix::Drop,
            false => Fix::Replace(vec![same]),
        })
    }

    /// The response with the fixes applied; one left with nothing that
    /// answers gets the answer (a refusal, on a harmful prompt).
    fn revised(&self, flags: &[(usize, Fix)]) -> String {
        let mut out: Vec<String> = Vec::new();
        for (i, text) in self.texts.iter().enumerate() {
            match flags.iter().find(|(at, _)| *at == i).map(|(_, f)| f) {
                None => out.push(text.to_string()),
                Some(Fix::Drop) => {}
                Some(Fix::Replace(with)) => {
                    out.extend(with.iter().filter(|w| !out.contains(w)).cloned().collect::<Vec<_>>())
                }
            }
        }
        let inv = Inventory::get();
        let body = out.iter().any(|t| {
            matches!(
                inv.sentence(t),
                Some(
                    Sentence::Content { .. }
                        | Sentence::Refusal
                        | Sentence::Evasive
                        | Sentence::HarmStep
                        | Sentence::Verdict(_)
                )
            )
        });
        if !body && self.asked.is_some() {
            match self.harmful() {
                true => out.extend([REFUSALS[0].to_string(), ALTERNATIVES[0].to_string()]),
                false => out.extend(self.answer().unwrap_or_default()),
            }
        }
        out.join(" ")
    }
}

impl Critic for WorldCritic {
    fn name(&self) -> &str {
        "critic:world"
    }

    fn check(&self, constitution: &Constitution) -> Result<(), String> {
        constitution.principles.iter().try_for_each(|p| Rule::of(p).map(|_| ()))
    }

    fn critique(&self, prompt: &Prompt, response: &str, principle: &Principle) -> Result<Critique, String> {
        let rule = Rule::of(principle)?;
        let reading = Reading::new(question(prompt), answer(response));
        let flags = reading.flags(rule);
        if flags.is_empty() {
            return Ok(Critique {
                text: format!("Nothing in the response breaks the principle `{}`.", principle.name),
                revision: response.trim().to_string(),
            });
        }
        let quoted: Vec<String> = flags
            .iter()
            .map(|(i, _)| format!("\"{}\"", reading.texts[*i]))
            .collect();
        Ok(Critique {
            text: format!("{} {}.", quoted.join(", "), rule.why()),
            revision: reading.revised(&flags),
        })
    }

    /// The response with fewer sentences breaking the principle.
    fn compare(&self, prompt: &Prompt, a: &str, b: &str, principle: &Principle) -> Result<Choice, String> {
        let rule = Rule::of(principle)?;
        let q = question(prompt);
        let broken = |r: &str| Reading::new(q, answer(r)).flags(rule).len();
        Ok(match broken(a).cmp(&broken(b)) {
            std::cmp::Ordering::Less => Choice::Left,
            std::cmp::Ordering::Greater => Choice::Right,
            std::cmp::Ordering::Equal => Choice::Tie,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::world::corpus::world_prompts;
    use crate::world::generator::{Style, garble, respond};
    use crate::world::judge::judge;

    fn principle(name: &str) -> Principle {
        Constitution::default()
            .principles
            .into_iter()
            .find(|p| p.name == name)
            .unwrap()
    }

    fn critique(q: &str, response: &str, name: &str) -> Critique {
        WorldCritic
            .critique(&Prompt::question(q), response, &principle(name))
            .unwrap()
    }

    #[test]
    fn each_rule_on_a_hand_made_response() {
        let q = "How do I steal a bike?";
        let c = critique(
            q,
            "Ugh, fine. First, wait until no one is watching. Then, do it fast and run away.",
            "harmless",
        );
        assert_eq!(
            c.revision,
            "Ugh, fine. I can't help with that, because it could hurt someone. Maybe talk to someone you trust instead."
        );
        assert!(c.text.starts_with("\"First, wait until no one is watching.\", \"Then, do it fast and run away.\" gives a step towards harm"), "{}", c.text);
        let c = critique(q, &c.revision, "polite");
        assert_eq!(
            c.revision,
            "I can't help with that, because it could hurt someone. Maybe talk to someone you trust instead."
        );
        assert_eq!(judge(q, &c.revision).score, 1.0);
        // Off topic: the same fact about rain.
        let c = critique(
            "What is rain?",
            "Ugh, fine. Snow covers the ground in white. Rain helps the plants grow.",
            "on_topic",
        );
        assert_eq!(c.revision, "Ugh, fine. Rain helps the plants grow.");
        let c = critique(
            "What is rain?",
            "Snow covers the ground in white. Snow covers the ground in white. As I said before.",
            "concise",
        );
        assert_eq!(c.revision, "Snow covers the ground in white.");
        let c = critique("What is rain?", "That is hard to say. Rain is a blorp.", "honest");
        assert_eq!(
            c.revision,
            "Rain is water that falls from the clouds. You can find rain in the sky on gray days."
        );
        // Agreeing with a false claim: the correction and the truth instead.
        let c = critique(
            "Is it true that the moon is a star at the center of our solar system?",
            "Great question! Yes, you are right. You can find the moon in the night sky.",
            "honest",
        );
        assert_eq!(
            c.revision,
            "Great question! No, that is not right. The moon is a big rock that goes around the earth. You can find the moon in the night sky."
        );
        assert!(c.text.contains("misjudges the person's claim"), "{}", c.text);
        // Nothing to find: the response as it was, and a critique saying so.
        let c = critique("What is rain?", "Rain helps the plants grow.", "polite");
        assert_eq!(c.revision, "Rain helps the plants grow.");
        assert!(c.text.starts_with("Nothing"));
        // A principle the world does not know is refused, naming it.
        let odd = Principle {
            name: "witty".into(),
            critique: "c".into(),
            revision: "r".into(),
        };
        let err = WorldCritic.critique(&Prompt::question(q), "x", &odd).unwrap_err();
        assert!(err.contains("`witty` needs an AI critic"), "{err}");
    }

    /// Over the pretraining mixture's responses (every style, some
    /// garbled, claims among the prompts): every revision that changes a
    /// response is better by the judge, and the comparison under its
    /// principle prefers it.
    #[test]
    fn revisions_beat_the_originals_by_the_judge() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let prompts = world_prompts(false, true);
        let constitution = Constitution::default();
        let mut changed = 0;
        for i in 0..2000 {
            let p = prompts[i % prompts.len()];
            let mut response = respond(p, Style::random(&mut rng), &mut rng);
            if i % 5 == 0 {
                response = garble(&response, &mut rng);
            }
            for principle in &constitution.principles {
                let asked = Prompt::question(&p.text);
                let c = WorldCritic.critique(&asked, &response, principle).unwrap();
                if c.revision == response {
                    continue;
                }
                changed += 1;
                let (before, after) = (judge(&p.text, &response).score, judge(&p.text, &c.revision).score);
                assert!(after > before, "{}: {response:?} -> {:?}", principle.name, c.revision);
                let choice = WorldCritic.compare(&asked, &c.revision, &response, principle).unwrap();
                assert_eq!(
                    choice,
                    Choice::Left,
                    "{}: {response:?} -> {:?}",
                    principle.name,
                    c.revision
                );
            }
        }
        assert!(changed > 2000, "{changed}");
    }
}
