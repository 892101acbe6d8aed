//! Preference files in the formats other tools write, one JSON object a
//! line (plain or gzip-compressed): TRL's `{"prompt", "chosen",
//! "rejected"}`, where the prompt is given and each side is a response, and
//! HH-RLHF's `{"chosen", "rejected"}`, where each side is a whole dialogue
//! and the prompt is the shared prefix up to the last `\n\nAssistant:`.
//! A malformed line is reported with its number; the other lines are kept.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;

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
    prompt: Option<String>,
    chosen: String,
    rejected: String,
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

/// Parses one line in either format.
pub fn parse_line(text: &str) -> Result<PreferencePair, String> {
    let line: Line = serde_json::from_str(text).map_err(|e| {
        format!("{e}; expected {{\"prompt\", \"chosen\", \"rejected\"}} (TRL) or {{\"chosen\", \"rejected\"}} (HH-RLHF) with string values")
    })?;
    let pair = match line.prompt {
        Some(prompt) => PreferencePair {
            prompt,
            chosen: line.chosen,
            rejected: line.rejected,
        },
        None => split_dialogues(&line.chosen, &line.rejected)?,
    };
    if pair.chosen == pair.rejected {
        return Err("chosen and rejected are the same text".into());
    }
    Ok(pair)
}

/// Reads every line of `reader`; blank lines are ignored.
pub fn read_pairs(reader: impl Read) -> std::io::Result<PreferenceFile> {
    let mut file = PreferenceFile::default();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line) {
            Ok(pair) => file.pairs.push(pair),
            Err(message) => file.errors.push(LineError { line: i + 1, message }),
        }
    }
    Ok(file)
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
pub fn read_file(path: &Path) -> anyhow::Result<PreferenceFile> {
    let open = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    let read = if gz {
        read_pairs(flate2::read::GzDecoder::new(open))
    } else {
        read_pairs(open)
    };
    read.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let file = read_pairs(text.as_bytes()).unwrap();
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
        let file = read_file(&path).unwrap();
        assert_eq!(file.errors, []);
        assert_eq!(file.pairs.len(), 2312);
        assert!(file.pairs.iter().all(|p| p.prompt.ends_with(ASSISTANT)));
    }
}
