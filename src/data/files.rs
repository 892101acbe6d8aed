//! Demonstration and prompt files in the formats people already have, one
//! JSON object a line (plain or `.gz`), or for prompts a plain text file
//! with one question a line:
//!
//! - demonstrations: TRL's conversational `{"messages": [...]}` (every
//!   assistant turn is a demonstration, the turns before it its prompt),
//!   `{"prompt", "completion"}` as strings (used verbatim) or as message
//!   lists, and `{"text"}` (all of it trained on);
//! - prompts: `{"prompt": "..."}` (verbatim), `{"prompt": [...]}` or
//!   `{"messages": [...]}` (up to the last user turn, which is left open).
//!
//! A line that cannot be read is skipped and reported with its number and
//! why; a file with nothing usable in it is refused.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::chat::{Message, Prompt};
use crate::prefs::formats::LineError;

/// A prompt and the response to imitate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demonstration {
    pub prompt: Prompt,
    pub response: String,
}

/// What a file held and the lines that were skipped.
#[derive(Debug)]
pub struct Items<T> {
    pub items: Vec<T>,
    pub errors: Vec<LineError>,
}

/// Opens `path`, decompressing a `.gz`.
pub fn open(path: &Path) -> anyhow::Result<Box<dyn Read>> {
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// Each non-blank line of `reader` through `parse`, which may make any
/// number of items of a line.
pub fn read_lines<T>(
    reader: impl Read,
    mut parse: impl FnMut(&str) -> Result<Vec<T>, String>,
) -> std::io::Result<Items<T>> {
    let mut read = Items {
        items: Vec::new(),
        errors: Vec::new(),
    };
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match parse(&line) {
            Ok(items) => read.items.extend(items),
            Err(message) => read.errors.push(LineError { line: i + 1, message }),
        }
    }
    Ok(read)
}

/// Reads `path` line by line; refuses a file that yields nothing, with
/// its first bad lines as the reason.
fn read_file<T>(
    path: &Path,
    what: &str,
    parse: impl FnMut(&str) -> Result<Vec<T>, String>,
) -> anyhow::Result<Items<T>> {
    let read = read_lines(open(path)?, parse).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if read.items.is_empty() {
        let why: Vec<String> = read
            .errors
            .iter()
            .take(3)
            .map(|e| format!("{}:{}: {}", path.display(), e.line, e.message))
            .collect();
        anyhow::bail!(
            "{}: no {what} in it{}",
            path.display(),
            if why.is_empty() {
                String::new()
            } else {
                format!("; {}", why.join("; "))
            }
        );
    }
    Ok(read)
}

/// A demonstration file.
pub fn read_demonstrations(path: &Path) -> anyhow::Result<Items<Demonstration>> {
    read_file(path, "demonstrations", demonstrations_of_line)
}

/// A prompt file: JSON Lines, or a text file (`.txt`, `.txt.gz`) with one
/// question a line, each a one-turn conversation.
pub fn read_prompts(path: &Path) -> anyhow::Result<Items<Prompt>> {
    let name = path.to_string_lossy();
    if name.ends_with(".txt") || name.ends_with(".txt.gz") {
        return read_file(path, "prompts", |line| Ok(vec![Prompt::question(line.trim())]));
    }
    read_file(path, "prompts", |line| prompt_of_line(line).map(|p| vec![p]))
}

/// Other keys (ids, scores, sources) are ignored.
#[derive(Deserialize)]
struct Line {
    messages: Option<Value>,
    prompt: Option<Value>,
    completion: Option<Value>,
    text: Option<String>,
}

fn line(text: &str, expected: &str) -> Result<Line, String> {
    serde_json::from_str(text).map_err(|e| format!("{e}; expected {expected}"))
}

const DEMONSTRATION_FORMATS: &str = "{\"messages\": [...]}, {\"prompt\", \"completion\"} or {\"text\"}";
const PROMPT_FORMATS: &str = "{\"prompt\": \"...\"}, {\"prompt\": [...]} or {\"messages\": [...]}";

/// The demonstrations one line holds.
pub fn demonstrations_of_line(text: &str) -> Result<Vec<Demonstration>, String> {
    let line = line(text, DEMONSTRATION_FORMATS)?;
    match (line.messages, line.prompt, line.completion, line.text) {
        (Some(messages), None, None, None) => assistant_turns(&messages_of(&messages, "messages")?),
        (None, Some(Value::String(prompt)), Some(Value::String(completion)), None) => Ok(vec![Demonstration {
            prompt: Prompt::Text(prompt),
            response: completion,
        }]),
        (None, Some(prompt), Some(completion), None) => {
            let mut turns = messages_of(&prompt, "prompt")?;
            let prompt_len = turns.len();
            turns.extend(messages_of(&completion, "completion")?);
            // The prompt's own assistant turns are context, not demonstrations.
            let mut demos = assistant_turns(&turns)?;
            demos.retain(|d| matches!(&d.prompt, Prompt::Chat(t) if t.len() >= prompt_len));
            match demos.is_empty() {
                true => Err("the completion has no assistant turn".into()),
                false => Ok(demos),
            }
        }
        (None, None, None, Some(text)) if !text.trim().is_empty() => Ok(vec![Demonstration {
            prompt: Prompt::Text(String::new()),
            response: text,
        }]),
        _ => Err(format!("expected one of {DEMONSTRATION_FORMATS}")),
    }
}

/// One demonstration per assistant turn, the turns before it its prompt.
fn assistant_turns(turns: &[Message]) -> Result<Vec<Demonstration>, String> {
    let demos: Vec<Demonstration> = turns
        .iter()
        .enumerate()
        .filter(|(i, m)| m.role == "assistant" && *i > 0)
        .map(|(i, m)| Demonstration {
            prompt: Prompt::Chat(turns[..i].to_vec()),
            response: m.content.clone(),
        })
        .collect();
    match demos.is_empty() {
        true => Err("no assistant turn after a user turn to learn from".into()),
        false => Ok(demos),
    }
}

/// The prompt one line holds.
pub fn prompt_of_line(text: &str) -> Result<Prompt, String> {
    let line = line(text, PROMPT_FORMATS)?;
    let turns = match (line.prompt, line.messages) {
        (Some(Value::String(prompt)), None) if !prompt.trim().is_empty() => return Ok(Prompt::Text(prompt)),
        (Some(turns), None) => messages_of(&turns, "prompt")?,
        (None, Some(turns)) => messages_of(&turns, "messages")?,
        _ => return Err(format!("expected one of {PROMPT_FORMATS}")),
    };
    // Up to the last user turn: what follows it is an answer to leave out.
    let last_user = turns
        .iter()
        .rposition(|m| m.role == "user")
        .ok_or("no user turn to answer")?;
    Ok(Prompt::Chat(turns[..=last_user].to_vec()))
}

/// A list of `{"role", "content"}` turns with string contents.
pub fn messages_of(value: &Value, key: &str) -> Result<Vec<Message>, String> {
    let turns: Vec<Message> = serde_json::from_value(value.clone())
        .map_err(|e| format!("{key}: {e}; expected a list of {{\"role\", \"content\"}} with string values"))?;
    if turns.is_empty() {
        return Err(format!("{key}: an empty list of turns"));
    }
    Ok(turns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demos(text: &str) -> Items<Demonstration> {
        read_lines(text.as_bytes(), demonstrations_of_line).unwrap()
    }

    #[test]
    fn demonstrations_in_each_format_and_bad_lines_with_their_numbers() {
        let text = [
            r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "rain?"}, {"role": "assistant", "content": "Wet."}]}"#,
            r#"{"prompt": "Q: 2+2?\nA:", "completion": " 4", "id": 3}"#,
            r#"{"prompt": [{"role": "user", "content": "cat?"}], "completion": [{"role": "assistant", "content": "A pet."}]}"#,
            r#"{"text": "Once upon a time."}"#,
            "",
            r#"{"messages": [{"role": "user", "content": "only a question"}]}"#,
            r#"{"prompt": "p"}"#,
            r#"{"messages": [{"role": "user", "content": 3}]}"#,
            "not json",
        ]
        .join("\n");
        let read = demos(&text);
        let user = |t: &str| Message::user(t);
        assert_eq!(read.items.len(), 5);
        // Both assistant turns of the conversation, each after its context.
        assert_eq!(
            read.items[0].prompt,
            Prompt::Chat(vec![Message::new("system", "Be brief."), user("hi")])
        );
        assert_eq!(read.items[1].response, "Wet.");
        assert_eq!(read.items[1].prompt, {
            let Prompt::Chat(first) = &read.items[0].prompt else {
                panic!()
            };
            let mut turns = first.clone();
            turns.extend([Message::assistant("Hello."), user("rain?")]);
            Prompt::Chat(turns)
        });
        assert_eq!(read.items[2].prompt, Prompt::Text("Q: 2+2?\nA:".into()));
        assert_eq!(read.items[3].prompt, Prompt::Chat(vec![user("cat?")]));
        assert_eq!(read.items[3].response, "A pet.");
        assert_eq!(read.items[4].prompt, Prompt::Text(String::new()));
        let lines: Vec<usize> = read.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [6, 7, 8, 9]);
        assert!(
            read.errors[0].message.contains("no assistant turn"),
            "{:?}",
            read.errors[0]
        );
        assert!(
            read.errors[1].message.contains("{\"prompt\", \"completion\"}"),
            "{:?}",
            read.errors[1]
        );
        assert!(read.errors[2].message.contains("messages:"), "{:?}", read.errors[2]);
    }

    #[test]
    fn prompts_leave_the_last_user_turn_open() {
        let text = [
            r#"{"prompt": "Q: 2+2?\nA:"}"#,
            r#"{"prompt": [{"role": "user", "content": "cat?"}]}"#,
            r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "rain?"}, {"role": "assistant", "content": "Wet."}]}"#,
            r#"{"messages": [{"role": "assistant", "content": "no question"}]}"#,
            r#"{"prompt": "   "}"#,
        ]
        .join("\n");
        let read = read_lines(text.as_bytes(), |l| prompt_of_line(l).map(|p| vec![p])).unwrap();
        assert_eq!(read.items.len(), 3);
        assert_eq!(read.items[0], Prompt::Text("Q: 2+2?\nA:".into()));
        let Prompt::Chat(turns) = &read.items[2] else { panic!() };
        assert_eq!(turns.last().unwrap(), &Message::user("rain?"));
        assert_eq!(turns.len(), 3);
        let lines: Vec<usize> = read.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5]);
    }

    #[test]
    fn files_plain_gzipped_or_text_and_empty_ones_refused() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("prompts.txt");
        std::fs::write(&txt, "What is a cat?\n\nWhy is the sky blue?\n").unwrap();
        let read = read_prompts(&txt).unwrap();
        assert_eq!(
            read.items,
            [
                Prompt::question("What is a cat?"),
                Prompt::question("Why is the sky blue?")
            ]
        );
        let gz = dir.path().join("demos.jsonl.gz");
        let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), Default::default());
        encoder.write_all(br#"{"text": "hello"}"#).unwrap();
        encoder.finish().unwrap();
        assert_eq!(read_demonstrations(&gz).unwrap().items.len(), 1);
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, "{\"prompt\": 1}\n").unwrap();
        let err = read_demonstrations(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: no demonstrations in it; {}:1:",
                bad.display(),
                bad.display()
            )),
            "{err}"
        );
        let err = read_prompts(&dir.path().join("missing.jsonl")).unwrap_err().to_string();
        assert!(err.contains("missing.jsonl"), "{err}");
    }
}
