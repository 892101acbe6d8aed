//! What a model directory says about how its model takes turns: the chat
//! template and the end-of-turn and padding tokens, from the files
//! transformers reads them from (`chat_template.jinja`,
//! `tokenizer_config.json`, `generation_config.json`, `config.json`),
//! which travel with the tokenizer.

use std::path::Path;

use serde_json::Value;

use super::chat::{ChatFormat, ChatTemplate};
use crate::model::Tokenizer;

/// A model's chat format and the ids that end a response and pad a batch.
#[derive(Clone, Debug)]
pub struct Turns {
    pub format: ChatFormat,
    pub eos_id: u32,
    pub pad_id: u32,
}

/// The ids `config.json` names, the last place looked.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigIds {
    pub eos: Option<u32>,
    pub pad: Option<u32>,
}

/// The turns of the model in `dir` (named in errors), whose tokenizer
/// carries its companion files. The end-of-turn token is
/// `tokenizer_config.json`'s `eos_token`, else `generation_config.json`'s
/// `eos_token_id` (the first of a list), else `config.json`'s; padding is
/// `pad_token`, else `pad_token_id` in those files, else the end-of-turn
/// token. Without a chat template, the HH dialogue.
pub fn turns(dir: &Path, tokenizer: &Tokenizer, config: ConfigIds) -> Result<Turns, String> {
    let json = |name: &str| -> Result<Option<Value>, String> {
        tokenizer
            .companion(name)
            .map(|text| serde_json::from_str(text).map_err(|e| format!("{}: {e}", dir.join(name).display())))
            .transpose()
    };
    let tokenizer_config = json("tokenizer_config.json")?.unwrap_or(Value::Null);
    let generation = json("generation_config.json")?.unwrap_or(Value::Null);
    let named = |key: &str| token_text(&tokenizer_config[key]);
    let id_of = |text: &str, key: &str| {
        tokenizer.token_id(text).ok_or_else(|| {
            format!(
                "{}: {key} is {text:?}, which tokenizer.json does not have",
                dir.join("tokenizer_config.json").display()
            )
        })
    };
    let eos_id = match named("eos_token") {
        Some(text) => id_of(&text, "eos_token")?,
        None => first_id(&generation["eos_token_id"]).or(config.eos).ok_or_else(|| {
            format!(
                "{}: no end-of-sequence token: set eos_token in tokenizer_config.json or eos_token_id in config.json",
                dir.display()
            )
        })?,
    };
    let eos = tokenizer.id_token(eos_id).ok_or_else(|| {
        format!(
            "{}: the end-of-sequence id {eos_id} is not in tokenizer.json",
            dir.display()
        )
    })?;
    let pad_id = match named("pad_token") {
        Some(text) => id_of(&text, "pad_token")?,
        None => first_id(&generation["pad_token_id"]).or(config.pad).unwrap_or(eos_id),
    };
    let template = match tokenizer.companion("chat_template.jinja") {
        Some(text) => Some((text.to_string(), dir.join("chat_template.jinja"))),
        None => {
            default_template(&tokenizer_config["chat_template"]).map(|text| (text, dir.join("tokenizer_config.json")))
        }
    };
    let format = match template {
        Some((source, origin)) => {
            let bos = named("bos_token").unwrap_or_default();
            ChatFormat::Template(Box::new(ChatTemplate::new(&source, &bos, &eos, &origin)?))
        }
        None => ChatFormat::dialogue(&eos),
    };
    Ok(Turns { format, eos_id, pad_id })
}

/// A special token as `tokenizer_config.json` writes it: a string, or an
/// added token's `{"content": …}`.
fn token_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(map) => map.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// An id, or the first of a list of them.
pub fn first_id(value: &Value) -> Option<u32> {
    match value {
        Value::Array(ids) => ids.first().and_then(first_id),
        other => other.as_u64().and_then(|id| u32::try_from(id).ok()),
    }
}

/// The template transformers uses: the string, or of a list of named
/// templates the one named `default`.
fn default_template(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(named) => named
            .iter()
            .find(|t| t["name"] == "default")
            .and_then(|t| t["template"].as_str())
            .map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::chat::Prompt;

    fn fixture_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2")
    }

    /// A copy of the fixture's tokenizer with `files` as its companions.
    fn with_companions(files: &[(&str, &str)]) -> (tempfile::TempDir, Tokenizer) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixture_dir().join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut tokenizer = Tokenizer::from_file(&dir.path().join("tokenizer.json")).unwrap();
        tokenizer.read_companions(dir.path()).unwrap();
        (dir, tokenizer)
    }

    #[test]
    fn tokens_come_from_the_files_transformers_reads() {
        // Only config.json's ids: the dialogue, ending with that token.
        let (dir, tokenizer) = with_companions(&[]);
        let ids = ConfigIds {
            eos: Some(0),
            pad: None,
        };
        let turns = turns(dir.path(), &tokenizer, ids).unwrap();
        assert_eq!((turns.eos_id, turns.pad_id), (0, 0));
        assert_eq!(turns.format.eos(), "<|endoftext|>");
        assert_eq!(
            turns.format.prompt_text(&Prompt::question("hi")).unwrap(),
            "\n\nHuman: hi\n\nAssistant:"
        );
        // generation_config.json's list, first id.
        let (dir, tokenizer) = with_companions(&[("generation_config.json", r#"{"eos_token_id": [5, 0]}"#)]);
        assert_eq!(turns_of(&dir, &tokenizer).eos_id, 5);
        // tokenizer_config.json's eos_token (an added token's content) wins,
        // and its template is used.
        let config = r#"{"eos_token": {"content": "<|endoftext|>"}, "pad_token": "!",
            "chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "{{ messages[0].content }}|"}]}"#;
        let (dir, tokenizer) = with_companions(&[
            ("tokenizer_config.json", config),
            ("generation_config.json", r#"{"eos_token_id": 5}"#),
        ]);
        let turns = turns_of(&dir, &tokenizer);
        assert_eq!(turns.eos_id, 0);
        assert_eq!(turns.pad_id, tokenizer.token_id("!").unwrap());
        assert_eq!(turns.format.prompt_text(&Prompt::question("hi")).unwrap(), "hi|");
        // chat_template.jinja, as newer transformers saves it, wins over
        // the config's.
        let (dir, tokenizer) = with_companions(&[
            ("tokenizer_config.json", config),
            ("chat_template.jinja", "{{ messages[0].content }}!"),
        ]);
        assert_eq!(
            turns_of(&dir, &tokenizer)
                .format
                .prompt_text(&Prompt::question("hi"))
                .unwrap(),
            "hi!"
        );
    }

    fn turns_of(dir: &tempfile::TempDir, tokenizer: &Tokenizer) -> Turns {
        turns(dir.path(), tokenizer, ConfigIds::default()).unwrap()
    }

    #[test]
    fn missing_tokens_are_refused_with_the_file_and_the_fix() {
        let (dir, tokenizer) = with_companions(&[]);
        let err = turns(dir.path(), &tokenizer, ConfigIds::default()).unwrap_err();
        assert!(err.contains("eos_token in tokenizer_config.json"), "{err}");
        let (dir, tokenizer) = with_companions(&[("tokenizer_config.json", r#"{"eos_token": "<|im_end|>"}"#)]);
        let err = turns(dir.path(), &tokenizer, ConfigIds::default()).unwrap_err();
        assert!(
            err.contains("tokenizer_config.json: eos_token is \"<|im_end|>\""),
            "{err}"
        );
        let (dir, tokenizer) = with_companions(&[("tokenizer_config.json", "{not json")]);
        let err = turns(dir.path(), &tokenizer, ConfigIds::default()).unwrap_err();
        assert!(err.contains("tokenizer_config.json: "), "{err}");
    }
}
