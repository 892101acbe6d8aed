//! Real models' chat templates rendered here and by transformers'
//! `apply_chat_template` (tests/fixtures/chat/templates.json, made by
//! scripts/make_chat_template_fixture.py): every conversation, with and
//! without the assistant's turn opened, must come out byte for byte the
//! same.

use std::collections::BTreeMap;
use std::path::Path;

use rlhf_tui::data::chat::{ChatFormat, ChatTemplate, Message, Prompt};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    extra: BTreeMap<String, serde_json::Value>,
    templates: BTreeMap<String, Template>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Template {
    chat_template: String,
    bos_token: String,
    eos_token: String,
}

#[derive(Deserialize)]
struct Case {
    template: String,
    messages: Vec<Message>,
    add_generation_prompt: bool,
    text: String,
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat/templates.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn compiled(fixture: &Fixture, name: &str) -> ChatTemplate {
    let t = &fixture.templates[name];
    let mut template = ChatTemplate::new(&t.chat_template, &t.bos_token, &t.eos_token, Path::new(name)).unwrap();
    template.extra = fixture.extra.clone();
    template
}

#[test]
fn every_conversation_renders_as_transformers_renders_it() {
    let fixture = fixture();
    assert!(fixture.templates.len() >= 2 && fixture.cases.len() >= 24);
    for case in &fixture.cases {
        let template = compiled(&fixture, &case.template);
        let got = template.render(&case.messages, case.add_generation_prompt).unwrap();
        assert_eq!(
            got, case.text,
            "{} with add_generation_prompt={} on {:?}",
            case.template, case.add_generation_prompt, case.messages
        );
    }
}

/// A demonstration's answer is what the whole conversation adds to the
/// prompt, up to the end-of-turn token: for each template, the fixture's
/// own renderings of the prompt and of the whole conversation agree with
/// what `response_text` finds.
#[test]
fn an_answer_is_the_whole_conversation_less_its_prompt() {
    let fixture = fixture();
    for (name, t) in &fixture.templates {
        let format = ChatFormat::Template(Box::new(compiled(&fixture, name)));
        for whole in fixture
            .cases
            .iter()
            .filter(|c| &c.template == name && !c.add_generation_prompt)
            .filter(|c| c.messages.last().is_some_and(|m| m.role == "assistant"))
        {
            let (answer, turns) = whole.messages.split_last().unwrap();
            let prompt = fixture
                .cases
                .iter()
                .find(|c| &c.template == name && c.add_generation_prompt && c.messages == turns)
                .map(|c| c.text.clone())
                .unwrap_or_else(|| format.prompt_text(&Prompt::Chat(turns.to_vec())).unwrap());
            let response = format
                .response_text(&Prompt::Chat(turns.to_vec()), &answer.content)
                .unwrap();
            let expected = &whole.text[prompt.len()..];
            assert!(
                expected.starts_with(&response),
                "{name}: {response:?} against {expected:?}"
            );
            assert!(
                expected[response.len()..].starts_with(&t.eos_token) || response.len() == expected.len(),
                "{name}: the answer stops at the end-of-turn token: {expected:?}"
            );
            assert!(response.contains(answer.content.trim()), "{name}: {response:?}");
        }
    }
}
