//! Chat formatting as the ecosystem does it: a model directory's chat
//! template (`chat_template.jinja`, or `chat_template` in
//! `tokenizer_config.json`), rendered by a Jinja engine set up the way
//! transformers' `apply_chat_template` sets up its own (blocks trimmed and
//! left-stripped, loop controls, `raise_exception`, `strftime_now`, a
//! Python-style `tojson`, Python's string methods). A model without a
//! template gets the HH-RLHF dialogue (`\n\nHuman: …\n\nAssistant:`), the
//! format of the built-in world and of Anthropic's preference data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::value::Serde;
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::{Deserialize, Serialize};

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn user(content: &str) -> Self {
        Self::new("user", content)
    }

    pub fn assistant(content: &str) -> Self {
        Self::new("assistant", content)
    }
}

/// What a model is asked: text laid out already (TRL's standard format,
/// used verbatim), or a conversation whose last turn is the user's, laid
/// out by the model's chat format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prompt {
    Text(String),
    Chat(Vec<Message>),
}

impl Prompt {
    /// A one-turn conversation.
    pub fn question(text: &str) -> Self {
        Self::Chat(vec![Message::user(text)])
    }

    /// The prompt as a person reads it: the text, or the turns with their
    /// roles (the last user turn alone when it is the only one).
    pub fn readable(&self) -> String {
        match self {
            Prompt::Text(text) => text.trim().to_string(),
            Prompt::Chat(turns) if turns.len() == 1 => turns[0].content.trim().to_string(),
            Prompt::Chat(turns) => turns
                .iter()
                .map(|m| format!("{}: {}", m.role, m.content.trim()))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The last user turn's text (the whole text of a laid-out prompt).
    pub fn last_user_turn(&self) -> &str {
        match self {
            Prompt::Text(text) => text,
            Prompt::Chat(turns) => turns
                .iter()
                .rev()
                .find(|m| m.role == "user")
                .map_or("", |m| m.content.as_str()),
        }
    }
}

const HUMAN: &str = "\n\nHuman:";
const ASSISTANT: &str = "\n\nAssistant:";

/// How a model reads a conversation.
#[derive(Clone, Debug)]
pub enum ChatFormat {
    /// `\n\nHuman: …\n\nAssistant: …`; a system turn comes first as plain text.
    Dialogue {
        eos: String,
    },
    Template(Box<ChatTemplate>),
}

impl ChatFormat {
    /// The HH dialogue ending responses with `eos`.
    pub fn dialogue(eos: &str) -> Self {
        Self::Dialogue { eos: eos.into() }
    }

    /// The text the model continues: a laid-out prompt as it is, a
    /// conversation with the assistant's turn opened.
    pub fn prompt_text(&self, prompt: &Prompt) -> Result<String, String> {
        match (self, prompt) {
            (_, Prompt::Text(text)) => Ok(text.clone()),
            (ChatFormat::Dialogue { .. }, Prompt::Chat(turns)) => Ok(format!("{}{ASSISTANT}", dialogue(turns))),
            (ChatFormat::Template(template), Prompt::Chat(turns)) => template.render(turns, true),
        }
    }

    /// A response as it follows its prompt's text, up to (not including)
    /// the end-of-turn token, which the trainers add as a token: the
    /// template's assistant turn cut at the end-of-turn text.
    pub fn response_text(&self, prompt: &Prompt, response: &str) -> Result<String, String> {
        match (self, prompt) {
            (_, Prompt::Text(_)) => Ok(response.to_string()),
            (ChatFormat::Dialogue { .. }, Prompt::Chat(_)) => Ok(format!(" {response}")),
            (ChatFormat::Template(template), Prompt::Chat(turns)) => template.response_text(turns, response),
        }
    }

    /// The token that ends a response.
    pub fn eos(&self) -> &str {
        match self {
            ChatFormat::Dialogue { eos } => eos,
            ChatFormat::Template(template) => &template.eos,
        }
    }

    /// The answer in a decoded continuation: up to the end of the turn (or,
    /// in the dialogue, where the model starts a new turn), trimmed.
    pub fn answer<'a>(&self, continuation: &'a str) -> &'a str {
        let cut = |text: &'a str, at: &str| text.split(at).next().unwrap_or("");
        let answer = cut(continuation, self.eos());
        match self {
            ChatFormat::Dialogue { .. } => cut(answer, HUMAN).trim(),
            ChatFormat::Template(_) => answer.trim(),
        }
    }
}

/// The turns as the HH dialogue, without the opened assistant turn.
fn dialogue(turns: &[Message]) -> String {
    turns
        .iter()
        .map(|m| match m.role.as_str() {
            "user" => format!("{HUMAN} {}", m.content),
            "assistant" => format!("{ASSISTANT} {}", m.content),
            _ => m.content.clone(),
        })
        .collect()
}

/// A compiled chat template with the special tokens it is rendered with.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    pub bos: String,
    pub eos: String,
    /// The file it was read from, for errors.
    pub origin: PathBuf,
    /// Variables beyond the conversation (tests fix `date_string`).
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChatTemplate({}, eos {})", self.origin.display(), self.eos)
    }
}

const NAME: &str = "chat_template";

impl ChatTemplate {
    /// Compiles `source`; an error names `origin` and the template's line.
    pub fn new(source: &str, bos: &str, eos: &str, origin: &Path) -> Result<Self, String> {
        let mut env = Environment::new();
        // As transformers renders chat templates.
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters"),
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_string()).map_err(|e| {
            format!(
                "{}: the chat template does not compile: {}",
                origin.display(),
                detail(&e)
            )
        })?;
        Ok(Self {
            env,
            bos: bos.into(),
            eos: eos.into(),
            origin: origin.to_path_buf(),
            extra: BTreeMap::new(),
        })
    }

    /// The conversation rendered, with the assistant's turn opened when
    /// `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, String> {
        let mut context: BTreeMap<String, Value> = self
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(Serde(v))))
            .collect();
        context.insert("messages".into(), Value::from(Serde(messages)));
        context.insert("add_generation_prompt".into(), Value::from(add_generation_prompt));
        context.insert("bos_token".into(), Value::from(self.bos.as_str()));
        context.insert("eos_token".into(), Value::from(self.eos.as_str()));
        let template = self.env.get_template(NAME).expect("added in new");
        template
            .render(context)
            .map_err(|e| format!("{}: the chat template failed: {}", self.origin.display(), detail(&e)))
    }

    /// The assistant's turn that answers `prompt` with `response`: what the
    /// whole conversation adds to the prompt with the turn opened, up to
    /// the end-of-turn token. A template that does not render the prompt
    /// as the start of the whole conversation cannot be trained on this
    /// way, and is refused.
    fn response_text(&self, prompt: &[Message], response: &str) -> Result<String, String> {
        let opened = self.render(prompt, true)?;
        let mut whole_turns = prompt.to_vec();
        whole_turns.push(Message::assistant(response));
        let whole = self.render(&whole_turns, false)?;
        let Some(turn) = whole.strip_prefix(&opened) else {
            return Err(format!(
                "{}: the chat template renders a conversation with the assistant's answer differently from the same conversation with the answer still to come, so the answer's tokens cannot be found; a template whose prompt is a prefix of the whole conversation is needed",
                self.origin.display()
            ));
        };
        Ok(match turn.find(&self.eos) {
            Some(end) => turn[..end].to_string(),
            None => turn.to_string(),
        })
    }
}

/// An error with its cause and where in the template it is.
fn detail(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Today's date in a `strftime` format, as transformers provides it:
/// `%d`, `%m`, `%Y`, `%y`, `%b`, `%B` and `%%` (what chat templates use).
fn strftime_now(format: String) -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    let (year, month, day) = civil_from_days(days);
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let name = MONTHS[month as usize - 1];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('b') => out.push_str(&name[..3]),
            Some('B') => out.push_str(name),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// (year, month, day) of a day count since 1970-01-01 in the proleptic
/// Gregorian calendar (the era arithmetic of Hinnant's date algorithms).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// transformers' `tojson`: Python's `json.dumps` (keys in their order, no
/// HTML escaping, `", "` and `": "` between items, or one item a line
/// under `indent`).
fn tojson(value: Value, kwargs: minijinja::value::Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    python_json(&value, indent, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn python_json(value: &Value, indent: Option<usize>, depth: usize, out: &mut String) -> Result<(), Error> {
    use minijinja::value::ValueKind;
    let newline = |out: &mut String, depth: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * depth));
        }
    };
    let separator = if indent.is_some() { "," } else { ", " };
    let quoted = |text: &str| serde_json::to_string(text).expect("a string serialises");
    match value.kind() {
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            let map = value.kind() == ValueKind::Map;
            let items: Vec<Value> = value.try_iter()?.collect();
            let (open, close) = if map { ('{', '}') } else { ('[', ']') };
            out.push(open);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1);
                if map {
                    out.push_str(&quoted(&item.to_string()));
                    out.push_str(": ");
                    python_json(&value.get_item(item)?, indent, depth + 1, out)?;
                } else {
                    python_json(item, indent, depth + 1, out)?;
                }
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(close);
        }
        ValueKind::String => out.push_str(&quoted(value.as_str().unwrap_or_default())),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::None | ValueKind::Undefined => out.push_str("null"),
        _ => out.push_str(&value.to_string()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialogue_lays_out_turns_as_hh_rlhf_does() {
        let format = ChatFormat::dialogue("<|endoftext|>");
        let prompt = Prompt::Chat(vec![
            Message::user("hi"),
            Message::assistant("Hello."),
            Message::user("Tell me about rain."),
        ]);
        assert_eq!(
            format.prompt_text(&prompt).unwrap(),
            "\n\nHuman: hi\n\nAssistant: Hello.\n\nHuman: Tell me about rain.\n\nAssistant:"
        );
        assert_eq!(format.response_text(&prompt, "It falls.").unwrap(), " It falls.");
        assert_eq!(format.answer(" It falls.\n\nHuman: more"), "It falls.");
        assert_eq!(format.answer(" It falls.<|endoftext|>junk"), "It falls.");
        // Laid-out text is the model's input as it is.
        let text = Prompt::Text("Q: 2+2?\nA:".into());
        assert_eq!(format.prompt_text(&text).unwrap(), "Q: 2+2?\nA:");
        assert_eq!(format.response_text(&text, " 4").unwrap(), " 4");
    }

    #[test]
    fn a_template_answer_is_its_turn_up_to_the_end_of_turn_token() {
        let source = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let template = ChatTemplate::new(source, "", "<|im_end|>", Path::new("t.jinja")).unwrap();
        let format = ChatFormat::Template(Box::new(template));
        let prompt = Prompt::question("What is a cat?");
        assert_eq!(
            format.prompt_text(&prompt).unwrap(),
            "<|im_start|>user\nWhat is a cat?<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(format.response_text(&prompt, "A pet.").unwrap(), "A pet.");
        assert_eq!(format.answer(" A pet. <|im_end|>\n"), "A pet.");
    }

    #[test]
    fn template_errors_name_the_file_and_what_is_wrong() {
        let err =
            ChatTemplate::new("{% for m in messages %}", "", "", Path::new("m/tokenizer_config.json")).unwrap_err();
        assert!(
            err.starts_with("m/tokenizer_config.json: the chat template does not compile"),
            "{err}"
        );
        let raising = "{{ raise_exception('Conversation roles must alternate') }}";
        let template = ChatTemplate::new(raising, "", "", Path::new("t.jinja")).unwrap();
        let err = template.render(&[Message::user("x")], true).unwrap_err();
        assert!(err.contains("Conversation roles must alternate"), "{err}");
        // A template that drops the answer's turn cannot show where it is.
        let forgetful = "{% if add_generation_prompt %}open{% else %}closed{% endif %}";
        let format = ChatFormat::Template(Box::new(
            ChatTemplate::new(forgetful, "", "", Path::new("t.jinja")).unwrap(),
        ));
        let err = format.response_text(&Prompt::question("q"), "a").unwrap_err();
        assert!(err.contains("prefix"), "{err}");
    }

    #[test]
    fn dates_and_json_as_python_writes_them() {
        // 2024-07-26 is day 19,930 since 1970-01-01; 2000-02-29 is 11,016.
        assert_eq!(civil_from_days(19_930), (2024, 7, 26));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        let today = strftime_now("%d %b %Y".into());
        assert_eq!(today.split(' ').count(), 3, "{today}");
        let empty: Vec<(&str, Value)> = Vec::new();
        let value = Value::from_pairs([
            ("name", Value::from("f")),
            ("args", Value::from(vec![Value::from(1), Value::from("<b>")])),
            ("empty", Value::from_pairs(empty)),
        ]);
        let mut compact = String::new();
        python_json(&value, None, 0, &mut compact).unwrap();
        assert_eq!(compact, r#"{"name": "f", "args": [1, "<b>"], "empty": {}}"#);
        let mut indented = String::new();
        python_json(&value, Some(2), 0, &mut indented).unwrap();
        assert_eq!(
            indented,
            "{\n  \"name\": \"f\",\n  \"args\": [\n    1,\n    \"<b>\"\n  ],\n  \"empty\": {}\n}"
        );
    }
}
