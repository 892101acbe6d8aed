//! AI judges through the real client: a chat-completions server process
//! (tests/support/judge_server.py, judging by a rule) on this machine, and
//! a judge program (tests/support/judge_command.py) kept alive for the run.
//! Scores, verdicts, retries, timeouts, a reply with no verdict, a wrong
//! key, a program that ends, judge labels stored under the judge's name,
//! and Constitutional AI's critiques and revisions asked of either.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rlhf_tui::judge::command::CommandConfig;
use rlhf_tui::judge::endpoint::{Endpoint, EndpointConfig};
use rlhf_tui::judge::{AiJudge, JudgeConfig, JudgeKind, evaluator, judges};
use rlhf_tui::prefs::record::{Choice, Criterion, Verdict};
use rlhf_tui::rlhf::cai::constitution::Constitution;
use rlhf_tui::rlhf::data::{Evaluator, Prompt};

/// The test server, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Started with the key in `key_var` required, when given.
    fn start(key_var: Option<&str>) -> Self {
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/judge_server.py"))
            .args(key_var)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Self {
            port: line.trim().parse().expect("the server prints its port"),
            child,
        }
    }

    fn config(&self) -> EndpointConfig {
        EndpointConfig {
            base_url: format!("http://127.0.0.1:{}/v1", self.port),
            model: "rule".into(),
            // A variable every test process has stands in for a key.
            api_key_env: Some("HOME".into()),
            ..EndpointConfig::default()
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn judge(config: EndpointConfig, criteria: Vec<Criterion>) -> AiJudge {
    let endpoint = Endpoint::new(&config).unwrap().with_backoff(Duration::from_millis(20));
    AiJudge::endpoint(
        endpoint,
        &JudgeConfig {
            criteria,
            ..JudgeConfig::default()
        },
    )
}

fn question() -> Prompt {
    Prompt::question("What color is the frog?")
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

#[test]
fn an_endpoint_judge_scores_and_compares() {
    let server = Server::start(Some("HOME"));
    let judge = judge(server.config(), vec![Criterion::Overall, Criterion::Helpful]);
    assert_eq!(judge.name(), "judge:rule");
    let answers = strings(&["The frog is green.", "I am not sure."]);
    let scores = judge.scores(&[question(), question()], &answers).unwrap();
    assert_eq!(scores, [8.0 / 9.0, 1.0 / 9.0]);
    let verdicts = judge.verdicts(&question(), &answers).unwrap();
    assert_eq!(
        verdicts,
        [
            (Criterion::Overall, Verdict::Choice(Choice::Left)),
            (Criterion::Helpful, Verdict::Choice(Choice::Left)),
        ]
    );
    // Three responses are ordered by their scores.
    let three = strings(&["I am not sure.", "The frog is green.", "Still not sure."]);
    let verdicts = judge.verdicts(&question(), &three).unwrap();
    assert_eq!(verdicts[0].1, Verdict::Ranking(vec![1, 0, 2]));
}

#[test]
fn failures_are_retried_then_reported_never_guessed() {
    let server = Server::start(None);
    let mut config = server.config();
    config.api_key_env = None;
    // 503 twice, then an answer: three retries are enough, one is not.
    let patient = judge(config.clone(), Vec::new());
    let flaky = strings(&["The frog is green. FLAKY 1"]);
    assert_eq!(patient.scores(&[question()], &flaky).unwrap(), [8.0 / 9.0]);
    let impatient = judge(
        EndpointConfig {
            retries: 1,
            ..config.clone()
        },
        Vec::new(),
    );
    let err = impatient.scores(&[question()], &strings(&["FLAKY 2"])).unwrap_err();
    assert!(err.contains("HTTP 503") && err.contains("2 attempts"), "{err}");
    // A reply with no score in it is an error that quotes it.
    let err = patient.scores(&[question()], &strings(&["GARBAGE"])).unwrap_err();
    assert!(err.contains("I cannot decide."), "{err}");
    let err = patient.verdicts(&question(), &strings(&["GARBAGE", "b"])).unwrap_err();
    assert!(err.contains("no verdict"), "{err}");
    // Slower than the timeout: an error, after the retries.
    let hasty = judge(
        EndpointConfig {
            timeout_secs: 0.3,
            retries: 1,
            ..config
        },
        Vec::new(),
    );
    let started = Instant::now();
    let err = hasty.scores(&[question()], &strings(&["SLOW"])).unwrap_err();
    assert!(
        err.to_lowercase().contains("timeout") || err.contains("timed out"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[test]
fn a_wrong_or_missing_key_is_refused() {
    let server = Server::start(Some("HOME"));
    let mut config = server.config();
    config.api_key_env = Some("CARGO_MANIFEST_DIR".into());
    let err = judge(config.clone(), Vec::new())
        .scores(&[question()], &strings(&["x"]))
        .unwrap_err();
    assert!(err.contains("HTTP 401") && err.contains("1 attempt)"), "{err}");
    config.api_key_env = Some("RLHF_TUI_NO_SUCH_VARIABLE".into());
    let err = Endpoint::new(&config).err().unwrap();
    assert!(err.contains("RLHF_TUI_NO_SUCH_VARIABLE is not set"), "{err}");
}

/// Requests side by side: the figures the closing note reports.
#[test]
fn judge_latency_and_throughput() {
    let server = Server::start(None);
    let answers: Vec<String> = (0..64).map(|i| format!("The frog is green. ({i})")).collect();
    let prompts = vec![question(); answers.len()];
    for concurrency in [1, 4] {
        let mut config = server.config();
        (config.api_key_env, config.concurrency) = (None, concurrency);
        let judge = judge(config, Vec::new());
        let started = Instant::now();
        let scores = judge.scores(&prompts, &answers).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(scores.len(), 64);
        println!(
            "concurrency {concurrency}: 64 scores in {:.3} s, {:.1} ms each, {:.0} a second",
            seconds,
            seconds * 1000.0 / 64.0,
            64.0 / seconds
        );
    }
}

#[test]
fn a_judge_program_is_kept_alive_and_its_end_reported() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/judge_command.py");
    let config = JudgeConfig {
        kind: JudgeKind::Command(CommandConfig {
            program: "python3".into(),
            args: vec![script.display().to_string()],
            timeout_secs: 10.0,
        }),
        ..JudgeConfig::default()
    };
    let judge = evaluator(&config, false).unwrap().unwrap();
    assert_eq!(judge.name(), "judge:python3");
    let answers = strings(&["The frog is green.", "I am not sure."]);
    for _ in 0..3 {
        assert_eq!(judge.scores(&[question(), question()], &answers).unwrap(), [0.9, 0.2]);
    }
    let verdicts = judge.verdicts(&question(), &answers).unwrap();
    assert_eq!(verdicts, [(Criterion::Overall, Verdict::Choice(Choice::Left))]);
    let err = judge.scores(&[Prompt::question("EXIT")], &strings(&["x"])).unwrap_err();
    assert!(err.contains("python3: the program has ended"), "{err}");
    assert!(err.contains("(its stderr: asked to end)"), "{err}");
    // A program that cannot start is refused when the run is set up.
    let missing = JudgeConfig {
        kind: JudgeKind::Command(CommandConfig {
            program: "rlhf-tui-no-such-judge".into(),
            ..CommandConfig::default()
        }),
        ..JudgeConfig::default()
    };
    let err = evaluator(&missing, false).err().unwrap();
    assert!(err.contains("cannot start rlhf-tui-no-such-judge"), "{err}");
}

/// On the trainer thread as the workbench drives it: the judge program
/// scores every response shown and labels every set (judge_fraction 1),
/// and its labels are stored under its name, which agreement counts as
/// the judge's.
#[test]
fn judge_labels_are_stored_under_the_judge_s_name() {
    use rlhf_tui::prefs::record::Source;
    use rlhf_tui::prefs::store;
    use rlhf_tui::run::{RunConfig, RunDir};
    use rlhf_tui::trainer::protocol::{Command as Ask, Event};

    let tmp = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/judge_command.py");
    let mut config = RunConfig::default();
    config.sft.init = common::trainer::base();
    config.prefs.judge_fraction = 1.0;
    config.judge.kind = JudgeKind::Command(CommandConfig {
        program: "python3".into(),
        args: vec![script.display().to_string()],
        timeout_secs: 10.0,
    });
    let run = RunDir::create(tmp.path(), "judged").unwrap();
    let handle = common::trainer::spawn_worker(run.clone(), config);
    handle.commands.send(Ask::RequestSamples { k: 2 }).unwrap();
    let set = loop {
        match handle.events.recv_timeout(Duration::from_secs(120)).unwrap() {
            Event::Samples(set) => break set,
            Event::Error(e) | Event::Warning(e) => panic!("{e}"),
            _ => {}
        }
    };
    // Scored by the program: 0.9 unless the answer says it is not sure.
    assert!(
        set.responses
            .iter()
            .all(|r| matches!(r.judge, Some(s) if s == 0.9 || s == 0.2)),
        "{set:?}"
    );
    assert_eq!(set.judge.len(), 1, "{set:?}");
    handle.commands.send(Ask::Shutdown { checkpoint: false }).unwrap();
    while handle.events.recv_timeout(Duration::from_secs(60)).is_ok() {}
    let stored = store::load(&run.prefs_path()).unwrap().judgments;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].annotator.as_str(), stored[0].source),
        ("judge:python3", Source::Judge)
    );
}

/// Constitutional AI with an AI judge as the critic, both kinds: the
/// principle's critique request asks for a critique, its revision request
/// (with the critique) for a revision, and the principle decides a pair.
#[test]
fn an_ai_judge_critiques_and_revises_by_the_constitution() {
    let server = Server::start(None);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/judge_command.py");
    let endpoint = JudgeConfig {
        kind: JudgeKind::Endpoint(server.config()),
        ..JudgeConfig::default()
    };
    let command = JudgeConfig {
        kind: JudgeKind::Command(CommandConfig {
            program: "python3".into(),
            args: vec![script.display().to_string()],
            timeout_secs: 10.0,
        }),
        ..JudgeConfig::default()
    };
    let honest = Constitution::default()
        .principles
        .into_iter()
        .find(|p| p.name == "honest")
        .unwrap();
    for config in [endpoint, command] {
        let (_, critic) = judges(&config, false).unwrap();
        let critic = critic.expect("an AI judge is a critic");
        let c = critic
            .critique(&question(), "The frog is green. I am not sure.", &honest)
            .unwrap();
        assert!(c.text.contains("not sure"), "{}", c.text);
        assert_eq!(c.revision, "The frog is green.");
        let choice = critic
            .compare(&question(), "I am not sure.", "The frog is green.", &honest)
            .unwrap();
        assert_eq!(choice, Choice::Right);
    }
    // A person's data with no AI judge has no critic.
    assert!(judges(&JudgeConfig::default(), false).unwrap().1.is_none());
}
