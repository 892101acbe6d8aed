//! Every parser of outside input meets random bytes and never panics: it
//! either reads them or says what is wrong. Each parser gets `CASES`
//! arbitrary byte strings and `CASES` strings drawn from the characters
//! its format uses, so the cases reach past the first token.

use proptest::prelude::*;
use rlhf_tui::data::chat::ChatFormat;
use rlhf_tui::model::hf::safetensors_io;
use rlhf_tui::model::{Gpt2Config, Tokenizer};
use rlhf_tui::prefs::{formats, store};
use rlhf_tui::run::dir::check_format;
use rlhf_tui::run::{Rounds, RunConfig, RunDir};

const CASES: u32 = 1000;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..600)
}

/// Text made of a format's own characters and words.
fn shaped(alphabet: &'static str) -> impl Strategy<Value = String> {
    proptest::string::string_regex(alphabet).expect("a valid pattern")
}

const JSONISH: &str = r#"([{}\[\],:" ]|"prompt"|"chosen"|"rejected"|"ranking"|"choice"|"retract"|"pair"|"format"|"round"|[0-9.e-]|true|null|\\n|\n){0,60}"#;
const RONISH: &str = r#"([(),: ]|sft|rm|ppo|prefs|monitors|lr|beta|steps|Some|None|K1|"[a-z/]*"|[0-9.e-]|\n){0,60}"#;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn ron_configs(raw in bytes(), shaped in shaped(RONISH)) {
        let _ = RunConfig::parse(&text(&raw));
        if let Err(e) = RunConfig::parse(&shaped) {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn preference_files(raw in bytes(), shaped in shaped(JSONISH)) {
        let _ = formats::read_pairs(raw.as_slice(), &ChatFormat::dialogue("<|endoftext|>"));
        let file = formats::read_pairs(shaped.as_bytes(), &ChatFormat::dialogue("<|endoftext|>")).unwrap();
        prop_assert!(file.errors.iter().all(|e| e.line >= 1));
    }

    #[test]
    fn the_judgment_store(raw in bytes(), shaped in shaped(JSONISH)) {
        let _ = store::parse(&text(&raw), "prefs.jsonl");
        let _ = store::parse(&shaped, "prefs.jsonl");
    }

    #[test]
    fn run_stamps_and_rounds(raw in bytes(), shaped in shaped(JSONISH)) {
        let _ = check_format(&text(&raw));
        let _ = check_format(&shaped);
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path(), "r").unwrap();
        std::fs::write(run.root.join("rounds.json"), &raw).unwrap();
        let _ = Rounds::load(&run);
        std::fs::write(run.root.join("rounds.json"), &shaped).unwrap();
        let _ = Rounds::load(&run);
    }

    #[test]
    fn model_configs(raw in bytes(), shaped in shaped(JSONISH)) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.json");
        std::fs::write(&path, &raw).unwrap();
        let _ = Gpt2Config::from_file(&path);
        std::fs::write(&path, &shaped).unwrap();
        let _ = Gpt2Config::from_file(&path);
    }

    #[test]
    fn safetensors_files(raw in bytes(), header in shaped(JSONISH)) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("model.safetensors");
        std::fs::write(&path, &raw).unwrap();
        let _ = safetensors_io::read(&path);
        // A well-formed length prefix, so the header's JSON is what is read.
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(header.as_bytes());
        file.extend_from_slice(&raw);
        std::fs::write(&path, &file).unwrap();
        let _ = safetensors_io::read(&path);
    }

    #[test]
    fn tokenizer_files(raw in bytes(), shaped in shaped(JSONISH)) {
        let _ = Tokenizer::from_json(&text(&raw));
        let _ = Tokenizer::from_json(&shaped);
    }
}
