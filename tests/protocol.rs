//! The trainer thread through its channels, on small configs: pause holds
//! the stage within one step and resume releases it; a β change shows in
//! `objective/kl_coef` from the next rollout and in `audit.jsonl`; one step
//! while paused is exactly one step; pairs carry per-token log-probs under
//! policy and reference; judgments and retractions reach `prefs.jsonl`
//! before they are confirmed; a stage that cannot start says why.

use std::path::Path;
use std::time::Duration;

mod common;

use common::trainer::{base, done_checkpoint, fresh_reward_model, spawn_worker};
use crossbeam_channel::RecvTimeoutError;
use rlhf_tui::run::{RunConfig, RunDir};
use rlhf_tui::trainer::protocol::{Choice, Command, Criterion, Event, Param, Stage, StageState, Verdict};
use rlhf_tui::trainer::worker::TrainerHandle;

const WAIT: Duration = Duration::from_secs(240);

fn start(dir: &Path, config: RunConfig) -> TrainerHandle {
    let handle = spawn_worker(RunDir::create(dir, "protocol").unwrap(), config);
    assert!(matches!(next(&handle), Event::Ready { .. }));
    handle
}

fn next(handle: &TrainerHandle) -> Event {
    handle.events.recv_timeout(WAIT).expect("an event in time")
}

/// Events until one matches, returning it and those before it.
fn until(handle: &TrainerHandle, want: impl Fn(&Event) -> bool) -> (Event, Vec<Event>) {
    let mut seen = Vec::new();
    loop {
        let event = next(handle);
        if let Event::Error(e) = &event {
            panic!("trainer error: {e}");
        }
        if want(&event) {
            return (event, seen);
        }
        seen.push(event);
    }
}

fn metric(event: &Event, key: &str) -> Option<f64> {
    match event {
        Event::Metrics { values, .. } => values.iter().find(|(k, _)| k == key).map(|(_, v)| *v),
        _ => None,
    }
}

fn is_step_metrics(event: &Event) -> bool {
    matches!(event, Event::Metrics { step, .. } if *step > 0) && metric(event, "eval/judge_score_mean").is_none()
}

fn audit(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("protocol/audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn ppo_pauses_within_a_step_and_takes_beta_from_the_next_rollout() {
    let tmp = tempfile::tempdir().unwrap();
    let rm_dir = fresh_reward_model(tmp.path());
    let mut config = RunConfig::parse(include_str!("fixtures/workbench.ron")).unwrap();
    config.ppo.policy_init = Some(base());
    config.ppo.reward_init = Some(rm_dir);
    let handle = start(tmp.path(), config);

    handle.commands.send(Command::Start(Stage::Ppo)).unwrap();
    let (first, _) = until(&handle, is_step_metrics);
    assert_eq!(metric(&first, "objective/kl_coef"), Some(0.05));
    // Every PPO iteration streams a fresh pair from the updated policy.
    let (pair, _) = until(&handle, |e| matches!(e, Event::Samples(_)));
    let Event::Samples(pair) = pair else { unreachable!() };
    assert_eq!(pair.policy, "ppo-1");

    handle.commands.send(Command::Pause).unwrap();
    let (paused, _) = until(&handle, |e| {
        matches!(
            e,
            Event::Stage {
                state: StageState::Paused,
                ..
            }
        )
    });
    let Event::Stage { step: paused_at, .. } = paused else {
        unreachable!()
    };
    // Held at an optimizer step: no iteration finishes while paused.
    match handle.events.recv_timeout(Duration::from_secs(3)) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("an event while paused: {other:?}"),
    }

    // A pair is drawn while paused, wherever in the iteration the pause
    // fell, and the stage stays paused.
    handle.commands.send(Command::RequestSamples { k: 2 }).unwrap();
    match next(&handle) {
        Event::Samples(set) => assert!(set.policy.starts_with("ppo-"), "{}", set.policy),
        other => panic!("a pair while paused, not {other:?}"),
    }
    match handle.events.recv_timeout(Duration::from_secs(1)) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("an event while paused: {other:?}"),
    }

    handle.commands.send(Command::Set(Param::Beta(0.2))).unwrap();
    let (changed, _) = until(&handle, |e| matches!(e, Event::ParamChanged { .. }));
    assert_eq!(
        changed,
        Event::ParamChanged {
            param: Param::Beta(0.2),
            old: 0.05,
            step: paused_at
        }
    );
    handle.commands.send(Command::Resume).unwrap();
    // Paused between iterations, the next rollout samples at the new β;
    // paused inside one, that iteration keeps the β its batch was shaped
    // with, and the rollout after it is the first at the new one.
    let (resumed, _) = until(&handle, is_step_metrics);
    let beta = metric(&resumed, "objective/kl_coef").unwrap();
    assert!(beta == 0.2 || beta == 0.05, "{beta}");
    let (after, _) = until(&handle, is_step_metrics);
    assert_eq!(metric(&after, "objective/kl_coef"), Some(0.2));

    handle.commands.send(Command::Shutdown { checkpoint: false }).unwrap();
    until(&handle, |e| *e == Event::ShutDown);
    handle.thread.join().unwrap();

    let lines = audit(tmp.path());
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["start", "pause", "set", "resume", "stop"]);
    let set = &lines[2];
    assert_eq!(
        (set["param"].as_str(), set["old"].as_f64(), set["new"].as_f64()),
        (Some("beta"), Some(0.05), Some(0.2))
    );
    assert_eq!(set["stage"], "ppo");
    assert_eq!(set["step"].as_u64(), Some(paused_at as u64));
    assert!(set["time"].as_f64().unwrap() > 1.7e9);
}

/// GRPO through the channels: K is refused while no GRPO or RLOO runs,
/// taken live while one does (from the next rollout, audited), and each
/// iteration streams a pair from the updated policy, as PPO's does.
#[test]
fn grpo_takes_k_live_from_the_next_rollout() {
    let tmp = tempfile::tempdir().unwrap();
    let rm_dir = fresh_reward_model(tmp.path());
    let mut config = RunConfig::parse(
        "(grpo: (iterations: 30, prompts_per_iteration: 2, group_size: 2, minibatch_size: 4, epochs: 1, max_new_tokens: 8))",
    )
    .unwrap();
    config.grpo.policy_init = Some(base());
    config.grpo.reward_init = Some(rm_dir);
    let handle = start(tmp.path(), config);

    handle.commands.send(Command::Set(Param::GroupSize(3))).unwrap();
    let refused = std::iter::repeat_with(|| next(&handle))
        .find(|e| matches!(e, Event::Error(_)))
        .unwrap();
    assert!(
        matches!(&refused, Event::Error(why) if why.contains("GRPO's and RLOO's")),
        "{refused:?}"
    );

    handle.commands.send(Command::Start(Stage::Grpo)).unwrap();
    let (live, _) = until(&handle, |e| matches!(e, Event::Live { .. }));
    assert!(
        matches!(
            live,
            Event::Live {
                beta: 0.0,
                group_size: Some(2),
                ..
            }
        ),
        "{live:?}"
    );
    let (first, _) = until(&handle, is_step_metrics);
    assert_eq!(metric(&first, "num_generations"), Some(2.0));
    let (pair, _) = until(&handle, |e| matches!(e, Event::Samples(_)));
    let Event::Samples(pair) = pair else { unreachable!() };
    assert_eq!(pair.policy, "grpo-1");

    handle.commands.send(Command::Set(Param::GroupSize(3))).unwrap();
    let (changed, _) = until(&handle, |e| matches!(e, Event::ParamChanged { .. }));
    let Event::ParamChanged { param, old, .. } = changed else {
        unreachable!()
    };
    assert_eq!((param, old), (Param::GroupSize(3), 2.0));
    // The iteration under way keeps its batch; the one after samples 3 a prompt.
    let (_, _) = until(&handle, is_step_metrics);
    let (after, _) = until(&handle, is_step_metrics);
    assert_eq!(metric(&after, "num_generations"), Some(3.0));

    handle.commands.send(Command::Shutdown { checkpoint: false }).unwrap();
    until(&handle, |e| *e == Event::ShutDown);
    handle.thread.join().unwrap();
    let lines = audit(tmp.path());
    let set = lines.iter().find(|l| l["event"] == "set").unwrap();
    assert_eq!(
        (set["param"].as_str(), set["stage"].as_str(), set["new"].as_f64()),
        (Some("group_size"), Some("grpo"), Some(3.0))
    );
}

#[test]
fn sft_steps_once_while_paused_and_judgments_reach_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let config = RunConfig::parse(include_str!("fixtures/workbench.ron")).unwrap();
    let handle = start(tmp.path(), config);

    // A stage that cannot start says what to run first.
    handle.commands.send(Command::Start(Stage::Rm)).unwrap();
    let (failed, _) = until(&handle, |e| {
        matches!(
            e,
            Event::Stage {
                state: StageState::Failed(_),
                ..
            }
        )
    });
    let Event::Stage {
        state: StageState::Failed(why),
        ..
    } = failed
    else {
        unreachable!()
    };
    assert!(why.contains("train --stage sft --run protocol"), "{why}");
    assert!(
        why.contains("Enter on SFT in the workbench") && why.contains("--runs-dir"),
        "{why}"
    );

    // A pair from the base model while nothing runs.
    handle.commands.send(Command::RequestSamples { k: 2 }).unwrap();
    let (pair, _) = until(&handle, |e| matches!(e, Event::Samples(_)));
    let Event::Samples(pair) = pair else { unreachable!() };
    assert_eq!(pair.policy, "base");
    // Every set shown is kept in samples.jsonl with its texts and scores.
    let samples = std::fs::read_to_string(tmp.path().join("protocol/samples.jsonl")).unwrap();
    let kept: serde_json::Value = serde_json::from_str(samples.lines().last().unwrap()).unwrap();
    assert_eq!(kept["id"].as_u64(), Some(pair.id));
    assert_eq!(kept["responses"][1]["text"].as_str().unwrap(), pair.responses[1].text());
    // Spread around the live temperature 1.0 by the default ±0.3.
    let temperatures: Vec<f32> = pair.responses.iter().map(|r| r.temperature).collect();
    assert!((temperatures[0] - 0.7).abs() < 1e-6 && (temperatures[1] - 1.3).abs() < 1e-6);
    for response in &pair.responses {
        assert!(!response.tokens.is_empty());
        assert_eq!(response.logprobs.len(), response.tokens.len());
        assert_eq!(response.ref_logprobs.len(), response.tokens.len());
        // Before SFT the policy is its own reference: no KL anywhere (the
        // sampler's cached pass and the full pass agree to rounding).
        let kl = response
            .logprobs
            .iter()
            .zip(&response.ref_logprobs)
            .map(|(a, b)| (a - b).abs());
        assert!(kl.fold(0.0, f32::max) < 1e-3);
        assert!(response.logprobs.iter().all(|l| *l <= 0.0));
    }

    handle
        .commands
        .send(Command::Label {
            set: pair.id,
            verdict: Verdict::Choice(Choice::Right),
            criterion: Criterion::Helpful,
        })
        .unwrap();
    let (saved, _) = until(&handle, |e| matches!(e, Event::LabelSaved { .. }));
    assert_eq!(
        saved,
        Event::LabelSaved {
            set: pair.id,
            verdict: Verdict::Choice(Choice::Right),
        }
    );
    // On disk before the confirmation was sent.
    let records = || -> Vec<serde_json::Value> {
        let prefs = std::fs::read_to_string(tmp.path().join("protocol/prefs.jsonl")).unwrap();
        prefs.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let human: Vec<serde_json::Value> = records().into_iter().filter(|r| r["source"] == "human").collect();
    assert_eq!(human.len(), 1);
    let record = &human[0];
    assert_eq!(record["choice"], "right");
    assert_eq!(record["criteria"], serde_json::json!(["helpful"]));
    assert_eq!(record["annotator"], "ann");
    assert_eq!(record["chosen"].as_str().unwrap(), pair.responses[1].text());
    assert_eq!(record["rejected"].as_str().unwrap(), pair.responses[0].text());
    // Where the judge labelled the pair too, its verdicts were stored first.
    let judged = records().iter().filter(|r| r["source"] == "judge").count();
    assert_eq!(judged, pair.judge.len());
    handle.commands.send(Command::Undo { set: pair.id }).unwrap();
    assert_eq!(
        until(&handle, |e| matches!(e, Event::Retracted { .. })).0,
        Event::Retracted { set: pair.id }
    );
    let retraction = records().pop().unwrap();
    assert_eq!(retraction["retract"].as_u64(), Some(pair.id));
    assert_eq!(retraction["annotator"], "ann");

    // Rank mode: four responses at four temperatures, ranked and stored.
    handle.commands.send(Command::RequestSamples { k: 4 }).unwrap();
    let (set, _) = until(&handle, |e| matches!(e, Event::Samples(_)));
    let Event::Samples(set) = set else { unreachable!() };
    assert_eq!(set.responses.len(), 4);
    assert!(set.responses.windows(2).all(|w| w[0].temperature < w[1].temperature));
    // A ranking that leaves one out is refused and nothing is stored.
    let lines = records().len();
    let bad = Verdict::Ranking(vec![0, 1, 1, 2]);
    handle
        .commands
        .send(Command::Label {
            set: set.id,
            verdict: bad,
            criterion: Criterion::Overall,
        })
        .unwrap();
    assert!(matches!(next(&handle), Event::Error(e) if e.contains("each of its 4 responses once")));
    assert_eq!(records().len(), lines);
    let order = Verdict::Ranking(vec![3, 0, 2, 1]);
    handle
        .commands
        .send(Command::Label {
            set: set.id,
            verdict: order.clone(),
            criterion: Criterion::Overall,
        })
        .unwrap();
    until(&handle, |e| matches!(e, Event::LabelSaved { .. }));
    assert_eq!(records().pop().unwrap()["ranking"], serde_json::json!([3, 0, 2, 1]));

    handle.commands.send(Command::Start(Stage::Sft)).unwrap();
    until(&handle, |e| {
        is_step_metrics(e) && matches!(e, Event::Metrics { step, .. } if *step >= 3)
    });
    handle.commands.send(Command::Pause).unwrap();
    let (paused, before) = until(&handle, |e| {
        matches!(
            e,
            Event::Stage {
                state: StageState::Paused,
                ..
            }
        )
    });
    let Event::Stage { step, .. } = paused else {
        unreachable!()
    };
    // The pause names the last step taken.
    if let Some(Event::Metrics { step: last, .. }) = before.iter().rev().find(|e| is_step_metrics(e)) {
        assert_eq!(*last, step);
    }
    handle.commands.send(Command::StepOnce).unwrap();
    let (one, _) = until(&handle, is_step_metrics);
    let Event::Metrics { step: stepped, .. } = one else {
        unreachable!()
    };
    assert_eq!(stepped, step + 1);
    match handle.events.recv_timeout(Duration::from_secs(2)) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("more than one step: {other:?}"),
    }

    // Stop keeps a checkpoint at the step reached.
    handle.commands.send(Command::Stop).unwrap();
    let (done, _) = until(&handle, |e| done_checkpoint(e).is_some());
    let checkpoint = done_checkpoint(&done).unwrap();
    assert!(checkpoint.ends_with(&format!("sft-{stepped}")), "{checkpoint}");
    assert!(Path::new(&checkpoint).join("model.safetensors").exists());
    handle.commands.send(Command::Shutdown { checkpoint: false }).unwrap();
    until(&handle, |e| *e == Event::ShutDown);
    handle.thread.join().unwrap();
}

#[test]
fn a_nan_pauses_the_stage_and_a_lower_learning_rate_carries_on() {
    let tmp = tempfile::tempdir().unwrap();
    // A learning rate of 1e30: the first update is finite and ruins the
    // weights; the second step's loss is NaN.
    let config = RunConfig::parse(
        "(sft: (steps: 40, batch_size: 4, demonstrations: 32, eval_examples: 4, eval_every: 100, lr: 1e30, warmup_steps: 0))",
    )
    .unwrap();
    let handle = start(tmp.path(), config);
    handle.commands.send(Command::Start(Stage::Sft)).unwrap();
    let error = loop {
        match next(&handle) {
            Event::Error(e) => break e,
            Event::Stage {
                state: StageState::Done { .. } | StageState::Stopped { .. },
                ..
            } => panic!("no NaN reported"),
            _ => {}
        }
    };
    assert!(error.starts_with("SFT step 2: loss is NaN"), "{error}");
    assert!(error.contains("lower the learning rate"), "{error}");
    let (paused, _) = until(&handle, |e| {
        matches!(
            e,
            Event::Stage {
                state: StageState::Paused,
                ..
            }
        )
    });
    assert!(matches!(paused, Event::Stage { step: 2, .. }), "{paused:?}");
    match handle.events.recv_timeout(Duration::from_secs(2)) {
        Err(RecvTimeoutError::Timeout) => {}
        other => panic!("an event while paused: {other:?}"),
    }

    // The weights went back to the last ones with a finite loss: at a sane
    // learning rate training goes on.
    handle.commands.send(Command::Set(Param::LearningRate(1e-4))).unwrap();
    handle.commands.send(Command::Resume).unwrap();
    let mut losses = Vec::new();
    while losses.len() < 5 {
        let (event, _) = until(&handle, is_step_metrics);
        losses.push(metric(&event, "loss").unwrap());
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    handle.commands.send(Command::Shutdown { checkpoint: false }).unwrap();
    until(&handle, |e| *e == Event::ShutDown);
    handle.thread.join().unwrap();
    let events: Vec<String> = audit(tmp.path())
        .iter()
        .map(|l| l["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(&events[..5], ["start", "nonfinite", "pause", "set", "resume"]);
}
