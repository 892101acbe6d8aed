//! `rlhf-tui serve` and `attach`: the trainer behind a socket.
//!
//! - Two workbenches at once see the same events, either steers, and the
//!   audit log names who.
//! - The protocol under fuzz: random bytes, truncated and oversized
//!   frames, a wrong version, a wrong or missing token and garbage after
//!   a good hello each close only their own connection, with the reason in
//!   `serve.log`; the server never panics and still serves a real client.
//! - In tmux as a person uses it: serve a run, attach, start PPO, quit the
//!   workbench (training goes on), attach again (charts and state
//!   replayed), pause and change β (audited with the attached name),
//!   detach; then `kill -9` the server mid-stage and serve again: Enter
//!   on PPO resumes from the periodic checkpoint.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::trainer::{base, fresh_reward_model};
use rand::{Rng, SeedableRng};
use rlhf_tui::remote::client::attach;
use rlhf_tui::remote::frame;
use rlhf_tui::remote::handshake::{Address, Hello, PROTOCOL_VERSION, Welcome};
use rlhf_tui::trainer::protocol::{Command as Cmd, Event};

/// `rlhf-tui serve` on the CPU with `args`; its stderr lines arrive on
/// the returned channel.
fn serve(runs: &Path, args: &[&str]) -> (Child, crossbeam_channel::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["serve", "--device", "cpu", "--runs-dir"])
        .arg(runs)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Lines until one contains `text`; that one.
fn wait_line(lines: &crossbeam_channel::Receiver<String>, text: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the server said it in time");
        if line.contains(text) {
            return line;
        }
    }
}

/// The server closes the connection: a read ends (after any refusal).
fn closed_by_server(stream: &mut TcpStream) -> Option<Welcome> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let refusal = frame::read::<Welcome>(stream).ok();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    refusal
}

#[test]
fn malformed_frames_close_only_their_connection_and_the_trainer_serves_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, lines) = serve(tmp.path(), &["--run", "f", "--listen", "127.0.0.1:0"]);
    let addr = wait_line(&lines, "and on tcp")
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_string();
    let token = std::fs::read_to_string(tmp.path().join("f/trainer.token")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(tmp.path().join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("f/trainer.token"), mode("f/trainer.sock")), (0o600, 0o600));
    let hello = |version, token: Option<&str>| Hello {
        version,
        name: "fuzz".into(),
        token: token.map(String::from),
    };
    let connect = || TcpStream::connect(&addr).unwrap();

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut refused = 0;
    for round in 0..60 {
        let mut s = connect();
        match round % 6 {
            // Random bytes, of random length.
            0 => {
                let n = rng.random_range(1..200);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                let _ = s.write_all(&bytes);
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
            // A frame cut short, then the connection closed.
            1 => {
                let _ = s.write_all(&[0, 0, 0, 40, b'{']);
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
            // A length over the limit.
            2 => {
                let _ = s.write_all(&u32::MAX.to_be_bytes());
            }
            3 => {
                frame::write(&mut s, &hello(PROTOCOL_VERSION + 1, Some(&token))).unwrap();
            }
            4 => {
                frame::write(&mut s, &hello(PROTOCOL_VERSION, Some("not the token"))).unwrap();
            }
            // A good hello, then a frame that is no command.
            _ => {
                frame::write(&mut s, &hello(PROTOCOL_VERSION, Some(&token))).unwrap();
                assert!(matches!(
                    frame::read::<Welcome>(&mut s).unwrap(),
                    Welcome::Accepted { .. }
                ));
                let _ = s.write_all(&[0, 0, 0, 5, b'[', b'1', b',', b'2', b']']);
            }
        }
        if let Some(Welcome::Refused { .. }) = closed_by_server(&mut s) {
            refused += 1;
        }
        assert!(
            server.try_wait().unwrap().is_none(),
            "the server ended at round {round}"
        );
    }
    // The wrong version and wrong token rounds were refused with a reason.
    assert!(refused >= 20, "{refused} refusals");

    // A real workbench still attaches, over TCP and over the socket, and
    // is told the run from the start.
    for address in [
        Address::Tcp(addr.clone()),
        Address::Unix(tmp.path().join("f/trainer.sock")),
    ] {
        let token = matches!(address, Address::Tcp(_)).then(|| token.clone());
        let handle = attach(&address, "ann", token).unwrap();
        let first = handle.events.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(matches!(first, Event::Ready { .. }), "{first:?}");
        handle.commands.send(Cmd::Detach).unwrap();
        handle.thread.join().unwrap();
    }
    let wrong = match attach(&Address::Tcp(addr.clone()), "ann", None) {
        Ok(_) => panic!("attached without the token"),
        Err(e) => e.to_string(),
    };
    assert!(wrong.contains("token"), "{wrong}");

    let log = std::fs::read_to_string(tmp.path().join("f/serve.log")).unwrap();
    for reason in ["version", "token", "over the", "ended inside a frame", "not a message"] {
        assert!(log.contains(reason), "serve.log has no {reason:?}:\n{log}");
    }
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    assert!(!tmp.path().join("f/trainer.sock").exists());
}

/// Two workbenches at once: both are told every event, either may steer,
/// and the audit log names which did.
#[test]
fn two_workbenches_see_the_same_events_and_the_audit_log_names_who_steered() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, lines) = serve(tmp.path(), &["--run", "two"]);
    wait_line(&lines, "serving run two");
    let socket = Address::Unix(tmp.path().join("two/trainer.sock"));
    let a = attach(&socket, "ann", None).unwrap();
    let b = attach(&socket, "bob", None).unwrap();
    let changed = |handle: &rlhf_tui::trainer::worker::TrainerHandle| loop {
        match handle.events.recv_timeout(Duration::from_secs(30)).unwrap() {
            Event::ParamChanged { param, .. } => break param,
            Event::Error(e) => panic!("{e}"),
            _ => {}
        }
    };
    use rlhf_tui::trainer::protocol::Param;
    a.commands.send(Cmd::Set(Param::Beta(0.2))).unwrap();
    assert_eq!((changed(&a), changed(&b)), (Param::Beta(0.2), Param::Beta(0.2)));
    b.commands.send(Cmd::Set(Param::Beta(0.3))).unwrap();
    assert_eq!((changed(&a), changed(&b)), (Param::Beta(0.3), Param::Beta(0.3)));
    for handle in [a, b] {
        handle.commands.send(Cmd::Detach).unwrap();
        handle.thread.join().unwrap();
    }
    let audit = std::fs::read_to_string(tmp.path().join("two/audit.jsonl")).unwrap();
    let by: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"event\":\"set\""))
        .map(|l| {
            if l.contains("\"by\":\"ann\"") {
                "ann"
            } else if l.contains("\"by\":\"bob\"") {
                "bob"
            } else {
                "?"
            }
        })
        .collect();
    assert_eq!(by, ["ann", "bob"], "{audit}");
    // The server notes each leaving once it has closed that connection.
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(tmp.path().join("two/serve.log")).unwrap();
        if log.contains("ann detached") && log.contains("bob detached") {
            break;
        }
        assert!(start.elapsed().as_secs() < 10, "{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.try_wait().unwrap().is_none());
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
}

fn attach_script(runs: &Path) -> String {
    format!(
        "cd {} && {} attach --run t --runs-dir {} --annotator remote-ann; echo EXIT=$?; sleep 600",
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_BIN_EXE_rlhf-tui"),
        runs.display()
    )
}

fn ppo_steps_logged(runs: &Path) -> usize {
    std::fs::read_to_string(runs.join("t/metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"stage\":\"ppo\""))
        .count()
}

#[test]
fn a_served_run_outlives_its_workbench_and_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let rm = fresh_reward_model(tmp.path());
    let config = tmp.path().join("t.ron");
    std::fs::write(
        &config,
        format!(
            "(ppo: (policy_init: Some({:?}), reward_init: Some({rm:?}), iterations: 400, batch_size: 4, minibatch_size: 2, ppo_epochs: 2, max_new_tokens: 8), checkpoints: (every_steps: Some(3)))",
            base()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (mut server, lines) = serve(&runs, &["--run", "t", "--config", config]);
    wait_line(&lines, "serving run t");

    let tmux = Tmux::start("serve", &attach_script(&runs));
    tmux.wait_for("attached", 60);
    // Base → SFT → CAI → RM → PPO: the cursor starts on SFT.
    tmux.keys(&["Right", "Right", "Right", "Enter"]);
    tmux.wait_for("PPO ▶", 120);
    tmux.keys(&["q"]);
    tmux.wait_for("EXIT=0", 30);
    // Detached: the trainer goes on.
    let before = ppo_steps_logged(&runs);
    let start = Instant::now();
    while ppo_steps_logged(&runs) < before + 3 {
        assert!(start.elapsed().as_secs() < 120, "no new PPO steps after detaching");
        std::thread::sleep(Duration::from_millis(200));
    }

    let tmux = Tmux::start("serve2", &attach_script(&runs));
    // Told the state and the charts from the start.
    tmux.wait_for("PPO ▶", 60);
    tmux.wait_for("reward (1/17)", 10);
    tmux.keys(&[" "]);
    tmux.wait_for("PAUSED", 60);
    tmux.keys(&["b", "C-u", "0.2", "Enter"]);
    tmux.wait_for("β 0.05 → 0.2", 30);
    tmux.keys(&["q"]);
    tmux.wait_for("EXIT=0", 30);
    let audit = std::fs::read_to_string(runs.join("t/audit.jsonl")).unwrap();
    let set = audit.lines().find(|l| l.contains("\"event\":\"set\"")).unwrap();
    assert!(
        set.contains("\"by\":\"remote-ann\"") && set.contains("\"new\":0.2"),
        "{set}"
    );
    assert!(audit.contains("\"event\":\"pause\""), "{audit}");

    // Resume from the workbench's pause by another attach, then kill -9
    // the server once a periodic checkpoint is on disk.
    let handle = attach(&Address::Unix(runs.join("t/trainer.sock")), "other", None).unwrap();
    handle.commands.send(Cmd::Resume).unwrap();
    let start = Instant::now();
    let periodic = || {
        std::fs::read_dir(runs.join("t/checkpoints"))
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("ppo-")))
            .unwrap_or(false)
    };
    while !periodic() {
        assert!(start.elapsed().as_secs() < 120, "no periodic PPO checkpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    drop(handle);

    // Served again (the killed server's socket is stale): Enter on PPO
    // continues from the newest checkpoint.
    let (mut server, lines) = serve(&runs, &["--run", "t"]);
    wait_line(&lines, "serving run t");
    let tmux = Tmux::start("serve3", &attach_script(&runs));
    tmux.wait_for("attached", 60);
    tmux.keys(&["Right", "Right", "Right", "Enter"]);
    tmux.wait_for("PPO ▶", 120);
    let audit = std::fs::read_to_string(runs.join("t/audit.jsonl")).unwrap();
    let resumed = audit.lines().rfind(|l| l.contains("\"event\":\"start\"")).unwrap();
    assert!(resumed.contains("checkpoints/ppo-"), "{resumed}");
    tmux.keys(&["q"]);
    tmux.wait_for("EXIT=0", 30);
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
}
