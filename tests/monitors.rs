//! Every alert provoked on purpose, through the trainer thread: a reward
//! model taught to love one word ("star", once or twice, beats a good
//! answer), then PPO from the base model against it with no KL penalty
//! and a learning rate ten times the default. The policy learns to say
//! little more than "star": the reward model's score climbs while the
//! judge's falls (reward hacking), the KL runs away, entropy and
//! distinct-n collapse, responses shrink to a token or two, and the large
//! steps push the ratio, the clip fraction and approx-KL past their
//! limits. Each alert must fire, reach the workbench as an event and the
//! audit log. (With answers of up to eight stars the policy ran to the
//! length cap instead, only a tenth past where it started, and whether
//! its responses drifted by half turned on the last bits of the sampling.)

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::trainer::{base, spawn_worker};
use rlhf_tui::run::{RunConfig, RunDir};
use rlhf_tui::trainer::protocol::{AlertKind, Command, Event, Stage, StageState};
use rlhf_tui::trainer::worker::TrainerHandle;
use rlhf_tui::world::corpus::sft_pairs;
use rlhf_tui::world::generator::prompt_text;

const WAIT: Duration = Duration::from_secs(300);

/// Every kind of alert but sycophancy, which needs the world's claims
/// (tests/sycophancy.rs provokes it).
const ALL: [AlertKind; 8] = [
    AlertKind::RewardHacking,
    AlertKind::RunawayKl,
    AlertKind::EntropyCollapse,
    AlertKind::LowDiversity,
    AlertKind::LengthDrift,
    AlertKind::RatioOff,
    AlertKind::HighClipFraction,
    AlertKind::ApproxKlSpike,
];

fn kinds(alerts: &[(AlertKind, usize, String)]) -> BTreeSet<AlertKind> {
    alerts.iter().map(|(k, _, _)| *k).collect()
}

/// Events until a stage is done, with the alerts raised on the way. The
/// stage is stopped once every kind of alert has fired: where in a run
/// this unstable each collapse comes depends on the last bits of the
/// arithmetic, so the stage is given room and ended when it has shown all.
fn run_stage(handle: &TrainerHandle, stage: Stage) -> Vec<(AlertKind, usize, String)> {
    handle.commands.send(Command::Start(stage)).unwrap();
    let mut alerts = Vec::new();
    let mut stopping = false;
    loop {
        match handle.events.recv_timeout(WAIT).expect("an event in time") {
            Event::Error(e) => panic!("trainer error: {e}"),
            Event::Stage {
                state: StageState::Failed(e),
                ..
            } => panic!("{stage:?} failed: {e}"),
            Event::Stage {
                state: StageState::Done { .. } | StageState::Stopped { .. },
                ..
            } => return alerts,
            Event::Alert(alert) => {
                alerts.push((alert.kind, alert.step, alert.message));
                if !stopping && kinds(&alerts).len() == ALL.len() {
                    handle.commands.send(Command::Stop).unwrap();
                    stopping = true;
                }
            }
            _ => {}
        }
    }
}

#[test]
fn a_reward_model_that_loves_one_word_sets_off_every_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("star.jsonl");
    let lines: Vec<String> = sft_pairs(0, 400)
        .into_iter()
        .enumerate()
        .map(|(i, (prompt, response))| {
            let stars = vec!["star"; 1 + i % 2].join(" ");
            serde_json::json!({
                "prompt": prompt_text(&prompt),
                "chosen": format!(" {stars}."),
                "rejected": format!(" {response}"),
            })
            .to_string()
        })
        .collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let mut config = RunConfig::parse(
        "(
            rm: (steps: 60, batch_size: 16, warmup_steps: 5, max_grad_norm: 1.0),
            ppo: (iterations: 60, batch_size: 16, minibatch_size: 8, ppo_epochs: 4,
                  max_new_tokens: 24, lr: 0.001, beta: 0.0),
        )",
    )
    .unwrap();
    config.rm.init = Some(base());
    config.rm.data = Some(data);
    config.ppo.policy_init = Some(base());
    let run = RunDir::create(tmp.path(), "hack").unwrap();
    let handle = spawn_worker(run.clone(), config);

    // The reward model learns its taste: no alerts outside PPO.
    assert_eq!(run_stage(&handle, Stage::Rm), []);
    let alerts = run_stage(&handle, Stage::Ppo);
    handle.commands.send(Command::Shutdown { checkpoint: false }).unwrap();
    while handle.events.recv_timeout(WAIT).unwrap() != Event::ShutDown {}
    handle.thread.join().unwrap();

    for (kind, step, message) in &alerts {
        eprintln!("{step:>3} {}: {message}", kind.title());
    }
    assert_eq!(kinds(&alerts), ALL.into_iter().collect(), "{alerts:?}");
    let hacking = alerts.iter().find(|(k, _, _)| *k == AlertKind::RewardHacking).unwrap();
    assert!(hacking.2.contains("RM score rose"), "{}", hacking.2);

    let audit = std::fs::read_to_string(run.root.join("audit.jsonl")).unwrap();
    let logged = audit.lines().filter(|l| l.contains("\"event\":\"alert\"")).count();
    assert_eq!(logged, alerts.len());
}
