//! The real binary in a real terminal: `rlhf-tui` runs inside tmux; the
//! tests press keys as a person would (judge a pair, start SFT, pause,
//! change β, open help, quit with a checkpoint), read the screen with
//! `capture-pane`, and afterwards read the run directory. A panic on the
//! trainer thread (injected at a step) reaches the screen, and quitting
//! after it restores the terminal; a panic on the UI thread (injected on a
//! key) restores the terminal and ends the process.

mod common;

use std::path::Path;

use common::tmux::{Tmux, workbench};

#[test]
fn a_person_judges_pauses_steers_and_quits_in_a_real_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let script = workbench("", tmp.path(), "--run tmux");
    let tmux = Tmux::start("wb", &script);

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
    tmux.wait_for("β 0.05 → 0.1", 30);
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
    assert!(!tmux.alternate_screen());

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
    // The person's judgment (the judge labels some sets too).
    let prefs: Vec<serde_json::Value> = lines("prefs.jsonl")
        .into_iter()
        .filter(|r| r["source"] == "human")
        .collect();
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

#[test]
fn a_trainer_panic_reaches_the_screen_and_quitting_restores_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let script = workbench("RLHF_TUI_PANIC_AT_STEP=3", tmp.path(), "--run panic");
    let tmux = Tmux::start("panic", &script);
    tmux.wait_for("pair from base", 60);
    tmux.keys(&["Enter"]);
    // The panic's message and where it happened, in the status bar; the
    // stage shows it failed; the workbench still answers keys.
    let screen = tmux.wait_for("the trainer panicked", 60);
    assert!(screen.contains("worker.rs"), "{screen}");
    assert!(screen.contains("injected at step 3"), "{screen}");
    tmux.wait_for("SFT ✗ failed", 10);
    tmux.keys(&["?"]);
    tmux.wait_for("keys (Esc closes)", 10);
    tmux.keys(&["Escape", "q"]);
    let after = tmux.wait_for("EXIT=0", 30);
    assert!(!after.contains("stages"), "{after}");
    assert!(!tmux.alternate_screen());
}

#[test]
fn a_panic_on_the_ui_thread_restores_the_terminal_and_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let script = workbench("RLHF_TUI_PANIC_KEY='~'", tmp.path(), "--run uipanic");
    let tmux = Tmux::start("uipanic", &script);
    tmux.wait_for("pair from base", 60);
    tmux.keys(&["~"]);
    // The hook put the terminal back before the message printed; the
    // process ended with Rust's panic code instead of hanging.
    let after = tmux.wait_for("EXIT=101", 30);
    assert!(after.contains("injected on the UI thread"), "{after}");
    assert!(!after.contains("stages ·"), "{after}");
    assert!(!tmux.alternate_screen());
}

#[test]
fn model_opens_a_hugging_face_directory_as_the_base() {
    let config = opens_and_fine_tunes("tests/fixtures/tiny-gpt2", "hf");
    assert_eq!(
        config["n_embd"], 64,
        "the tiny model's width, not the built-in one's 128"
    );
}

#[test]
fn model_opens_a_llama_directory_as_the_base() {
    let config = opens_and_fine_tunes("tests/fixtures/llama/tiny-llama", "llama");
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    assert_eq!(config["num_key_value_heads"], 2);
}

/// Opens the workbench on `--model dir`, judges nothing, starts SFT and
/// quits with a checkpoint: that checkpoint's `config.json`.
fn opens_and_fine_tunes(dir: &str, run: &str) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let script = workbench("", tmp.path(), &format!("--run {run} --model {dir}"));
    let tmux = Tmux::start(run, &script);
    // Pairs come from that model before anything is trained.
    tmux.wait_for("pair from base", 60);
    tmux.keys(&["Up", "Enter"]);
    tmux.wait_for(&format!("the base model: {dir}"), 10);
    // SFT fine-tunes it: its checkpoint has the directory's shape.
    tmux.keys(&["Down", "Enter"]);
    tmux.wait_for("steps/s", 60);
    tmux.keys(&["q"]);
    tmux.wait_for("write a checkpoint and quit", 10);
    tmux.keys(&["y"]);
    tmux.wait_for("EXIT=0", 120);
    let checkpoint = std::fs::read_dir(tmp.path().join(run).join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("sft-"))
        .expect("an SFT checkpoint");
    serde_json::from_str(&std::fs::read_to_string(checkpoint.join("config.json")).unwrap()).unwrap()
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(") ").next().is_some_and(|rest| rest.starts_with('Z'))
    })
}

#[test]
fn losing_the_terminal_checkpoints_a_running_stage_and_exits() {
    let tmp = tempfile::tempdir().unwrap();
    // The workbench is the pane's own process, so killing the session
    // hangs up on it, as a dropped ssh connection does.
    let script = workbench("exec", tmp.path(), "--run hangup");
    let tmux = Tmux::start("hangup", &script);
    let pid: u32 = tmux
        .run(&["display", "-p", "-t", "wb", "#{pane_pid}"])
        .trim()
        .parse()
        .unwrap();
    tmux.wait_for("pair from base", 60);
    tmux.keys(&["Enter"]);
    tmux.wait_for("steps/s", 60);
    let killed = std::time::Instant::now();
    tmux.run(&["kill-session", "-t", "wb"]);
    while !ended(pid) {
        assert!(
            killed.elapsed().as_secs() < 5,
            "the workbench still runs 5 s after its terminal went"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    eprintln!("ended {:.2} s after the terminal went", killed.elapsed().as_secs_f64());
    let run = tmp.path().join("hangup");
    let checkpoint = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("sft-"))
        .expect("an SFT checkpoint");
    assert!(checkpoint.join("model.safetensors").exists());
    let audit = std::fs::read_to_string(run.join("audit.jsonl")).unwrap();
    assert!(audit.lines().last().unwrap().contains("\"stop\""), "{audit}");
}

/// A stage stopped with `S` shows as stopped and the cursor moves to the
/// next; Enter on it continues it from its checkpoint without asking, and
/// its next checkpoint is written beside the first. (Enter on a finished
/// stage asks first: `ui_update`'s tests.)
#[test]
fn enter_on_a_stopped_stage_continues_it_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let script = workbench("", tmp.path(), "--run again");
    let tmux = Tmux::start("again", &script);
    tmux.wait_for("pair from base", 60);
    tmux.keys(&["Enter"]);
    tmux.wait_for("steps/s", 60);
    tmux.keys(&["S"]);
    let stopped = tmux.wait_for("SFT ⏹ sft-", 60);
    let first: String = stopped
        .split("SFT ⏹ ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    // The cursor moved on past CAI to RM: back to SFT, and Enter continues
    // it from its checkpoint without asking.
    tmux.keys(&["Left", "Left", "Enter"]);
    tmux.wait_for("▶ RUNNING", 60);
    // Continued from the stop, not started over (the screen's word for it
    // may already have given way to the next message).
    let audit = std::fs::read_to_string(tmp.path().join("again/audit.jsonl")).unwrap();
    let start = audit.lines().rfind(|l| l.contains("\"event\":\"start\"")).unwrap();
    assert!(start.contains(&format!("checkpoints/{first}")), "{start}");
    tmux.wait_for("steps/s", 60);
    tmux.keys(&["S"]);
    tmux.wait_for("SFT ⏹", 60);
    tmux.keys(&["q"]);
    tmux.wait_for("EXIT=0", 60);
    let checkpoints: Vec<String> = std::fs::read_dir(tmp.path().join("again/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(checkpoints.contains(&first), "{first} gone: {checkpoints:?}");
    assert_eq!(checkpoints.len(), 2, "{checkpoints:?}");
}

/// Constitutional AI and a blind evaluation as a person meets them: CAI
/// started from the selector shows its revisions beside the charts; once
/// it is done, `E` compares its policy with the base model without names,
/// and each verdict is on disk with the figures on screen.
#[test]
fn the_constitution_pane_and_a_blind_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let script = workbench("", tmp.path(), "--run cai");
    let tmux = Tmux::start("cai", &script);
    tmux.wait_for("pair from base", 60);
    tmux.keys(&["Right", "Enter"]);
    let screen = tmux.wait_for("constitution · example 1 of", 120);
    assert!(screen.contains("critiques") && screen.contains("revision"), "{screen}");
    tmux.wait_for("CAI ✓ cai-", 120);
    tmux.keys(&["E"]);
    tmux.wait_for("blind evaluation · pair 1 of 20", 60);
    tmux.keys(&["1"]);
    tmux.wait_for("pair 2 of 20", 10);
    tmux.keys(&["t"]);
    let screen = tmux.wait_for("pair 3 of 20", 10);
    assert!(
        screen.contains("you: A won") && screen.contains("judge: A won"),
        "{screen}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait_for("evaluation closed", 10);
    tmux.keys(&["q"]);
    tmux.wait_for("EXIT=0", 30);
    let run = tmp.path().join("cai");
    let verdicts: Vec<serde_json::Value> = std::fs::read_to_string(run.join("eval.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verdicts.len(), 2);
    assert!(
        verdicts[0]["a"].as_str().unwrap().ends_with("cai-20"),
        "{}",
        verdicts[0]
    );
    // Left was A's answer or B's, as the sides were drawn.
    let first = if verdicts[0]["a_was_left"] == true { "a" } else { "b" };
    assert_eq!(verdicts[0]["person"], first);
    assert_eq!(verdicts[1]["person"], "tie");
    let revisions = std::fs::read_to_string(run.join("cai_revisions.jsonl")).unwrap();
    assert_eq!(revisions.lines().count(), 64);
    // Reopened, the run shows its revisions again with CAI selected.
    drop(tmux);
    let tmux = Tmux::start("cai-again", &script);
    tmux.wait_for("CAI ✓ cai-20", 60);
    tmux.keys(&["Right"]);
    tmux.wait_for("constitution · example 1 of", 10);
    tmux.keys(&["q"]);
    tmux.wait_for("EXIT=0", 30);
}

/// SFT started and stopped (the pane then shows SFT's answers), the reward
/// model trained, PPO started: each with Enter, as the cursor moves on.
fn start_ppo(tmux: &Tmux) {
    tmux.wait_for("pair from base", 60);
    tmux.keys(&["Enter"]);
    tmux.wait_for("steps/s", 60);
    tmux.keys(&["S"]);
    tmux.wait_for("pair from sft-", 60);
    tmux.keys(&["Enter"]);
    tmux.wait_for("RM ✓", 120);
    tmux.keys(&["Enter"]);
}

/// The pair pane shows the policy as it is now: after SFT ends it shows
/// SFT's answers, and `r` while PPO runs brings a set from the newest
/// iteration, never one from iterations ago.
#[test]
fn the_pair_pane_follows_the_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let script = workbench("", tmp.path(), "--run follow");
    let tmux = Tmux::start("follow", &script);
    start_ppo(&tmux);
    let iteration = |screen: &str| -> usize {
        let status = screen.lines().find(|l| l.contains("│ PPO ")).unwrap_or("");
        let field = status.split("PPO ").nth(1).unwrap_or("");
        field.split('/').next().unwrap_or("0").trim().parse().unwrap_or(0)
    };
    let from = |screen: &str| -> usize {
        let rest = screen.split("pair from ppo-").nth(1).unwrap_or("");
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    };
    // Let PPO stream several sets into the queue while the set on screen
    // waits to be judged, then ask for new ones.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while iteration(&tmux.screen()) < 8 {
        assert!(std::time::Instant::now() < deadline, "{}", tmux.screen());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The set `r` brings is the newest when the key is pressed (it then
    // stays on screen while PPO goes on).
    for _ in 0..3 {
        let pressed = iteration(&tmux.screen());
        tmux.keys(&["r"]);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let screen = tmux.screen();
        let shown = from(&screen);
        assert!(
            shown + 1 >= pressed,
            "a set from ppo-{shown} after r at iteration {pressed}:\n{screen}"
        );
    }
    tmux.keys(&["q", "n"]);
    tmux.wait_for("EXIT=0", 60);
}

/// `]` and `[` change the chart while the stage selector has the focus.
#[test]
fn chart_keys_work_from_any_pane() {
    let tmp = tempfile::tempdir().unwrap();
    let script = workbench("", tmp.path(), "--run charts");
    let tmux = Tmux::start("charts", &script);
    tmux.wait_for("pair from base", 60);
    tmux.wait_for("reward (1/17)", 10);
    tmux.keys(&["]"]);
    tmux.wait_for("KL (2/17)", 10);
    tmux.keys(&["[", "["]); // back to the first, then round to the last
    tmux.wait_for("RM reliability (17/17)", 10);
    tmux.keys(&["q"]);
    tmux.wait_for("EXIT=0", 30);
}

/// While PPO is paused, `.` says which step it took, and `c` either
/// writes the checkpoint or says that it waits for the iteration's end.
#[test]
fn step_and_checkpoint_keys_answer_while_ppo_is_paused() {
    let tmp = tempfile::tempdir().unwrap();
    let script = workbench("", tmp.path(), "--run paused");
    let tmux = Tmux::start("paused", &script);
    start_ppo(&tmux);
    tmux.wait_for("PPO ▶", 60);
    tmux.keys(&["Space"]);
    tmux.wait_for("PPO paused at step", 30);
    tmux.keys(&["."]);
    let screen = tmux.wait_for("one ", 10);
    assert!(
        screen.contains("one optimizer step: ") || screen.contains("one step: the rollout of iteration"),
        "{screen}"
    );
    tmux.keys(&["c"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let screen = tmux.screen();
        if screen.contains("the checkpoint is written when it ends") || screen.contains("checkpoint /") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no answer to c:\n{screen}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    tmux.keys(&["q", "n"]);
    tmux.wait_for("EXIT=0", 60);
}

/// The workbench on a person's own model and files (tests/fixtures/user):
/// the pair pane asks the config's labeling prompts in the model's own
/// chat format; three judgments and a ranking join the file's pairs in
/// training the reward model; PPO runs; every stage shows its results.
#[test]
fn your_own_model_and_files_in_the_workbench() {
    let tmp = tempfile::tempdir().unwrap();
    let script = format!(
        "cd {} && {} --device cpu --runs-dir {} --config tests/fixtures/user/run.ron --run own; echo EXIT=$?; sleep 600",
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_BIN_EXE_rlhf-tui"),
        tmp.path().display()
    );
    let tmux = Tmux::start("own", &script);
    tmux.wait_for("pair from base", 60);
    tmux.keys(&["Enter"]);
    tmux.wait_for("SFT ✓ sft-800", 120);
    let screen = tmux.wait_for("pair from sft-800", 60);
    assert!(screen.contains("held-out loss"), "{screen}");
    let labels =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/user/label.txt")).unwrap();
    assert!(
        labels.lines().any(|q| screen.contains(q)),
        "a labeling prompt on screen: {screen}"
    );
    for (key, judged) in [("1", "judged 1 "), ("2", "judged 2 "), ("1", "judged 3 ")] {
        tmux.keys(&[key]);
        tmux.wait_for(judged, 30);
    }
    // Rank mode on the same prompts: four responses ordered.
    tmux.keys(&["R"]);
    tmux.wait_for("rank 4 from sft-800", 60);
    tmux.keys(&["2", "1", "4", "3"]);
    tmux.wait_for("judged 4 ", 30);
    tmux.keys(&["R"]);
    tmux.wait_for("pair from sft-800", 60);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("RM ✓ rm-120", 120);
    // The held-out accuracy under the stage (what the labels above add to
    // the file's pairs moves it; 1.000 is possible).
    let accuracy: f64 = screen
        .split("accuracy ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no held-out accuracy: {screen}"));
    assert!(accuracy > 0.8, "{screen}");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("PPO ✓ ppo-60", 180);
    assert!(screen.contains("RM score"), "{screen}");
    tmux.keys(&["q"]);
    tmux.wait_for("EXIT=0", 60);

    let run = tmp.path().join("own");
    let prefs = std::fs::read_to_string(run.join("prefs.jsonl")).unwrap();
    let human: Vec<serde_json::Value> = prefs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|j: &serde_json::Value| j["source"] == "human")
        .collect();
    assert_eq!(human.len(), 4, "{prefs}");
    // Stored as the model read them: its ChatML turns.
    assert!(
        human
            .iter()
            .all(|j| j["prompt"].as_str().unwrap().starts_with("<|im_start|>user\n")),
        "{prefs}"
    );
    // The reward model trained on the file's 480 training pairs and the
    // run's own: the judgments' pairs (a ranking's K(K−1)/2) whose two
    // texts differ, as the run's training pairs count them.
    let judgments = rlhf_tui::prefs::store::load(&run.join("prefs.jsonl"))
        .unwrap()
        .judgments;
    let run_pairs = rlhf_tui::prefs::rank::training_pairs(&judgments).len() as u64;
    let rounds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("rounds.json")).unwrap()).unwrap();
    let version = &rounds["rm_versions"][0];
    assert_eq!(version["run_pairs"].as_u64().unwrap(), run_pairs, "{rounds}");
    assert_eq!(version["pairs"].as_u64().unwrap(), 480 + run_pairs, "{rounds}");
}
