//! Two rounds of the iterative loop on a tiny config, driven through the
//! trainer's channels as the workbench drives them: SFT; pairs and a
//! ranking labelled (the judge labels every set too); the reward model
//! v1 on the world's pairs plus the run's; PPO; a new round; a fresh pair
//! from PPO's policy labelled; the reward model v2 on every pair so far;
//! PPO continued from its last policy against v2.

mod common;

use std::path::Path;
use std::time::Duration;

use common::trainer::{base, done_checkpoint, spawn_worker};
use rlhf_tui::prefs::rank::training_pairs;
use rlhf_tui::prefs::record::{Judgment, Source};
use rlhf_tui::prefs::store;
use rlhf_tui::run::{Rounds, RunConfig, RunDir};
use rlhf_tui::trainer::protocol::{Choice, Command, Criterion, Event, SampleSet, Stage, StageState, Verdict};
use rlhf_tui::trainer::worker::TrainerHandle;

const WAIT: Duration = Duration::from_secs(300);

/// Events until one matches, and the round last announced on the way;
/// a trainer error fails the test.
fn until_seen(handle: &TrainerHandle, want: impl Fn(&Event) -> bool) -> (Event, Option<(u32, u32)>) {
    let mut round = None;
    loop {
        let event = handle.events.recv_timeout(WAIT).expect("an event in time");
        match &event {
            Event::Error(e) => panic!("trainer error: {e}"),
            Event::Stage {
                state: StageState::Failed(e),
                ..
            } => panic!("stage failed: {e}"),
            _ if want(&event) => return (event, round),
            Event::Round { round: r, rm_version } => round = Some((*r, *rm_version)),
            _ => {}
        }
    }
}

fn until(handle: &TrainerHandle, want: impl Fn(&Event) -> bool) -> Event {
    until_seen(handle, want).0
}

/// Runs a stage to its end; returns its checkpoint's name, the step it
/// started from and the round announced while it ran.
fn run_stage(handle: &TrainerHandle, stage: Stage) -> (String, usize, Option<(u32, u32)>) {
    handle.commands.send(Command::Start(stage)).unwrap();
    let running = until(handle, |e| {
        matches!(
            e,
            Event::Stage {
                state: StageState::Running,
                ..
            }
        )
    });
    let Event::Stage { step: from, .. } = running else {
        unreachable!()
    };
    let (done, round) = until_seen(handle, |e| done_checkpoint(e).is_some());
    let name = Path::new(done_checkpoint(&done).unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    (name, from, round)
}

fn samples(handle: &TrainerHandle, k: usize) -> SampleSet {
    handle.commands.send(Command::RequestSamples { k }).unwrap();
    let Event::Samples(set) = until(handle, |e| matches!(e, Event::Samples(_))) else {
        unreachable!()
    };
    set
}

fn label(handle: &TrainerHandle, set: &SampleSet, verdict: Verdict) {
    let command = Command::Label {
        set: set.id,
        verdict,
        criterion: Criterion::Overall,
    };
    handle.commands.send(command).unwrap();
    until(handle, |e| matches!(e, Event::LabelSaved { .. }));
}

fn round(handle: &TrainerHandle) -> (u32, u32) {
    let Event::Round { round, rm_version } = until(handle, |e| matches!(e, Event::Round { .. })) else {
        unreachable!()
    };
    (round, rm_version)
}

#[test]
fn a_second_round_trains_rm_v2_on_every_pair_so_far_and_continues_ppo() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = RunConfig::parse(
        "(
            sft: (steps: 4, batch_size: 4, demonstrations: 32, eval_examples: 4, eval_every: 4),
            rm: (steps: 3, batch_size: 4, train_pairs: 16, eval_pairs: 8),
            ppo: (iterations: 2, batch_size: 4, minibatch_size: 2, ppo_epochs: 1, max_new_tokens: 6),
            prefs: (rank_k: 3, judge_fraction: 1.0),
        )",
    )
    .unwrap();
    config.sft.init = base();
    let run = RunDir::create(tmp.path(), "loop").unwrap();
    let handle = spawn_worker(run.clone(), config);
    assert_eq!(round(&handle), (1, 0));

    assert_eq!(run_stage(&handle, Stage::Sft), ("sft-4".into(), 0, None));
    // Round 1's judgments: a pair and a ranking of three (3 pairs).
    let pair = samples(&handle, 2);
    assert_eq!(pair.policy, "sft-4");
    assert_eq!(pair.judge.len(), 3, "the judge labelled it under three criteria");
    label(&handle, &pair, Verdict::Choice(Choice::Left));
    let Event::Agreement(rows) = until(&handle, |e| matches!(e, Event::Agreement(_))) else {
        unreachable!()
    };
    let overall = rows.iter().find(|r| r.criterion == Criterion::Overall).unwrap();
    assert_eq!(overall.human_judge().unwrap().units, 1);
    let ranked = samples(&handle, 3);
    label(&handle, &ranked, Verdict::Ranking(vec![2, 0, 1]));

    // A round ends with PPO: a new one before it is refused.
    handle.commands.send(Command::NewRound).unwrap();
    let refused = loop {
        match handle.events.recv_timeout(WAIT).unwrap() {
            Event::Error(e) => break e,
            Event::Round { .. } => panic!("a new round before PPO"),
            _ => {}
        }
    };
    assert!(refused.contains("run PPO before starting round 2"), "{refused}");
    // A finished reward model is announced as the run's version 1.
    assert_eq!(run_stage(&handle, Stage::Rm), ("rm-3".into(), 0, Some((1, 1))));
    assert_eq!(run_stage(&handle, Stage::Ppo), ("ppo-2".into(), 0, None));

    handle.commands.send(Command::NewRound).unwrap();
    assert_eq!(round(&handle), (2, 1));
    // Fresh pairs come from the current PPO policy.
    let fresh = samples(&handle, 2);
    assert_eq!(fresh.policy, "ppo-2");
    label(&handle, &fresh, Verdict::Choice(Choice::Right));

    // RM v2 counts on from v1's steps; PPO continues from ppo-2.
    assert_eq!(run_stage(&handle, Stage::Rm), ("rm-6".into(), 3, Some((2, 2))));
    assert_eq!(run_stage(&handle, Stage::Ppo), ("ppo-4".into(), 2, None));

    handle.commands.send(Command::Shutdown { checkpoint: false }).unwrap();
    until(&handle, |e| *e == Event::ShutDown);
    handle.thread.join().unwrap();

    let rounds = Rounds::load(&run).unwrap();
    assert_eq!(rounds.round, 2);
    let versions: Vec<(u32, u32, usize, usize)> = rounds
        .rm_versions
        .iter()
        .map(|v| (v.version, v.round, v.pairs, v.run_pairs))
        .collect();
    // Each version trained on the 16 world pairs and every pair the run's
    // store held when it started: v1 on the person's pair and ranking of
    // 3 (the judge's labels of those sets give way to the person's), v2
    // also on the round-2 pair and the judge's rankings of the sets PPO
    // streamed in round 1. (A set whose responses came out the same gives
    // no pair, so the counts are read from the store.)
    let judgments = store::load(&run.prefs_path()).unwrap().judgments;
    let up_to = |last: u64| -> Vec<Judgment> { judgments.iter().filter(|j| j.pair <= last).cloned().collect() };
    let v1 = training_pairs(&up_to(ranked.id)).len();
    assert_eq!(versions[0], (1, 1, 16 + v1, v1));
    let before_v2 = up_to(fresh.id);
    let v2 = training_pairs(&before_v2).len();
    assert_eq!(versions[1], (2, 2, 16 + v2, v2));
    let streamed = before_v2
        .iter()
        .filter(|j| j.source == Source::Judge && j.pair > ranked.id && j.pair < fresh.id);
    assert!(streamed.count() > 0, "the judge labelled the sets PPO streamed");
    assert!(v2 >= v1);
    let audit = std::fs::read_to_string(run.root.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"event\":\"round\""), "{audit}");
}
