//! A workbench state built from a fixed sequence of trainer events, as
//! the UI tests and snapshots need it: SFT and RM done with their held-out
//! figures, PPO paused at iteration 40 after a β change at 25, and a pair
//! on screen.

use rlhf_tui::rlhf::data::Prompt;
use rlhf_tui::trainer::protocol::{Event, KlMode, Param, Response, SampleSet, Stage, StageState};
use rlhf_tui::ui::app::App;
use rlhf_tui::ui::update::on_event;

pub fn response(words: &[&str], kl: &[f32], reward: f32, judge: f32, temperature: f32) -> Response {
    let logprobs: Vec<f32> = words.iter().map(|_| -0.5).collect();
    Response {
        tokens: words.iter().map(|w| w.to_string()).collect(),
        ref_logprobs: logprobs.iter().zip(kl).map(|(l, k)| l - k).collect(),
        logprobs,
        reward: Some(reward),
        judge: Some(judge),
        temperature,
    }
}

pub fn pair(id: u64) -> SampleSet {
    SampleSet {
        id,
        prompt: "\n\nHuman: What is a cat?\n\nAssistant:".into(),
        asked: Prompt::question("What is a cat?"),
        policy: "ppo-40".into(),
        judge: Vec::new(),
        responses: vec![
            response(
                &[
                    " Sure", ",", " happy", " to", " help", ".", " A", " cat", " is", " a", " small", " pet", ".",
                ],
                &[1.5, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.5, 0.0, 0.0],
                2.25,
                1.0,
                0.7,
            ),
            response(
                &[
                    " A", " cat", " is", " a", " cat", ".", "\n", " It", " is", " a", " cat", ".",
                ],
                &[0.0; 12],
                -0.5,
                0.4,
                1.3,
            ),
        ],
    }
}

/// Four responses to order, as rank mode shows them.
pub fn rank_set(id: u64) -> SampleSet {
    let words = [
        &[" A", " cat", " is", " a", " small", " pet", "."][..],
        &[" Cats", " purr", "."][..],
        &[" I", " do", " not", " know", "."][..],
        &[" A", " cat", " is", " a", " cat", "."][..],
    ];
    SampleSet {
        id,
        prompt: "\n\nHuman: What is a cat?\n\nAssistant:".into(),
        asked: Prompt::question("What is a cat?"),
        policy: "ppo-40".into(),
        judge: Vec::new(),
        responses: words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                response(
                    w,
                    &vec![0.0; w.len()],
                    1.0 - i as f32 * 0.5,
                    0.9 - i as f32 * 0.2,
                    0.7 + i as f32 * 0.2,
                )
            })
            .collect(),
    }
}

pub fn demo_app(no_color: bool) -> App {
    let mut app = App::new(no_color);
    let mut feed = |event: Event, at: f64| {
        on_event(&mut app, event, at);
    };
    feed(
        Event::Ready {
            device: "cpu (flex)".into(),
            run: "runs/demo".into(),
            base: "assets/base".into(),
            stages: vec![
                (
                    Stage::Sft,
                    StageState::Done {
                        checkpoint: "runs/demo/checkpoints/sft-60".into(),
                    },
                ),
                (
                    Stage::Rm,
                    StageState::Done {
                        checkpoint: "runs/demo/checkpoints/rm-600".into(),
                    },
                ),
                (Stage::Ppo, StageState::NotStarted),
            ],
            beta: 0.05,
            lr: 3e-5,
            temperature: 1.0,
            kl_mode: KlMode::Fixed,
            rank_k: 4,
            judged: 0,
        },
        0.0,
    );
    feed(
        Event::Round {
            round: 1,
            rm_version: 1,
        },
        0.0,
    );
    for step in 1..=60 {
        let loss = 2.0 / (1.0 + step as f64 / 10.0);
        feed(
            Event::Metrics {
                stage: Stage::Sft,
                step,
                values: vec![("loss".into(), loss), ("entropy".into(), 1.0 + loss / 4.0)],
            },
            step as f64 * 0.2,
        );
    }
    // The finished stages' held-out evaluations.
    feed(
        Event::Metrics {
            stage: Stage::Sft,
            step: 60,
            values: vec![("eval/loss".into(), 0.92), ("eval/judge_score_mean".into(), 0.874)],
        },
        12.0,
    );
    feed(
        Event::Metrics {
            stage: Stage::Rm,
            step: 600,
            values: vec![("eval/accuracy".into(), 0.908), ("eval/ece".into(), 0.031)],
        },
        12.0,
    );
    feed(
        Event::Stage {
            stage: Stage::Ppo,
            state: StageState::Starting,
            step: 0,
            total: 100,
        },
        20.0,
    );
    feed(
        Event::Stage {
            stage: Stage::Ppo,
            state: StageState::Running,
            step: 0,
            total: 100,
        },
        21.0,
    );
    for step in 1..=40 {
        let t = step as f64;
        let beta = if step > 25 { 0.1 } else { 0.05 };
        feed(
            Event::Metrics {
                stage: Stage::Ppo,
                step,
                values: vec![
                    ("objective/scores".into(), 1.2 + t / 30.0),
                    ("objective/rlhf_reward".into(), 1.0 + t / 40.0),
                    ("objective/kl".into(), (t / 10.0).min(3.0)),
                    ("objective/kl_coef".into(), beta),
                    ("loss/policy_avg".into(), -0.01 * (t % 5.0)),
                    ("loss/value_avg".into(), 0.5 / t),
                    ("lr".into(), 3e-5),
                ],
            },
            21.0 + t * 4.0,
        );
        if step == 25 {
            feed(
                Event::ParamChanged {
                    param: Param::Beta(0.1),
                    old: 0.05,
                    step: 25,
                },
                21.0 + t * 4.0,
            );
        }
    }
    feed(
        Event::Stage {
            stage: Stage::Ppo,
            state: StageState::Paused,
            step: 40,
            total: 100,
        },
        190.0,
    );
    feed(Event::Samples(pair(7)), 190.0);
    app
}

/// The trainer's word that `stage` is in `state` at `step` of `total`.
pub fn stage_event(stage: Stage, state: StageState, step: usize, total: usize) -> Event {
    Event::Stage {
        stage,
        state,
        step,
        total,
    }
}

/// One metric of `stage` at `step`, as the trainer reports it.
pub fn metric(app: &mut App, stage: Stage, step: usize, key: &str, value: f64) {
    let values = vec![(key.to_string(), value)];
    on_event(app, Event::Metrics { stage, step, values }, 200.0);
}
