//! Exact resume on the CPU: a stage stopped at a checkpoint and continued
//! in a new trainer gives the same metrics for the following steps as one
//! that never stopped, to 1e-6: PPO (policy, value model, both optimizers'
//! moments, generator, KL controller, counters), SFT (model, optimizer,
//! data order), CAI (its revisions made again from its start), DPO
//! (policy, optimizer, data order, its frozen reference and a live β),
//! and GRPO and RLOO (policy, optimizer, generator, live β and K). Also:
//! only the newest `keep_last` checkpoints stay, and `train --resume`
//! continues a run from the command line.

mod common;

use std::process::Command;

use burn::tensor::Device;
use common::trainer::{base, done_checkpoint, fresh_reward_model, spawn_worker};
use rlhf_tui::run::{RunConfig, RunDir};
use rlhf_tui::trainer::protocol::Stage;
use rlhf_tui::trainer::stage::{Metrics, Saved, StageRun, no_steering};

fn steps(stage: &mut StageRun, n: usize) -> Vec<Metrics> {
    (0..n).map(|_| stage.step(&mut no_steering).unwrap()).collect()
}

/// Every metric of `after` equals the straight run's, to 1e-6 (relative
/// to the value's size above 1); returns how many were compared and the
/// largest difference.
fn assert_same(straight: &[Metrics], after: &[Metrics]) -> (usize, f64) {
    let (mut compared, mut largest) = (0, 0.0f64);
    for (a, b) in straight.iter().zip(after) {
        assert_eq!(a.len(), b.len());
        for ((ka, va), (kb, vb)) in a.iter().zip(b) {
            assert_eq!(ka, kb);
            let tolerance = 1e-6 * va.abs().max(1.0);
            assert!((va - vb).abs() <= tolerance, "{ka}: {va} straight, {vb} resumed");
            compared += 1;
            largest = largest.max((va - vb).abs());
        }
    }
    (compared, largest)
}

#[test]
fn ppo_stopped_and_resumed_matches_a_run_that_never_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let rm_dir = fresh_reward_model(tmp.path());
    let mut config = RunConfig::parse(
        "(ppo: (iterations: 6, batch_size: 4, minibatch_size: 2, ppo_epochs: 2, max_new_tokens: 8, lr: 0.0003, adaptive_kl: true, kl_target: 0.5))",
    )
    .unwrap();
    config.ppo.policy_init = Some(base());
    config.ppo.reward_init = Some(rm_dir);

    let straight_run = RunDir::create(tmp.path(), "straight").unwrap();
    let mut straight = StageRun::start(Stage::Ppo, &config, &straight_run, &device).unwrap();
    let straight = steps(&mut straight, 6);

    let run = RunDir::create(tmp.path(), "stopped").unwrap();
    let mut first = StageRun::start(Stage::Ppo, &config, &run, &device).unwrap();
    assert_same(&straight[..3], &steps(&mut first, 3));
    let dir = first.checkpoint(&run).unwrap();
    drop(first);
    assert_eq!(Saved::unfinished(&run, Stage::Ppo).unwrap(), Some(dir.clone()));
    let mut resumed = StageRun::resume(&config, &run, &dir, None, &device).unwrap();
    assert_eq!((resumed.step, resumed.total), (3, 6));
    let (compared, largest) = assert_same(&straight[3..], &steps(&mut resumed, 3));
    eprintln!("PPO: {compared} metric values over 3 iterations after resuming, largest difference {largest:e}");
    // The adaptive β moved, and moved the same way.
    let beta = |m: &Metrics| m.iter().find(|(k, _)| *k == "objective/kl_coef").unwrap().1;
    assert_ne!(beta(&straight[0]), beta(&straight[5]));
}

#[test]
fn sft_resumes_exactly_and_old_checkpoints_make_way() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let config = RunConfig::parse(
        "(sft: (steps: 8, batch_size: 4, demonstrations: 24, eval_examples: 4, eval_every: 100, warmup_steps: 2), checkpoints: (keep_last: 2))",
    )
    .unwrap();
    let straight_run = RunDir::create(tmp.path(), "straight").unwrap();
    let mut straight = StageRun::start(Stage::Sft, &config, &straight_run, &device).unwrap();
    let straight = steps(&mut straight, 8);

    let run = RunDir::create(tmp.path(), "stopped").unwrap();
    let mut first = StageRun::start(Stage::Sft, &config, &run, &device).unwrap();
    for _ in 0..3 {
        steps(&mut first, 1);
        first.checkpoint(&run).unwrap();
    }
    // Three written, two kept: the newest.
    let mut names: Vec<String> = std::fs::read_dir(run.root.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["sft-2", "sft-3"]);
    let dir = run.root.join("checkpoints/sft-3");
    let mut resumed = StageRun::resume(&config, &run, &dir, None, &device).unwrap();
    let (compared, largest) = assert_same(&straight[3..], &steps(&mut resumed, 5));
    eprintln!("SFT: {compared} metric values over 5 steps after resuming, largest difference {largest:e}");
}

/// The CAI stage resumed samples and revises from its start again, to the
/// same revisions, and continues its fine-tuning exactly.
#[test]
fn cai_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let config = RunConfig::parse(
        "(sft: (eval_examples: 4, eval_every: 100), cai: (samples: 24, steps: 6, batch_size: 4, warmup_steps: 2, feedback_pairs: 0))",
    )
    .unwrap();
    let straight_run = RunDir::create(tmp.path(), "straight").unwrap();
    let mut straight = StageRun::start(Stage::Cai, &config, &straight_run, &device).unwrap();
    let straight = steps(&mut straight, 6);
    let run = RunDir::create(tmp.path(), "stopped").unwrap();
    let mut first = StageRun::start(Stage::Cai, &config, &run, &device).unwrap();
    steps(&mut first, 2);
    let dir = first.checkpoint(&run).unwrap();
    drop(first);
    let revisions = std::fs::read_to_string(run.cai_revisions_path()).unwrap();
    let mut resumed = StageRun::resume(&config, &run, &dir, None, &device).unwrap();
    assert_eq!(std::fs::read_to_string(run.cai_revisions_path()).unwrap(), revisions);
    let (compared, largest) = assert_same(&straight[2..], &steps(&mut resumed, 4));
    eprintln!("CAI: {compared} metric values over 4 steps after resuming, largest difference {largest:e}");
}

/// DPO from the base model resumes exactly, its reference named in the
/// checkpoint, and at the β a person set while it ran.
#[test]
fn dpo_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let mut config = RunConfig::parse(
        "(dpo: (steps: 6, batch_size: 4, warmup_steps: 2, train_pairs: 40, eval_pairs: 8, lr: 0.0003))",
    )
    .unwrap();
    config.dpo.init = Some(base());
    let straight_run = RunDir::create(tmp.path(), "straight").unwrap();
    let mut straight = StageRun::start(Stage::Dpo, &config, &straight_run, &device).unwrap();
    let mut straight_metrics = steps(&mut straight, 3);
    straight.params_mut().kl.set_beta(0.3);
    straight_metrics.extend(steps(&mut straight, 3));

    let run = RunDir::create(tmp.path(), "stopped").unwrap();
    let mut first = StageRun::start(Stage::Dpo, &config, &run, &device).unwrap();
    steps(&mut first, 3);
    first.params_mut().kl.set_beta(0.3);
    let dir = first.checkpoint(&run).unwrap();
    drop(first);
    assert_eq!(Saved::read(&dir).unwrap().reference, Some(base()));
    let mut resumed = StageRun::resume(&config, &run, &dir, None, &device).unwrap();
    let (compared, largest) = assert_same(&straight_metrics[3..], &steps(&mut resumed, 3));
    // The straight run stepped at β 0.3 after its third step: a resumed
    // run at the config's 0.1 would differ from it here.
    eprintln!("DPO: {compared} metric values over 3 steps after resuming, largest difference {largest:e}");
}

/// GRPO and RLOO resume exactly, at the β and K a person set while they ran.
#[test]
fn grpo_and_rloo_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let rm_dir = fresh_reward_model(tmp.path());
    let section = "(iterations: 6, prompts_per_iteration: 2, group_size: 3, minibatch_size: 3, max_new_tokens: 8, lr: 0.0003, loss_type: Bnpo)";
    let mut config = RunConfig::parse(&format!("(grpo: {section}, rloo: {section})")).unwrap();
    for group in [&mut config.grpo, &mut config.rloo] {
        group.policy_init = Some(base());
        group.reward_init = Some(rm_dir.clone());
    }
    for stage in [Stage::Grpo, Stage::Rloo] {
        let steer = |run: &mut StageRun| {
            let params = run.params_mut();
            params.kl.set_beta(0.2);
            params.group_size = Some(2);
        };
        let straight_run = RunDir::create(tmp.path(), &format!("{}-straight", stage.name())).unwrap();
        let mut straight = StageRun::start(stage, &config, &straight_run, &device).unwrap();
        let mut straight_metrics = steps(&mut straight, 3);
        steer(&mut straight);
        straight_metrics.extend(steps(&mut straight, 3));

        let run = RunDir::create(tmp.path(), &format!("{}-stopped", stage.name())).unwrap();
        let mut first = StageRun::start(stage, &config, &run, &device).unwrap();
        steps(&mut first, 3);
        steer(&mut first);
        let dir = first.checkpoint(&run).unwrap();
        drop(first);
        let mut resumed = StageRun::resume(&config, &run, &dir, None, &device).unwrap();
        let after = steps(&mut resumed, 3);
        let (compared, largest) = assert_same(&straight_metrics[3..], &after);
        // K 2 after the change: 2 prompts, 4 responses an iteration.
        let episodes = |m: &Metrics| m.iter().find(|(k, _)| *k == "eps").unwrap().1;
        assert_eq!(episodes(&after[2]) - episodes(&after[1]), 4.0);
        eprintln!(
            "{}: {compared} metric values over 3 iterations after resuming, largest difference {largest:e}",
            stage.name()
        );
    }
}

/// `kill -9` part way through PPO on the command line, after a periodic
/// checkpoint (`checkpoints.every_steps`), then `train --resume`: the
/// stage continues from that checkpoint, the log keeps each iteration
/// once, and every metric after the checkpoint equals an uninterrupted
/// run's to 1e-6.
#[test]
fn a_killed_run_resumes_from_its_periodic_checkpoint_as_if_never_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let rm_dir = fresh_reward_model(tmp.path());
    let config = tmp.path().join("c.ron");
    std::fs::write(
        &config,
        format!(
            "(ppo: (policy_init: Some({:?}), reward_init: Some({rm_dir:?}), iterations: 60, batch_size: 4, minibatch_size: 2, ppo_epochs: 2, max_new_tokens: 8, lr: 0.0003), checkpoints: (every_steps: Some(5), keep_last: 2))",
            base()
        ),
    )
    .unwrap();
    let command = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"));
        c.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["train", "--device", "cpu", "--stage", "ppo", "--runs-dir"])
            .arg(tmp.path())
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let config_arg = config.to_str().unwrap();
    assert!(
        command(&["--run", "straight", "--config", config_arg])
            .status()
            .unwrap()
            .success()
    );

    let mut child = command(&["--run", "killed", "--config", config_arg]).spawn().unwrap();
    let log = tmp.path().join("killed/metrics.jsonl");
    let logged = || std::fs::read_to_string(&log).unwrap_or_default().lines().count();
    // Killed two iterations past its second periodic checkpoint (step 10):
    // the log then holds steps the checkpoint does not.
    let start = std::time::Instant::now();
    while logged() < 13 {
        assert!(start.elapsed().as_secs() < 120, "the run never reached step 12");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let run = RunDir::create(tmp.path(), "killed").unwrap();
    let (from, _) = run.latest_step("ppo").unwrap();
    assert!(from >= 10 && from % 5 == 0, "resumes from ppo-{from}");
    assert!(Saved::unfinished(&run, Stage::Ppo).unwrap().is_some());

    let out = command(&["--resume", "killed"])
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read = |name: &str| {
        let (steps, torn) = rlhf_tui::run::metrics::read_log(&tmp.path().join(name).join("metrics.jsonl"));
        assert_eq!(torn, 0);
        steps
    };
    let (straight, resumed) = (read("straight"), read("killed"));
    let steps = |log: &[rlhf_tui::run::metrics::LoggedStep]| log.iter().map(|(_, s, _)| *s).collect::<Vec<_>>();
    assert_eq!(steps(&straight), steps(&resumed), "each step logged once, in order");
    let (mut compared, mut largest) = (0, 0.0f64);
    for ((_, step, a), (_, _, b)) in straight.iter().zip(&resumed).filter(|(l, _)| l.1 > from) {
        assert_eq!(a.len(), b.len(), "step {step}");
        for ((ka, va), (kb, vb)) in a.iter().zip(b) {
            assert_eq!(ka, kb);
            assert!(
                (va - vb).abs() <= 1e-6 * va.abs().max(1.0),
                "step {step} {ka}: {va} vs {vb}"
            );
            compared += 1;
            largest = largest.max((va - vb).abs());
        }
    }
    eprintln!(
        "killed after step 12, resumed from ppo-{from}: {compared} values after it, largest difference {largest:e}"
    );
    // keep_last 2 held through the periodic checkpoints.
    let kept = std::fs::read_dir(tmp.path().join("killed/checkpoints"))
        .unwrap()
        .count();
    assert_eq!(kept, 2);
}

#[test]
fn train_resume_continues_a_run_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let config = tmp.path().join("c.ron");
    std::fs::write(
        &config,
        "(sft: (steps: 3, batch_size: 4, demonstrations: 24, eval_examples: 4, eval_every: 100))",
    )
    .unwrap();
    let train = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
            .current_dir(root)
            .args(["train", "--device", "cpu", "--runs-dir"])
            .arg(tmp.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = train(&["--stage", "sft", "--run", "r", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Finished at 3: going on needs more steps, and says so.
    let out = train(&["--resume", "r", "--stage", "sft"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already at step 3 of 3"));
    let out = train(&["--resume", "r", "--stage", "sft", "--steps", "5"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(tmp.path().join("r/checkpoints/sft-5/trainer_state.json").exists());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sft-3"), "{stderr}");
}

#[test]
fn the_workbench_reopens_a_run_with_its_history_and_continues_a_stopped_stage() {
    use rlhf_tui::trainer::protocol::{Command, Event, StageState};
    use std::time::Duration;

    let tmp = tempfile::tempdir().unwrap();
    let config =
        RunConfig::parse("(sft: (steps: 400, batch_size: 4, demonstrations: 24, eval_examples: 4, eval_every: 1000))")
            .unwrap();
    let open = || spawn_worker(RunDir::create(tmp.path(), "wb").unwrap(), config.clone());
    let wait = Duration::from_secs(120);
    let handle = open();
    handle.commands.send(Command::Start(Stage::Sft)).unwrap();
    let mut seen = 0;
    while seen < 3 {
        if let Event::Metrics { step, .. } = handle.events.recv_timeout(wait).unwrap()
            && step > 0
        {
            seen += 1;
        }
    }
    handle.commands.send(Command::Stop).unwrap();
    let stopped_at = loop {
        if let Event::Stage {
            state: StageState::Stopped { .. },
            step,
            ..
        } = handle.events.recv_timeout(wait).unwrap()
        {
            break step;
        }
    };
    handle.commands.send(Command::Shutdown { checkpoint: false }).unwrap();
    while handle.events.recv_timeout(wait).unwrap() != Event::ShutDown {}
    handle.thread.join().unwrap();

    // Reopened: SFT is stopped, not done, and the logged steps come back
    // for the charts first.
    let handle = open();
    let mut replayed = Vec::new();
    loop {
        match handle.events.recv_timeout(wait).unwrap() {
            Event::Ready { stages, .. } => {
                let sft = stages.iter().find(|(s, _)| *s == Stage::Sft).unwrap();
                assert!(matches!(sft.1, StageState::Stopped { .. }), "{sft:?}");
            }
            Event::Metrics { step, values, .. } if values.iter().any(|(k, _)| k == "loss") => replayed.push(step),
            Event::Round { .. } => break,
            _ => {}
        }
    }
    assert_eq!(replayed, (1..=stopped_at).collect::<Vec<_>>());
    // Enter on SFT continues it from the stop.
    handle.commands.send(Command::Start(Stage::Sft)).unwrap();
    let running_from = loop {
        if let Event::Stage {
            state: StageState::Running,
            step,
            ..
        } = handle.events.recv_timeout(wait).unwrap()
        {
            break step;
        }
    };
    assert_eq!(running_from, stopped_at);
    let next = loop {
        if let Event::Metrics { step, .. } = handle.events.recv_timeout(wait).unwrap() {
            break step;
        }
    };
    assert_eq!(next, stopped_at + 1);
    handle.commands.send(Command::Shutdown { checkpoint: false }).unwrap();
    while handle.events.recv_timeout(wait).unwrap() != Event::ShutDown {}
    handle.thread.join().unwrap();
}

#[test]
fn a_reopened_run_shows_the_beta_it_ended_at_and_its_changes() {
    use rlhf_tui::trainer::protocol::{Command, Event, Param, StageState};
    use std::time::Duration;

    let tmp = tempfile::tempdir().unwrap();
    let mut config =
        RunConfig::parse("(ppo: (iterations: 40, batch_size: 4, minibatch_size: 2, ppo_epochs: 1, max_new_tokens: 6))")
            .unwrap();
    config.ppo.policy_init = Some(base());
    config.ppo.reward_init = Some(fresh_reward_model(tmp.path()));
    let open = || spawn_worker(RunDir::create(tmp.path(), "ppo").unwrap(), config.clone());
    let wait = Duration::from_secs(120);
    let until = |handle: &rlhf_tui::trainer::worker::TrainerHandle, want: &dyn Fn(&Event) -> bool| loop {
        let event = handle.events.recv_timeout(wait).unwrap();
        if want(&event) {
            return event;
        }
    };
    let handle = open();
    handle.commands.send(Command::Start(Stage::Ppo)).unwrap();
    until(&handle, &|e| matches!(e, Event::Metrics { step: 1.., .. }));
    handle.commands.send(Command::Set(Param::Beta(0.2))).unwrap();
    handle.commands.send(Command::Stop).unwrap();
    until(&handle, &|e| done_checkpoint(e).is_some());
    handle.commands.send(Command::Shutdown { checkpoint: false }).unwrap();
    until(&handle, &|e| *e == Event::ShutDown);
    handle.thread.join().unwrap();

    // Reopened, the workbench is told the β the run ended at (not the
    // config's 0.05) and the change that brought it there, as a marker;
    // the stage then resumes at 0.2 with nothing to announce.
    let handle = open();
    let ready = until(&handle, &|e| matches!(e, Event::Ready { .. }));
    assert!(matches!(ready, Event::Ready { beta, .. } if beta == 0.2), "{ready:?}");
    let past = until(&handle, &|e| matches!(e, Event::PastChange { .. }));
    assert!(
        matches!(past, Event::PastChange { param: Param::Beta(b), old, .. } if b == 0.2 && old == 0.05),
        "{past:?}"
    );
    handle.commands.send(Command::Start(Stage::Ppo)).unwrap();
    let next = until(&handle, &|e| {
        matches!(
            e,
            Event::ParamChanged { .. }
                | Event::Stage {
                    state: StageState::Running,
                    ..
                }
        )
    });
    assert!(matches!(next, Event::Stage { .. }), "{next:?}");
    handle.commands.send(Command::Shutdown { checkpoint: false }).unwrap();
    until(&handle, &|e| *e == Event::ShutDown);
    handle.thread.join().unwrap();
}

/// A finished stage trained again counts its steps on from its newest
/// checkpoint: the first run's checkpoint, which `rounds.json` or a later
/// stage may name, is never overwritten, and the metrics continue on the
/// step axis.
#[test]
fn a_stage_trained_again_never_overwrites_its_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let config =
        RunConfig::parse("(sft: (steps: 2, batch_size: 4, demonstrations: 24, eval_examples: 4, eval_every: 100))")
            .unwrap();
    let run = RunDir::create(tmp.path(), "again").unwrap();
    let mut first = StageRun::start(Stage::Sft, &config, &run, &device).unwrap();
    steps(&mut first, 2);
    let (first_dir, _) = first.finish(&run).unwrap();
    let written = std::fs::read(first_dir.join("model.safetensors")).unwrap();

    let mut again = StageRun::start(Stage::Sft, &config, &run, &device).unwrap();
    assert_eq!((again.step, again.total), (2, 4));
    steps(&mut again, 2);
    let (again_dir, _) = again.finish(&run).unwrap();
    assert!(
        first_dir.ends_with("sft-2") && again_dir.ends_with("sft-4"),
        "{again_dir:?}"
    );
    assert_eq!(std::fs::read(first_dir.join("model.safetensors")).unwrap(), written);
}
