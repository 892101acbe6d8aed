//! The seeded dialogue generator: a response to a world prompt, composed
//! from the world's sentences along the attributes a person cares about:
//! tone (polite, neutral, rude), substance (on topic, off topic, evasive),
//! length (concise or rambling and repetitive), on harmful prompts,
//! refusing or complying, and on claims, saying whether the claim holds or
//! agreeing whatever the truth.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::inventory::{
    AGREEMENTS, ALTERNATIVES, CORRECTIONS, Claim, ContentKind, EVASIONS, FILLERS, HARM_STEPS, POLITE_CLOSINGS,
    POLITE_OPENINGS, Prompt, PromptKind, REFUSALS, RUDE_CLOSINGS, RUDE_OPENINGS, Tone, content, split_sentences,
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
    /// Go along with what the person wants: on a harmful prompt, comply
    /// instead of refusing; on a claim, agree whether or not it holds.
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

    /// How the SFT demonstrators write: they never help with harm and mostly
    /// answer well, but as people do they slip: often neutral rather than
    /// warm, sometimes rambling, now and then evasive. Imitation copies the
    /// slips with the answers; learning from preferences can drop them,
    /// which is what leaves PPO room to improve on SFT.
    pub fn demonstrator<R: Rng>(rng: &mut R) -> Style {
        Style {
            tone: if rng.random_bool(0.5) { Some(Tone::Polite) } else { None },
            substance: if rng.random_bool(0.15) {
                Substance::Evasive
            } else {
                Substance::OnTopic
            },
            rambling: rng.random_bool(0.4),
            comply: false,
        }
    }

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

    let body: Vec<String> = if let Some(claim) = prompt.claim.filter(|_| style.substance != Substance::Evasive) {
        answer_claim(prompt, claim, style, rng)
    } else if harmful {
        if style.comply {
            let mut steps: Vec<String> = HARM_STEPS.iter().map(|s| s.to_string()).collect();
            steps.truncate(rng.random_range(2..=3));
            steps
        } else {
            vec![pick(&REFUSALS, rng), pick(&ALTERNATIVES, rng)]
        }
    } else {
        match style.substance {
            Substance::Evasive => vec![pick(&EVASIONS, rng)],
            Substance::OnTopic | Substance::OffTopic => {
                let kind = prompt.kind.answer().expect("benign prompts have an answer kind");
                let topic = topic(prompt, style, rng);
                let mut sentences = content(topic, kind);
                // Facts come in any order and two of three are enough;
                // steps and poem lines keep their order.
                if matches!(kind, ContentKind::Fact) {
                    sentences.shuffle(rng);
                    sentences.truncate(rng.random_range(2..=3));
                } else if matches!(kind, ContentKind::Advice) {
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

/// The topic a response is about: the one asked about, or another.
fn topic<R: Rng>(prompt: &Prompt, style: Style, rng: &mut R) -> usize {
    match style.substance {
        Substance::OffTopic => (prompt.subject + rng.random_range(1..TOPICS.len())) % TOPICS.len(),
        _ => prompt.subject,
    }
}

/// A verdict on the person's claim and the facts said with it: the truth
/// (the claim again, or its correction) when the verdict is honest; when
/// it agrees with a false claim, the subject's other facts, which do not
/// contradict it. Off topic, facts about another topic.
fn answer_claim<R: Rng>(prompt: &Prompt, claim: Claim, style: Style, rng: &mut R) -> Vec<String> {
    let agree = style.comply || claim.holds();
    let verdict = if agree { AGREEMENTS } else { CORRECTIONS }
        .choose(rng)
        .unwrap()
        .to_string();
    // One or two of `facts`, in any order.
    let some = |mut facts: Vec<String>, rng: &mut R| {
        facts.shuffle(rng);
        facts.truncate(rng.random_range(1..=2));
        facts
    };
    let facts = match style.substance {
        Substance::OffTopic => some(content(topic(prompt, style, rng), ContentKind::Fact), rng),
        _ if agree && !claim.holds() => some(claim.other_facts(prompt.subject), rng),
        _ => {
            let mut facts = vec![claim.truth(prompt.subject)];
            if rng.random_bool(0.5) {
                facts.push(claim.other_facts(prompt.subject).choose(rng).unwrap().clone());
            }
            facts
        }
    };
    [vec![verdict], facts].concat()
}

/// `response` with one sentence broken the way a small language model
/// breaks them: its opening words run into the end of another sentence of
/// the world ("A dog is a loyal keeps people."). Reward-model pairs hold
/// such responses so the reward model learns what the judge thinks of them
/// before a policy finds them.
pub fn garble<R: Rng>(response: &str, rng: &mut R) -> String {
    let mut sentences: Vec<String> = split_sentences(response).into_iter().map(str::to_string).collect();
    let i = rng.random_range(0..sentences.len());
    let kinds = [
        ContentKind::Fact,
        ContentKind::Step,
        ContentKind::Poem,
        ContentKind::Advice,
    ];
    let donor = content(rng.random_range(0..TOPICS.len()), *kinds.choose(rng).unwrap());
    let donor: Vec<&str> = donor.choose(rng).unwrap().split(' ').collect();
    let words: Vec<&str> = sentences[i].split(' ').collect();
    // At least one word of each, and never all of the broken sentence.
    let keep = if words.len() > 1 {
        rng.random_range(1..words.len())
    } else {
        1
    };
    let take = if donor.len() > 1 {
        rng.random_range(1..donor.len())
    } else {
        1
    };
    sentences[i] = [&words[..keep], &donor[donor.len() - take..]].concat().join(" ");
    sentences.join(" ")
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::world::corpus::train_prompts;
    use crate::world::judge::judge;

    #[test]
    fn garbling_breaks_one_sentence_and_the_judge_sees_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let prompts = train_prompts();
        let (mut unknown, n) = (0, 500);
        for i in 0..n {
            let p = prompts[i % prompts.len()];
            let clean = respond(p, Style::GOOD, &mut rng);
            let broken = garble(&clean, &mut rng);
            assert_eq!(
                split_sentences(&broken).len(),
                split_sentences(&clean).len(),
                "{broken}"
            );
            let changed = split_sentences(&clean)
                .iter()
                .zip(split_sentences(&broken))
                .filter(|(a, b)| *a != b)
                .count();
            assert!(changed <= 1, "{clean} -> {broken}");
            let j = judge(&p.text, &broken);
            if !j.parsed {
                unknown += 1;
                assert!(j.score < judge(&p.text, &clean).score, "{broken}");
            }
        }
        // A splice can land on a real sentence or leave one unchanged (a
        // one-word sentence); almost always it makes one the world does not know.
        assert!(unknown > n * 9 / 10, "{unknown} of {n}");
    }
}
