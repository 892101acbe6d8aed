//! The real binary in a real terminal: `rlhf-tui` runs inside tmux; the
//! test presses keys as a person would (judge a pair, start SFT, pause,
//! change β, open help, quit with a checkpoint), reads the screen with
//! `capture-pane`, and afterwards reads the run directory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "wb"])
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "wb", key]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Waits until the screen shows `text`; fails with the screen if not.
    fn wait_for(&self, text: &str, seconds: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} on screen after {seconds}s:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

#[test]
fn a_person_judges_pauses_steers_and_quits_in_a_real_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let script = format!(
        "cd {root} && {} --device cpu --runs-dir {} --run tmux --config tests/fixtures/workbench.ron; echo EXIT=$?; sleep 600",
        env!("CARGO_BIN_EXE_rlhf-tui"),
        tmp.path().display()
    );
    let tmux = Tmux {
        socket: format!("rlhf-tui-test-{}", std::process::id()),
    };
    tmux.run(&["new-session", "-d", "-s", "wb", "-x", "120", "-y", "40", &script]);

    // A pair from the base model is there to judge before anything runs.
    tmux.wait_for("pair from base", 60);
    tmux.keys(&["1"]);
    tmux.wait_for("saved: left is better", 30);

    // Enter on the stage selector starts SFT (the cursor starts on it).
    tmux.keys(&["Enter"]);
    tmux.wait_for("▶ RUNNING", 60);
    tmux.wait_for("steps/s", 60);
    tmux.keys(&["Space"]);
    let paused = tmux.wait_for("⏸ PAUSED", 30);
    assert!(paused.contains("SFT ⏸"), "{paused}");

    tmux.keys(&[
        "b", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "0", ".", "1", "Enter",
    ]);
    tmux.wait_for("beta 0.05 → 0.1", 30);
    tmux.wait_for("β 0.1 (fixed)", 5);

    tmux.keys(&["?"]);
    tmux.wait_for("keys (Esc closes)", 10);
    tmux.keys(&["Escape"]);
    tmux.keys(&["Space"]);
    tmux.wait_for("▶ RUNNING", 30);

    // Quit while SFT runs: asked, answered with a checkpoint.
    tmux.keys(&["q"]);
    tmux.wait_for("write a checkpoint and quit", 10);
    tmux.keys(&["y"]);
    let after = tmux.wait_for("EXIT=0", 120);
    // The terminal is back to normal: the alternate screen is gone.
    assert!(!after.contains("stages"), "{after}");
    assert_eq!(tmux.run(&["display", "-p", "-t", "wb", "#{alternate_on}"]).trim(), "0");

    let run = tmp.path().join("tmux");
    let lines = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(run.join(name))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let audit = lines("audit.jsonl");
    let events: Vec<&str> = audit.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["start", "pause", "set", "resume", "stop"], "{audit:?}");
    assert_eq!(
        (audit[2]["param"].as_str(), audit[2]["new"].as_f64()),
        (Some("beta"), Some(0.1))
    );
    let prefs = lines("prefs.jsonl");
    assert_eq!(prefs.len(), 1);
    assert_eq!(prefs[0]["choice"], "left");
    assert_eq!(prefs[0]["policy"], "base");
    let checkpoint = audit[4]["checkpoint"].as_str().unwrap();
    assert!(Path::new(checkpoint).join("model.safetensors").exists());
    let steps = lines("metrics.jsonl")
        .iter()
        .filter(|l| l["stage"] == "sft" && l["loss"].is_number())
        .count();
    assert!(
        checkpoint.ends_with(&format!("sft-{steps}")),
        "{checkpoint} after {steps} steps"
    );
}
