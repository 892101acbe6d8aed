//! A judge that is a program of the person's: started once for the run and
//! kept alive, it reads one JSON request a line on stdin and answers each
//! with one JSON line on stdout:
//!
//! - `{"task": "score", "criterion": "overall", "prompt": "…", "response": "…"}`
//!   → `{"score": 0.8}` (0 to 1);
//! - `{"task": "compare", "criterion": "helpful", "prompt": "…", "responses": ["…", "…"]}`
//!   → `{"verdict": "a"}` (`a`, `b` or `tie`);
//! - for Constitutional AI, `{"task": "critique", "principle": "polite",
//!   "critique_request": "…", "revision_request": "…", "prompt": "…",
//!   "response": "…"}` → `{"critique": "…", "revision": "…"}`, and
//!   `compare` with the principle's name as `criterion` and its critique
//!   request as `principle`.
//!
//! A reply that does not come within the timeout, or that cannot be read,
//! is an error naming the program and what it wrote, with the last lines
//! of its stderr (which never reaches the workbench's screen).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, unbounded};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::rlhf::cai::constitution::Principle;

use crate::prefs::record::{Choice, Criterion};

/// The program and its arguments (`judge.kind: Command((…))`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandConfig {
    pub program: String,
    pub args: Vec<String>,
    /// Seconds one answer may take.
    pub timeout_secs: f64,
}

impl Default for CommandConfig {
    fn default() -> Self {
        Self {
            program: String::new(),
            args: Vec::new(),
            timeout_secs: 30.0,
        }
    }
}

/// The running program.
pub struct CommandJudge {
    name: String,
    timeout: Duration,
    process: Mutex<Process>,
    /// The newest lines the program wrote to stderr.
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Closed once its stderr has been read to the end.
    stderr_done: Receiver<()>,
}

/// Lines of a judge program's stderr kept for its errors.
const STDERR_KEPT: usize = 3;

struct Process {
    child: Child,
    stdin: ChildStdin,
    /// Its stdout's lines, read on a thread of their own so a wait can
    /// time out; closed when the program ends.
    lines: Receiver<std::io::Result<String>>,
}

impl CommandJudge {
    /// Starts the program.
    pub fn spawn(config: &CommandConfig) -> Result<Self, String> {
        if config.program.trim().is_empty() {
            return Err("judge: the command's program is not named (judge.kind: Command((program: …)))".into());
        }
        let mut child = Command::new(&config.program)
            .args(&config.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("judge: cannot start {}: {e}", config.program))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let kept = stderr.clone();
        let errors = child.stderr.take().expect("piped");
        let (done, stderr_done) = unbounded::<()>();
        std::thread::spawn(move || {
            let _done = done;
            for line in BufReader::new(errors).lines().map_while(Result::ok) {
                let mut kept = kept.lock().expect("only this thread writes");
                if kept.len() == STDERR_KEPT {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let (send, lines) = unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            name: config.program.clone(),
            timeout: Duration::from_secs_f64(config.timeout_secs.max(0.001)),
            process: Mutex::new(Process { child, stdin, lines }),
            stderr,
            stderr_done,
        })
    }

    pub fn program(&self) -> &str {
        &self.name
    }

    /// The program's answer to one request.
    fn ask(&self, request: &Value) -> Result<Value, String> {
        let mut process = self.process.lock().expect("a judge request does not panic");
        let fail = |why: String| {
            let said: Vec<String> = self
                .stderr
                .lock()
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_default();
            match said.is_empty() {
                true => format!("{}: {why}", self.name),
                false => format!("{}: {why} (its stderr: {})", self.name, said.join(" | ")),
            }
        };
        writeln!(process.stdin, "{request}")
            .and_then(|_| process.stdin.flush())
            .map_err(|e| fail(format!("cannot write the request: {e}")))?;
        let line = match process.lines.recv_timeout(self.timeout) {
            Ok(line) => line.map_err(|e| fail(format!("cannot read the answer: {e}")))?,
            Err(RecvTimeoutError::Timeout) => {
                return Err(fail(format!("no answer within {:?}", self.timeout)));
            }
            Err(RecvTimeoutError::Disconnected) => {
                // What it said last comes with the error: its stderr is read
                // to the end (briefly waited for) first.
                let _ = self.stderr_done.recv_timeout(Duration::from_secs(1));
                let status = process.child.try_wait().ok().flatten();
                return Err(fail(format!(
                    "the program has ended{}",
                    status.map_or(String::new(), |s| format!(" ({s})"))
                )));
            }
        };
        serde_json::from_str(&line).map_err(|e| fail(format!("the answer {line:?} is not JSON: {e}")))
    }

    /// The program's score of `response` in [0, 1].
    pub fn score(&self, criterion: Criterion, prompt: &str, response: &str) -> Result<f32, String> {
        let request = json!({"task": "score", "criterion": criterion.name(), "prompt": prompt, "response": response});
        let answer = self.ask(&request)?;
        answer["score"]
            .as_f64()
            .filter(|s| (0.0..=1.0).contains(s))
            .map(|s| s as f32)
            .ok_or_else(|| format!("{}: the answer {answer} has no \"score\" from 0 to 1", self.name))
    }

    /// The program's verdict on two responses.
    pub fn compare(&self, criterion: Criterion, prompt: &str, a: &str, b: &str) -> Result<Choice, String> {
        let request = json!({"task": "compare", "criterion": criterion.name(), "prompt": prompt, "responses": [a, b]});
        self.verdict(&request)
    }

    /// The program's critique of `response` under `principle`, and its revision.
    pub fn critique(&self, principle: &Principle, prompt: &str, response: &str) -> Result<(String, String), String> {
        let request = json!({
            "task": "critique",
            "principle": principle.name,
            "critique_request": principle.critique,
            "revision_request": principle.revision,
            "prompt": prompt,
            "response": response,
        });
        let answer = self.ask(&request)?;
        match (answer["critique"].as_str(), answer["revision"].as_str()) {
            (Some(critique), Some(revision)) => Ok((critique.to_string(), revision.to_string())),
            _ => Err(format!(
                "{}: the answer {answer} has no \"critique\" and \"revision\" strings",
                self.name
            )),
        }
    }

    /// The program's verdict on which of two responses better follows `principle`.
    pub fn compare_principle(&self, principle: &Principle, prompt: &str, a: &str, b: &str) -> Result<Choice, String> {
        let request = json!({
            "task": "compare",
            "criterion": principle.name,
            "principle": principle.critique,
            "prompt": prompt,
            "responses": [a, b],
        });
        self.verdict(&request)
    }

    fn verdict(&self, request: &Value) -> Result<Choice, String> {
        let answer = self.ask(request)?;
        match answer["verdict"].as_str() {
            Some("a") => Ok(Choice::Left),
            Some("b") => Ok(Choice::Right),
            Some("tie") => Ok(Choice::Tie),
            _ => Err(format!(
                "{}: the answer {answer} has no \"verdict\" of a, b or tie",
                self.name
            )),
        }
    }
}

impl Drop for CommandJudge {
    fn drop(&mut self) {
        if let Ok(process) = self.process.get_mut() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }
}
