//! Preference files in the formats other tools write, one JSON object a
//! line (plain or gzip-compressed): TRL's `{"prompt", "chosen",
//! "rejected"}`, where the prompt is given and each side is a response, and
//! HH-RLHF's `{"chosen", "rejected"}`, where each side is a whole dialogue
//! and the prompt is the shared prefix up to the last `\n\nAssistant:`.
//! TRL's conversational forms (each value a list of `{"role", "content"}`
//! turns, the prompt given or the turns both sides share) are laid out
//! by the model's chat format. A malformed line is reported with its
//! number; the other lines are kept.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::data::chat::{ChatFormat, Message, Prompt};
use crate::data::files::{messages_of, open, read_lines};

/// One comparison: `prompt + chosen` beat `prompt + rejected`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferencePair {
    /// The text both sides continue, verbatim (an HH prompt ends in `Assistant:`).
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

/// A line that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl LineError {
    /// The warning for the line of `path`: `file:line: skipped: why`.
    pub fn skipped(&self, path: &Path) -> String {
        format!("{}:{}: skipped: {}", path.display(), self.line, self.message)
    }
}

/// The pairs a file holds and the lines that were skipped.
#[derive(Debug, Default)]
pub struct PreferenceFile {
    pub pairs: Vec<PreferencePair>,
    pub errors: Vec<LineError>,
}

const ASSISTANT: &str = "\n\nAssistant:";

/// Other keys (ids, scores, sources that other tools add) are ignored.
#[derive(Deserialize)]
struct Line {
    prompt: Option<Value>,
    chosen: Value,
    rejected: Value,
}

/// Splits two HH-RLHF dialogues into their shared prompt and the two final
/// Assistant turns.
pub fn split_dialogues(chosen: &str, rejected: &str) -> Result<PreferencePair, String> {
    let common = chosen
        .char_indices()
        .zip(rejected.chars())
        .find(|((_, a), b)| a != b)
        .map_or(chosen.len().min(rejected.len()), |((i, _), _)| i);
    let cut = chosen[..common]
        .rfind(ASSISTANT)
        .ok_or("the two dialogues share no \"\\n\\nAssistant:\" turn, so there is no prompt to split off")?
        + ASSISTANT.len();
    if chosen.len() == cut || rejected.len() == cut {
        return Err("a side has an empty final Assistant turn".into());
    }
    Ok(PreferencePair {
        prompt: chosen[..cut].to_string(),
        chosen: chosen[cut..].to_string(),
        rejected: rejected[cut..].to_string(),
    })
}

const EXPECTED: &str = "{\"prompt\", \"chosen\", \"rejected\"} (TRL) or {\"chosen\", \"rejected\"} (HH-RLHF), with strings or, in TRL's conversational form, lists of {\"role\", \"content\"} turns";

/// Parses one line in any of the formats; `format` lays out the
/// conversational ones.
pub fn parse_line(text: &str, format: &ChatFormat) -> Result<PreferencePair, String> {
    let line: Line = serde_json::from_str(text).map_err(|e| format!("{e}; expected {EXPECTED}"))?;
    let pair = match (line.prompt, line.chosen, line.rejected) {
        (Some(Value::String(prompt)), Value::String(chosen), Value::String(rejected)) => PreferencePair {
            prompt,
            chosen,
            rejected,
        },
        (None, Value::String(chosen), Value::String(rejected)) => split_dialogues(&chosen, &rejected)?,
        (prompt, chosen @ Value::Array(_), rejected @ Value::Array(_)) => {
            conversational(prompt.as_ref(), &chosen, &rejected, format)?
        }
        _ => return Err(format!("expected {EXPECTED}")),
    };
    if pair.chosen == pair.rejected {
        return Err("chosen and rejected are the same text".into());
    }
    Ok(pair)
}

/// TRL's conversational pair: the prompt's turns (given, or the turns both
/// sides share) and each side's one assistant turn, laid out by `format`.
fn conversational(
    prompt: Option<&Value>,
    chosen: &Value,
    rejected: &Value,
    format: &ChatFormat,
) -> Result<PreferencePair, String> {
    let (chosen, rejected) = (messages_of(chosen, "chosen")?, messages_of(rejected, "rejected")?);
    let (turns, chosen, rejected): (Vec<Message>, &[Message], &[Message]) = match prompt {
        Some(prompt) => (messages_of(prompt, "prompt")?, &chosen, &rejected),
        None => {
            let shared = chosen.iter().zip(&rejected).take_while(|(a, b)| a == b).count();
            (chosen[..shared].to_vec(), &chosen[shared..], &rejected[shared..])
        }
    };
    let answer = |side: &[Message], key: &str| match side {
        [turn] if turn.role == "assistant" => Ok(turn.content.clone()),
        _ => Err(format!("{key}: expected one assistant turn after the prompt")),
    };
    let (chosen, rejected) = (answer(chosen, "chosen")?, answer(rejected, "rejected")?);
    if !turns.iter().any(|m| m.role == "user") {
        return Err("the prompt has no user turn".into());
    }
    let prompt = Prompt::Chat(turns);
    Ok(PreferencePair {
        prompt: format.prompt_text(&prompt)?,
        chosen: format.response_text(&prompt, &chosen)?,
        rejected: format.response_text(&prompt, &rejected)?,
    })
}

/// Reads every line of `reader`; blank lines are ignored.
pub fn read_pairs(reader: impl Read, format: &ChatFormat) -> std::io::Result<PreferenceFile> {
    let read = read_lines(reader, |line| parse_line(line, format).map(|p| vec![p]))?;
    Ok(PreferenceFile {
        pairs: read.items,
        errors: read.errors,
    })
}

/// The formats `prefs export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `{"prompt", "chosen", "rejected"}`.
    Trl,
    /// `{"chosen", "rejected"}`, each the whole dialogue.
    Hh,
}

/// One pair as a line of `format`. HH-RLHF keeps no prompt of its own, so
/// only a prompt that ends in an Assistant turn can be written as a
/// dialogue that reads back as the same pair.
pub fn to_line(pair: &PreferencePair, format: Format) -> Result<String, String> {
    let value = match format {
        Format::Trl => serde_json::json!({ "prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected }),
        Format::Hh => {
            if !pair.prompt.ends_with(ASSISTANT) {
                return Err("its prompt does not end in \"\\n\\nAssistant:\", so it is not an HH-RLHF dialogue; export it with --format trl".into());
            }
            let whole = |side: &str| format!("{}{side}", pair.prompt);
            serde_json::json!({ "chosen": whole(&pair.chosen), "rejected": whole(&pair.rejected) })
        }
    };
    Ok(value.to_string())
}

/// Reads a preference file; a name ending in `.gz` is decompressed.
pub fn read_file(path: &Path, format: &ChatFormat) -> anyhow::Result<PreferenceFile> {
    read_pairs(open(path)?, format).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hh() -> ChatFormat {
        ChatFormat::dialogue("<|endoftext|>")
    }

    #[test]
    fn conversational_pairs_are_laid_out_by_the_chat_format() {
        let user = r#"{"role": "user", "content": "What is a cat?"}"#;
        let side = |text: &str| format!(r#"[{{"role": "assistant", "content": "{text}"}}]"#);
        let explicit = format!(
            r#"{{"prompt": [{user}], "chosen": {}, "rejected": {}}}"#,
            side("A pet."),
            side("No.")
        );
        let pair = parse_line(&explicit, &hh()).unwrap();
        assert_eq!(pair.prompt, "\n\nHuman: What is a cat?\n\nAssistant:");
        assert_eq!((pair.chosen.as_str(), pair.rejected.as_str()), (" A pet.", " No."));
        // Implicit prompt: the turns both sides share.
        let whole = |text: &str| format!(r#"[{user}, {{"role": "assistant", "content": "{text}"}}]"#);
        let implicit = format!(r#"{{"chosen": {}, "rejected": {}}}"#, whole("A pet."), whole("No."));
        assert_eq!(parse_line(&implicit, &hh()).unwrap(), pair);
        // A template lays them out its own way.
        let source = "{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
        let template = crate::data::chat::ChatTemplate::new(source, "", "</s>", Path::new("t")).unwrap();
        let pair = parse_line(&explicit, &ChatFormat::Template(Box::new(template))).unwrap();
        assert_eq!(pair.prompt, "<user>What is a cat?</s><assistant>");
        assert_eq!(pair.chosen, "A pet.");
        // Two turns on one side, or a side that is a user turn: refused.
        let two = format!(
            r#"{{"prompt": [{user}], "chosen": {}, "rejected": {}}}"#,
            whole("A."),
            side("B.")
        );
        assert!(
            parse_line(&two, &hh())
                .unwrap_err()
                .contains("chosen: expected one assistant turn")
        );
        let mixed = format!(r#"{{"prompt": [{user}], "chosen": "A.", "rejected": {}}}"#, side("B."));
        assert!(parse_line(&mixed, &hh()).unwrap_err().contains("conversational"));
    }

    #[test]
    fn hh_dialogues_split_at_the_last_shared_assistant_turn() {
        let chosen = "\n\nHuman: hi\n\nAssistant: Hello.\n\nHuman: help me\n\nAssistant: Sure, how?";
        let rejected = "\n\nHuman: hi\n\nAssistant: Hello.\n\nHuman: help me\n\nAssistant: No.";
        let pair = split_dialogues(chosen, rejected).unwrap();
        assert_eq!(
            pair.prompt,
            "\n\nHuman: hi\n\nAssistant: Hello.\n\nHuman: help me\n\nAssistant:"
        );
        assert_eq!(pair.chosen, " Sure, how?");
        assert_eq!(pair.rejected, " No.");
        // The sides may differ in length and share a first word of the answer.
        let pair = split_dialogues("\n\nHuman: q\n\nAssistant: I can", "\n\nHuman: q\n\nAssistant: I can't").unwrap();
        assert_eq!((pair.chosen.as_str(), pair.rejected.as_str()), (" I can", " I can't"));
    }

    #[test]
    fn both_formats_and_bad_lines_with_their_numbers() {
        let text = [
            r#"{"prompt": "Q: 2+2?", "chosen": " 4", "rejected": " 5", "id": 7, "score_chosen": 9.0}"#,
            "",
            r#"{"chosen": "\n\nHuman: x\n\nAssistant: a", "rejected": "\n\nHuman: x\n\nAssistant: b"}"#,
            r#"{"chosen": "no dialogue", "rejected": "at all"}"#,
            r#"{"prompt": "p", "chosen": 3, "rejected": "r"}"#,
            r#"{"prompt": "p", "chosen": "same", "rejected": "same"}"#,
            "not json",
        ]
        .join("\n");
        let file = read_pairs(text.as_bytes(), &hh()).unwrap();
        assert_eq!(file.pairs.len(), 2);
        assert_eq!(file.pairs[0].prompt, "Q: 2+2?");
        assert_eq!(file.pairs[1].chosen, " a");
        let lines: Vec<usize> = file.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6, 7]);
        assert!(file.errors[0].message.contains("Assistant:"), "{:?}", file.errors[0]);
        assert!(file.errors[1].message.contains("TRL"), "{:?}", file.errors[1]);
    }

    #[test]
    fn every_pair_of_the_shipped_hh_test_split_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hh-rlhf-harmless/test.jsonl.gz");
        let file = read_file(&path, &hh()).unwrap();
        assert_eq!(file.errors, []);
        assert_eq!(file.pairs.len(), 2312);
        assert!(file.pairs.iter().all(|p| p.prompt.ends_with(ASSISTANT)));
    }
}
