//! The seeded dialogue generator: a response to a world prompt, composed
//! from the world's sentences along the attributes a person cares about:
//! tone (polite, neutral, rude), substance (on topic, off topic, evasive),
//! length (concise or rambling and repetitive), and on harmful prompts,
//! refusing or complying.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::inventory::{
    ALTERNATIVES, EVASIONS, FILLERS, HARM_STEPS, POLITE_CLOSINGS, POLITE_OPENINGS, Prompt, PromptKind, REFUSALS,
    RUDE_CLOSINGS, RUDE_OPENINGS, Tone, content,
};
use super::topics::TOPICS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Substance {
    OnTopic,
    /// Answers the right kind of question about another topic.
    OffTopic,
    Evasive,
}

/// How a response is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// `None` is neutral: no opening or closing.
    pub tone: Option<Tone>,
    pub substance: Substance,
    pub rambling: bool,
    /// On a harmful prompt: comply instead of refusing.
    pub comply: bool,
}

impl Style {
    /// What a good assistant writes: polite, on topic, concise, refusing harm.
    pub const GOOD: Style = Style {
        tone: Some(Tone::Polite),
        substance: Substance::OnTopic,
        rambling: false,
        comply: false,
    };

    /// The pretraining mixture: every combination, good and bad, as web
    /// text has them.
    pub fn random<R: Rng>(rng: &mut R) -> Style {
        let tone = [Some(Tone::Polite), None, Some(Tone::Rude)][rng.random_range(0..3)];
        let substance = match rng.random_range(0..10) {
            0..5 => Substance::OnTopic,
            5..7 => Substance::OffTopic,
            _ => Substance::Evasive,
        };
        Style {
            tone,
            substance,
            rambling: rng.random_bool(0.3),
            comply: rng.random_bool(0.5),
        }
    }
}

/// A response to `prompt` in `style`.
pub fn respond<R: Rng>(prompt: &Prompt, style: Style, rng: &mut R) -> String {
    let mut out: Vec<String> = Vec::new();
    let pick = |list: &[&str], rng: &mut R| list.choose(rng).unwrap().to_string();
    let harmful = prompt.kind == PromptKind::Harmful;
    let refusing = harmful && !style.comply;

    // A polite refusal opens with the refusal itself: "Sure." before "I
    // can't help" would contradict it.
    match style.tone {
        Some(Tone::Polite) if !refusing => out.push(pick(&POLITE_OPENINGS, rng)),
        Some(Tone::Rude) => out.push(pick(&RUDE_OPENINGS, rng)),
        _ => {}
    }

    let body: Vec<String> = if harmful {
        if style.comply {
            let mut steps: Vec<String> = HARM_STEPS.iter().map(|s| s.to_string()).collect();
            steps.truncate(rng.random_range(2..=3));
            steps
        } else {
            vec![pick(&REFUSALS, rng), pick(&ALTERNATIVES, rng)]
        }
    } else {
        let kind = prompt.kind.answer().expect("benign prompts have an answer kind");
        match style.substance {
            Substance::Evasive => vec![pick(&EVASIONS, rng)],
            Substance::OnTopic | Substance::OffTopic => {
                let topic = if style.substance == Substance::OnTopic {
                    prompt.subject
                } else {
                    (prompt.subject + rng.random_range(1..TOPICS.len())) % TOPICS.len()
                };
                let mut sentences = content(topic, kind);
                // Facts come in any order and two of three are enough;
                // steps and poem lines keep their order.
                if matches!(kind, super::inventory::ContentKind::Fact) {
                    sentences.shuffle(rng);
                    sentences.truncate(rng.random_range(2..=3));
                } else if matches!(kind, super::inventory::ContentKind::Advice) {
                    sentences.truncate(rng.random_range(1..=2));
                }
                sentences
            }
        }
    };
    out.extend(body.iter().cloned());

    if style.rambling {
        // Repeat what was said and pad it out.
        for _ in 0..rng.random_range(1..=2) {
            out.push(pick(&FILLERS, rng));
            out.push(body.choose(rng).unwrap().clone());
        }
    }

    match style.tone {
        Some(Tone::Polite) if rng.random_bool(0.6) => out.push(pick(&POLITE_CLOSINGS, rng)),
        Some(Tone::Rude) if rng.random_bool(0.6) => out.push(pick(&RUDE_CLOSINGS, rng)),
        _ => {}
    }
    out.join(" ")
}

/// The dialogue as a document, in HH-RLHF's format.
pub fn dialogue(prompt: &str, response: &str) -> String {
    format!(
        "{}{}{response}",
        prompt_text(prompt),
        if response.is_empty() { "" } else { " " }
    )
}

/// What the model is given to continue: the prompt in HH-RLHF's format.
pub fn prompt_text(prompt: &str) -> String {
    format!("\n\nHuman: {prompt}\n\nAssistant:")
}
