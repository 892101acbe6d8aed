//! Judgments survive `kill -9`: the real binary runs in tmux, a person
//! judges a pair three ways and ranks four responses, each confirmed on
//! screen; the process is killed without warning; every confirmed
//! judgment is in `prefs.jsonl`. A torn last line (a write cut short) is
//! then skipped with a warning when the run is reopened, labeling goes on,
//! and `prefs stats` counts the same.

mod common;

use std::process::Command;

use common::tmux::{Tmux, workbench};

fn human_records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["source"] == "human")
        .collect()
}

#[test]
fn confirmed_judgments_survive_kill_9_and_a_torn_line_is_skipped_on_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    // `exec`: the pane's process is the workbench itself, for the kill.
    let script = workbench("exec", tmp.path(), "--run kill --annotator ann");
    let tmux = Tmux::start("kill", &script);
    tmux.wait_for("pair from base", 60);
    tmux.keys(&["1"]);
    tmux.wait_for("saved: left is better", 30);
    tmux.keys(&["t"]);
    tmux.wait_for("saved: tie", 30);
    tmux.keys(&["2"]);
    tmux.wait_for("saved: right is better", 30);
    tmux.keys(&["R"]);
    tmux.wait_for("rank 4 from base", 60);
    tmux.keys(&["4", "3", "2"]);
    tmux.wait_for("saved: 4 > 3 > 2 > 1", 30);

    let pid = tmux.run(&["display", "-p", "-t", "wb", "#{pane_pid}"]);
    let killed = Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    assert!(killed.success());

    let prefs = tmp.path().join("kill/prefs.jsonl");
    let records = human_records(&prefs);
    let verdicts: Vec<String> = records
        .iter()
        .map(|r| match r.get("ranking") {
            Some(order) => order.to_string(),
            None => r["choice"].as_str().unwrap().to_string(),
        })
        .collect();
    assert_eq!(verdicts, ["left", "tie", "right", "[3,2,1,0]"]);

    // A write cut short: half a record, no newline.
    let whole = std::fs::read_to_string(&prefs).unwrap();
    let last = whole.lines().last().unwrap();
    std::fs::write(&prefs, format!("{whole}{}", &last[..last.len() / 2])).unwrap();
    let torn_line = whole.lines().count() + 1;

    drop(tmux);
    let tmux = Tmux::start("reopen", &script);
    let screen = tmux.wait_for("skipped a torn line", 60);
    assert!(screen.contains(&format!("prefs.jsonl:{torn_line}")), "{screen}");
    // The count goes on from the judgments already stored.
    tmux.wait_for("judged 4", 30);
    tmux.wait_for("pair from base", 60);
    tmux.keys(&["x"]);
    tmux.wait_for("saved: both bad", 30);
    tmux.wait_for("judged 5", 10);
    tmux.keys(&["q"]);
    drop(tmux);

    assert_eq!(human_records(&prefs).len(), 5);
    let stats = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .args(["prefs", "stats", "--run", "kill", "--runs-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(stats.status.success());
    let (out, err) = (
        String::from_utf8_lossy(&stats.stdout),
        String::from_utf8_lossy(&stats.stderr),
    );
    assert!(out.contains("lines skipped: 1"), "{out}");
    assert!(
        out.contains("\nhuman: both bad 1, left 1, rankings 1, right 1, tie 1\n"),
        "{out}"
    );
    // Five judgments seconds apart: four timed gaps.
    assert!(out.contains("labeling, ann: 5 judgments, median "), "{out}");
    assert!(out.contains(" an hour\n"), "{out}");
    // The reopened store ended the torn line, so it is no longer the last.
    assert!(
        err.contains(&format!("prefs.jsonl:{torn_line}: skipped an unreadable line")),
        "{err}"
    );
}
