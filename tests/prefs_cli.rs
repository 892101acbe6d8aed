//! `rlhf-tui prefs import|export|stats` as a user runs them: every pair of
//! the shipped HH-RLHF split imports, exports as HH-RLHF and as TRL, and
//! reads back as the same pairs; a malformed line is reported with its
//! number and the rest kept; stats give κ and α for a hand-worked case.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::fixture;
use rlhf_tui::prefs::formats::read_file;

fn prefs(args: &[&str], runs: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .arg("prefs")
        .args(args)
        .arg("--runs-dir")
        .arg(runs)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn hh_rlhf_imports_whole_and_round_trips_through_both_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let hh = fixture("hh-rlhf-harmless/test.jsonl.gz");
    let out = prefs(&["import", hh.to_str().unwrap(), "--run", "hh"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("imported 2312 pairs"),
        "{}",
        text(&out.stdout)
    );

    let as_hh = tmp.path().join("hh.jsonl");
    let out = prefs(
        &["export", "--run", "hh", "--format", "hh", "-o", as_hh.to_str().unwrap()],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let original = read_file(&hh, &hh_format()).unwrap();
    let exported = read_file(&as_hh, &hh_format()).unwrap();
    assert_eq!(exported.errors, []);
    assert_eq!(
        exported.pairs, original.pairs,
        "HH-RLHF out and back gives the same pairs"
    );

    // TRL: export, import into a second run, export again: the same bytes.
    let as_trl = tmp.path().join("trl.jsonl");
    let again = tmp.path().join("trl-again.jsonl");
    let out = prefs(&["export", "--run", "hh", "-o", as_trl.to_str().unwrap()], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(read_file(&as_trl, &hh_format()).unwrap().pairs, original.pairs);
    assert!(
        prefs(&["import", as_trl.to_str().unwrap(), "--run", "trl"], tmp.path())
            .status
            .success()
    );
    assert!(
        prefs(&["export", "--run", "trl", "-o", again.to_str().unwrap()], tmp.path())
            .status
            .success()
    );
    assert_eq!(std::fs::read(&as_trl).unwrap(), std::fs::read(&again).unwrap());

    let out = prefs(&["stats", "--run", "hh"], tmp.path());
    assert!(text(&out.stdout).contains("import: left 2312"), "{}", text(&out.stdout));
}

#[test]
fn a_malformed_line_is_reported_by_number_and_the_rest_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("mixed.jsonl");
    let lines = [
        r#"{"prompt": "Q: 2+2?", "chosen": " 4", "rejected": " 5"}"#,
        r#"{"prompt": "Q: 3+3?", "chosen": " 6""#,
        r#"{"prompt": "Q: 1+1?", "chosen": " 2", "rejected": " 3"}"#,
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = prefs(&["import", file.to_str().unwrap(), "--run", "mixed"], tmp.path());
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("mixed.jsonl:2: skipped"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with("imported 2 pairs"),
        "{}",
        text(&out.stdout)
    );

    // The world's prompts are not dialogues: HH-RLHF export refuses, writing nothing.
    let target = tmp.path().join("out.jsonl");
    let out = prefs(
        &[
            "export",
            "--run",
            "mixed",
            "--format",
            "hh",
            "-o",
            target.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--format trl"), "{}", text(&out.stderr));
    assert!(!target.exists());

    let out = prefs(&["stats", "--run", "missing"], tmp.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no such run"), "{}", text(&out.stderr));
}

#[test]
fn stats_give_kappa_and_alpha_per_criterion() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("agree");
    std::fs::create_dir_all(&run).unwrap();
    // The hand-worked case: ann and the judge agree on sets 1 and 3 and
    // differ on 2: κ = 0.4, α = 4/9. A retracted judgment does not count.
    let record = |pair: u64, who: &str, choice: &str| {
        let source = if who == "judge" { "judge" } else { "human" };
        format!(
            r#"{{"pair": {pair}, "time": 1.0, "prompt": "P", "responses": [" a", " b"], "choice": "{choice}", "criteria": ["helpful"], "annotator": "{who}", "source": "{source}", "policy": "base"}}"#
        )
    };
    let lines = [
        record(1, "ann", "left"),
        record(1, "judge", "left"),
        record(2, "ann", "right"),
        r#"{"retract": 2, "annotator": "ann", "time": 2.0}"#.to_string(),
        record(2, "ann", "left"),
        record(2, "judge", "right"),
        record(3, "ann", "right"),
        record(3, "judge", "right"),
    ];
    std::fs::write(run.join("prefs.jsonl"), lines.join("\n") + "\n").unwrap();
    let out = prefs(&["stats", "--run", "agree"], tmp.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("6 judgments, 1 retracted"), "{stdout}");
    assert!(
        stdout.contains("agreement, helpful: 3 shared units, Krippendorff's α 0.444"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Cohen's κ ann vs judge: 0.400 over 3 units"),
        "{stdout}"
    );
}

/// The HH dialogue, as `prefs import` lays out conversational lines.
fn hh_format() -> rlhf_tui::data::chat::ChatFormat {
    rlhf_tui::data::chat::ChatFormat::dialogue("<|endoftext|>")
}

/// TRL's conversational pairs are stored as the run's base model reads
/// them: here its ChatML template.
#[test]
fn conversational_pairs_import_in_the_run_s_chat_format() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("own");
    std::fs::create_dir_all(&run).unwrap();
    let model = fixture("user/model");
    std::fs::write(run.join("config.ron"), format!("(sft: (init: {model:?}))")).unwrap();
    let file = tmp.path().join("pairs.jsonl");
    let line = r#"{"prompt": [{"role": "user", "content": "What color is the frog?"}], "chosen": [{"role": "assistant", "content": "The frog is green."}], "rejected": [{"role": "assistant", "content": "I am not sure."}]}"#;
    std::fs::write(&file, line).unwrap();
    let out = prefs(&["import", file.to_str().unwrap(), "--run", "own"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stored = std::fs::read_to_string(run.join("prefs.jsonl")).unwrap();
    let judgment: serde_json::Value = serde_json::from_str(stored.lines().next().unwrap()).unwrap();
    assert_eq!(
        judgment["prompt"],
        "<|im_start|>user\nWhat color is the frog?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(judgment["chosen"], "The frog is green.");
}
