//! The TRL bridge (`python/rlhf_tui_bridge`) end to end: a real TRL
//! trainer under `accelerate launch` with two processes on the CPU, served
//! by the bridge's callback, watched and steered from the real workbench in
//! tmux: GRPO (metrics and sample pairs arrive; pause on both ranks at one
//! step; learning rate and β changed, checked on each rank and in TRL's own
//! log from the next step; a pair labelled into `prefs.jsonl`; the
//! sampling temperature changed on each rank; resume; stop with a
//! checkpoint), then DPO (its controls greyed where it takes none;
//! pause, learning rate and β, stop).
//!
//! It needs a Python with torch, transformers, trl and accelerate, named by
//! `RLHF_TUI_TRL_PYTHON` (`.ci/run` makes one from PyPI); without it the
//! test prints why it did nothing.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use serde_json::Value;

/// The launched trainer: its processes (killed with their group on drop)
/// and its output's lines.
struct Launched {
    child: Child,
    lines: crossbeam_channel::Receiver<String>,
    seen: Vec<String>,
    reaped: bool,
}

impl Launched {
    fn start(python: &Path, trainer: &str, runs: &Path, run: &str) -> Self {
        let accelerate = python.parent().unwrap().join("accelerate");
        let mut child = Command::new(accelerate)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"])
            .args([
                "--mixed_precision",
                "no",
                "--dynamo_backend",
                "no",
                "tests/trl/run_trl.py",
            ])
            .args([trainer, "--run", run, "--steps", "5000", "--runs-dir"])
            .arg(runs)
            .envs([
                ("HF_HUB_OFFLINE", "1"),
                ("HF_DATASETS_OFFLINE", "1"),
                ("OMP_NUM_THREADS", "1"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("accelerate runs");
        let (tx, lines) = crossbeam_channel::unbounded();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                // TRL's progress bar ends its updates with \r, not \n.
                for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
                    for part in String::from_utf8_lossy(&line).split('\r') {
                        let _ = tx.send(part.to_string());
                    }
                }
            });
        }
        Launched {
            child,
            lines,
            seen: Vec::new(),
            reaped: false,
        }
    }

    /// Reads lines until one contains `text`.
    fn wait_line(&mut self, text: &str, seconds: u64) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no {text:?} from the trainer in {seconds}s:\n{}", self.tail()),
            }
        }
    }

    fn drain(&mut self) {
        self.seen.extend(self.lines.try_iter());
    }

    fn tail(&self) -> String {
        let n = self.seen.len().saturating_sub(40);
        self.seen[n..].join("\n")
    }

    /// The learning rates TRL logged, one a step (logging_steps 1).
    fn logged_rates(&mut self) -> Vec<String> {
        self.drain();
        let key = "'learning_rate': '";
        self.seen
            .iter()
            .filter_map(|l| {
                l.split_once(key)
                    .map(|(_, rest)| rest.split('\'').next().unwrap().to_string())
            })
            .collect()
    }

    /// Waits for the trainer to end on its own; fails if it does not or fails.
    fn wait_exit(&mut self, seconds: u64) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            self.drain();
            if let Some(status) = self.child.try_wait().unwrap() {
                self.reaped = true;
                assert!(status.success(), "the trainer failed:\n{}", self.tail());
                return;
            }
            assert!(Instant::now() < deadline, "the trainer did not end:\n{}", self.tail());
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        // Once reaped, its number may be another process group's (the
        // kill would reach whoever has it now).
        if self.reaped {
            return;
        }
        let _ = Command::new("kill")
            .args(["-KILL", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

fn attach_script(runs: &Path, run: &str) -> String {
    format!(
        "cd {} && {} attach --run {run} --runs-dir {} --annotator ann; echo EXIT=$?; sleep 600",
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_BIN_EXE_rlhf-tui"),
        runs.display()
    )
}

/// The run's audit log's events named `event`, waited for.
fn audited(run: &Path, event: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(run.join("audit.jsonl")).unwrap_or_default();
        let found: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(Instant::now() < deadline, "no {event:?} in the audit log:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every rank's value in an audited change.
fn rank_values(change: &Value) -> Vec<f64> {
    change["ranks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .collect()
}

/// Pauses from the workbench; checks that both ranks stopped at one step
/// and stay there; returns that step.
fn pause(tmux: &Tmux, trainer: &mut Launched, run: &Path, nth: usize) -> usize {
    tmux.keys(&[" "]);
    tmux.wait_for("paused at step", 60);
    let pause = audited(run, "pause", nth).pop().unwrap();
    let ranks = pause["ranks"].as_array().unwrap();
    assert_eq!(ranks.len(), 2, "{pause}");
    let step = ranks[0]["step"].as_u64().unwrap() as usize;
    assert!(ranks.iter().all(|r| r["step"] == step), "ranks paused apart: {pause}");
    let slowest = ranks
        .iter()
        .map(|r| r["after_boundary_ms"].as_f64().unwrap())
        .fold(0.0, f64::max);
    eprintln!(
        "paused at step {step}: {} ms from the request to the boundary, {slowest} ms from the boundary to every rank paused",
        pause["after_request_ms"]
    );
    // Held: no step is logged while paused.
    let logged = trainer.logged_rates().len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(trainer.logged_rates().len(), logged, "steps were taken while paused");
    assert_eq!(logged, step, "the paused step's log is out");
    step
}

/// Sets the learning rate to 5e-5 and β to 0.08 from the workbench, and
/// checks both on each rank.
fn steer(tmux: &Tmux, run: &Path) {
    tmux.keys(&["l", "C-u", "0.00005", "Enter"]);
    let lr = audited(run, "set", 1).pop().unwrap();
    assert_eq!(
        (lr["param"].as_str(), lr["by"].as_str()),
        (Some("lr"), Some("ann")),
        "{lr}"
    );
    assert_eq!(rank_values(&lr), [5e-5, 5e-5], "{lr}");
    tmux.keys(&["b", "C-u", "0.08", "Enter"]);
    let beta = audited(run, "set", 2).pop().unwrap();
    assert_eq!(beta["param"], "beta", "{beta}");
    assert_eq!(rank_values(&beta), [0.08, 0.08], "{beta}");
}

/// Resumes; TRL's own log has the new rate from the step after the pause.
fn resume(tmux: &Tmux, trainer: &mut Launched, paused_at: usize) {
    tmux.keys(&[" "]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while trainer.logged_rates().len() <= paused_at {
        assert!(Instant::now() < deadline, "no step after resuming");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rates = trainer.logged_rates();
    assert_eq!(rates[paused_at - 1], "1e-05");
    assert_eq!(rates[paused_at], "5e-05", "the step after the change");
}

/// Stops from the workbench: the trainer writes a checkpoint and ends.
fn stop(tmux: &Tmux, trainer: &mut Launched, run: &Path) {
    tmux.keys(&["S"]);
    trainer.wait_exit(120);
    let end = audited(run, "end", 1).pop().unwrap();
    assert_eq!(end["stopped"], true, "{end}");
    let checkpoint = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(end["checkpoint"].as_str().unwrap());
    assert!(checkpoint.join("model.safetensors").exists(), "{end}");
    tmux.wait_for("⏹", 30);
    tmux.keys(&["q"]);
    tmux.wait_for("EXIT=0", 30);
}

#[test]
fn a_trl_run_on_two_processes_is_watched_and_steered_from_the_workbench() {
    let Some(python) = std::env::var_os("RLHF_TUI_TRL_PYTHON").map(PathBuf::from) else {
        eprintln!("skipped: RLHF_TUI_TRL_PYTHON names no Python with torch, transformers, trl and accelerate");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");

    // GRPO.
    let run = runs.join("g");
    let mut grpo = Launched::start(&python, "grpo", &runs, "g");
    grpo.wait_line("rlhf-tui: serving GRPOTrainer", 300);
    let tmux = Tmux::start("trl-grpo", &attach_script(&runs, "g"));
    tmux.wait_for("external GRPOTrainer", 60);
    tmux.wait_for("GRPO ▶", 60);
    tmux.wait_for("reward (1/17)", 60);
    // A pair of its completions, with the reward TRL gave each.
    tmux.wait_for("pair from step-", 60);
    tmux.wait_for("RM -", 10);
    let paused_at = pause(&tmux, &mut grpo, &run, 1);
    steer(&tmux, &run);
    tmux.keys(&["1"]);
    tmux.wait_for("judged 1", 30);
    let prefs = std::fs::read_to_string(run.join("prefs.jsonl")).unwrap();
    let row: Value = serde_json::from_str(prefs.lines().next().unwrap()).unwrap();
    assert!(row["prompt"].as_str().unwrap().contains("Human:"), "{row}");
    assert!(row["chosen"].is_string() && row["rejected"].is_string() && row["chosen"] != row["rejected"]);
    assert_eq!(audited(&run, "label", 1)[0]["by"], "ann");
    // The temperature GRPO's next generation samples at, on each rank.
    tmux.keys(&["T", "C-u", "0.7", "Enter"]);
    let temperature = audited(&run, "set", 3).pop().unwrap();
    assert_eq!(temperature["param"], "temperature", "{temperature}");
    assert_eq!(rank_values(&temperature), [0.7, 0.7], "{temperature}");
    resume(&tmux, &mut grpo, paused_at);
    stop(&tmux, &mut grpo, &run);
    drop(tmux);

    // DPO: no completions to label; the keys it does not take are greyed
    // and refused in words.
    let run = runs.join("d");
    let mut dpo = Launched::start(&python, "dpo", &runs, "d");
    dpo.wait_line("rlhf-tui: serving DPOTrainer", 300);
    let tmux = Tmux::start("trl-dpo", &attach_script(&runs, "d"));
    tmux.wait_for("external DPOTrainer", 60);
    tmux.wait_for("DPO ▶", 60);
    let styled = tmux.run(&["capture-pane", "-p", "-e", "-t", "wb"]);
    let hints = styled.lines().last().unwrap();
    let struck = |keys: &str| {
        let at = hints.find(keys).unwrap_or_else(|| panic!("no {keys:?} in {hints:?}"));
        // Struck through (SGR 9) since the last reset before the keys.
        let before = &hints[..at];
        before[before.rfind("\x1b[0m").unwrap_or(0)..].contains("\x1b[9m")
    };
    assert!(struck("r new pair") && struck("1 2 label"), "{hints:?}");
    assert!(!struck("l lr") && !struck("b β"), "{hints:?}");
    tmux.keys(&["r"]);
    tmux.wait_for("DPOTrainer does not take sample requests", 10);
    let paused_at = pause(&tmux, &mut dpo, &run, 1);
    steer(&tmux, &run);
    resume(&tmux, &mut dpo, paused_at);
    stop(&tmux, &mut dpo, &run);
}
