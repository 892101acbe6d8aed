//! The workbench's state machine without a terminal: keys become
//! messages, messages and trainer events change the state and return the
//! commands the driver will send.

mod common;

use common::ui::{demo_app, pair, rank_set, stage_event};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use rlhf_tui::trainer::protocol::{Choice, Command, Criterion, Event, Param, Stage, StageState, Verdict};
use rlhf_tui::ui::app::{App, Overlay, Pane};
use rlhf_tui::ui::keys::key_to_msg;
use rlhf_tui::ui::update::{Effect, on_event, update};

/// Presses `keys` one by one; returns every effect.
fn press(app: &mut App, keys: &[KeyCode]) -> Vec<Effect> {
    let mut effects = Vec::new();
    for &code in keys {
        if let Some(msg) = key_to_msg(&app.overlay, KeyEvent::new(code, KeyModifiers::NONE)) {
            effects.extend(update(app, msg));
        }
    }
    effects
}

fn chars(text: &str) -> Vec<KeyCode> {
    text.chars().map(KeyCode::Char).collect()
}

#[test]
fn space_pauses_a_running_stage_and_resumes_a_paused_one() {
    let mut app = demo_app(false);
    assert!(app.paused());
    assert_eq!(press(&mut app, &[KeyCode::Char(' ')]), [Effect::Send(Command::Resume)]);
    on_event(
        &mut app,
        Event::Stage {
            stage: Stage::Ppo,
            state: StageState::Running,
            step: 40,
            total: 100,
        },
        200.0,
    );
    assert_eq!(press(&mut app, &[KeyCode::Char(' ')]), [Effect::Send(Command::Pause)]);
    assert_eq!(press(&mut app, &[KeyCode::Char('.')]), [], "one step only while paused");
    // Past its last step there is nothing left to pause: the key says so.
    on_event(&mut app, stage_event(Stage::Ppo, StageState::Running, 100, 100), 300.0);
    assert_eq!(press(&mut app, &[KeyCode::Char(' ')]), []);
    let message = app.message.as_ref().map(|(text, _)| text.as_str()).unwrap_or_default();
    assert!(
        message.contains("held-out evaluation and checkpoint end it"),
        "{message}"
    );
}

#[test]
fn the_beta_editor_checks_the_value_before_sending_it() {
    let mut app = demo_app(false);
    press(&mut app, &[KeyCode::Char('b')]);
    let Overlay::Editor(editor) = &app.overlay else {
        panic!("no editor")
    };
    assert_eq!(editor.input, "0.1", "the value set at step 25");
    // Keys that mean something else are text in the editor.
    let mut keys = vec![KeyCode::Backspace; 3];
    keys.extend(chars("-1q"));
    keys.push(KeyCode::Enter);
    assert_eq!(press(&mut app, &keys), []);
    let Overlay::Editor(editor) = &app.overlay else {
        panic!("the editor closed")
    };
    assert_eq!(editor.input, "-1q");
    assert_eq!(editor.error.as_deref(), Some("not a number"));
    let mut keys = vec![KeyCode::Backspace];
    keys.push(KeyCode::Enter);
    press(&mut app, &keys);
    let Overlay::Editor(editor) = &app.overlay else {
        panic!("the editor closed")
    };
    assert_eq!(editor.error.as_deref(), Some("β must be a number ≥ 0"));
    let mut keys = vec![KeyCode::Backspace; 2];
    keys.extend(chars("0.2"));
    keys.push(KeyCode::Enter);
    assert_eq!(press(&mut app, &keys), [Effect::Send(Command::Set(Param::Beta(0.2)))]);
    assert_eq!(app.overlay, Overlay::None);
    // The status shows the new value when the trainer confirms it.
    assert_eq!(app.params.beta, 0.1);
    on_event(
        &mut app,
        Event::ParamChanged {
            param: Param::Beta(0.2),
            old: 0.1,
            step: 40,
        },
        200.0,
    );
    assert_eq!(app.params.beta, 0.2);
    assert_eq!(app.markers.last().unwrap().step, 40);

    press(&mut app, &[KeyCode::Char('l')]);
    let mut keys = vec![KeyCode::Backspace; 8];
    keys.extend(chars("1e-4"));
    keys.push(KeyCode::Enter);
    assert_eq!(
        press(&mut app, &keys),
        [Effect::Send(Command::Set(Param::LearningRate(1e-4)))]
    );
    // Esc leaves without sending.
    assert_eq!(
        press(&mut app, &[KeyCode::Char('T'), KeyCode::Char('9'), KeyCode::Esc]),
        []
    );
}

#[test]
fn a_judgment_is_confirmed_only_once_stored_and_undo_brings_the_pair_back() {
    let mut app = demo_app(false);
    on_event(&mut app, Event::Samples(pair(8)), 200.0);
    assert_eq!(
        press(&mut app, &[KeyCode::Char('1')]),
        [Effect::Send(Command::Label {
            set: 7,
            verdict: Verdict::Choice(Choice::Left),
            criterion: Criterion::Overall,
        })]
    );
    // Not yet on disk: still on screen, and a second judgment waits.
    assert_eq!(app.shown().unwrap().id, 7);
    assert_eq!(press(&mut app, &[KeyCode::Char('2')]), []);
    // Nor can a new pair push it off screen before it is stored.
    assert_eq!(press(&mut app, &[KeyCode::Char('r')]), []);
    assert_eq!(app.shown().unwrap().id, 7);
    on_event(
        &mut app,
        Event::LabelSaved {
            set: 7,
            verdict: Verdict::Choice(Choice::Left),
        },
        201.0,
    );
    assert_eq!(app.shown().unwrap().id, 8);
    assert_eq!(app.labels_saved, 1);

    assert_eq!(
        press(&mut app, &[KeyCode::Char('u')]),
        [Effect::Send(Command::Undo { set: 7 })]
    );
    on_event(&mut app, Event::Retracted { set: 7 }, 202.0);
    assert_eq!(app.shown().unwrap().id, 7, "back on screen to judge again");
    assert_eq!(app.labels_saved, 0);

    // The last pair judged: the workbench asks for another.
    on_event(
        &mut app,
        Event::LabelSaved {
            set: 7,
            verdict: Verdict::Choice(Choice::Tie),
        },
        203.0,
    );
    let effects = on_event(
        &mut app,
        Event::LabelSaved {
            set: 8,
            verdict: Verdict::Choice(Choice::Skip),
        },
        204.0,
    );
    assert_eq!(effects, [Effect::Send(Command::RequestSamples { k: 2 })]);
    assert!(app.shown().is_none());
    assert_eq!(press(&mut app, &[KeyCode::Char('x')]), []);
}

#[test]
fn rank_mode_orders_k_responses_with_the_digits_under_the_chosen_criterion() {
    let mut app = demo_app(false);
    assert_eq!(
        press(&mut app, &[KeyCode::Char('R')]),
        [Effect::Send(Command::RequestSamples { k: 4 })]
    );
    assert!(app.shown().is_none(), "the pair made way for sets of four");
    // A pair asked for before the switch, arriving after it, is dropped.
    on_event(&mut app, Event::Samples(pair(8)), 199.0);
    assert!(app.shown().is_none(), "a pair shown in rank mode");
    on_event(&mut app, Event::Samples(rank_set(9)), 200.0);
    // Tie is for pairs; a criterion is chosen before ranking.
    assert_eq!(press(&mut app, &[KeyCode::Char('t')]), []);
    assert!(app.message.as_ref().unwrap().0.contains("for pairs"));
    assert_eq!(press(&mut app, &[KeyCode::Char('C'), KeyCode::Char('C')]), []);
    assert_eq!(app.criterion, Criterion::Truthful);
    // 3, then 1 taken back, then 2 and 4: the one left (1) is last.
    assert_eq!(
        press(
            &mut app,
            &[
                KeyCode::Char('3'),
                KeyCode::Char('1'),
                KeyCode::Backspace,
                KeyCode::Char('2')
            ]
        ),
        []
    );
    assert_eq!(app.ranking, [2, 1]);
    // A digit twice or past K is ignored.
    assert_eq!(press(&mut app, &[KeyCode::Char('2'), KeyCode::Char('7')]), []);
    assert_eq!(
        press(&mut app, &[KeyCode::Char('4')]),
        [Effect::Send(Command::Label {
            set: 9,
            verdict: Verdict::Ranking(vec![2, 1, 3, 0]),
            criterion: Criterion::Truthful,
        })]
    );
    let effects = on_event(
        &mut app,
        Event::LabelSaved {
            set: 9,
            verdict: Verdict::Ranking(vec![2, 1, 3, 0]),
        },
        201.0,
    );
    assert_eq!(effects, [Effect::Send(Command::RequestSamples { k: 4 })]);
    assert_eq!(app.message.as_ref().unwrap().0, "saved: 3 > 2 > 4 > 1");
    assert!(app.ranking.is_empty());
    // Typing the fourth place too (1, placed last already) is not the
    // next set's first place.
    on_event(&mut app, Event::Samples(rank_set(10)), 202.0);
    assert_eq!(press(&mut app, &[KeyCode::Char('1')]), []);
    assert!(app.ranking.is_empty(), "{:?}", app.ranking);
    press(&mut app, &[KeyCode::Char('1')]);
    assert_eq!(app.ranking, [0], "a second press places it");
}

#[test]
fn a_new_round_asks_for_fresh_sets_moves_to_the_rm_and_is_refused_while_a_stage_runs() {
    let mut app = demo_app(false);
    assert_eq!(press(&mut app, &[KeyCode::Char('N')]), [], "PPO is paused, not stopped");
    on_event(&mut app, ppo_stopped_at_40(), 200.0);
    assert_eq!(
        press(&mut app, &[KeyCode::Char('N')]),
        [Effect::Send(Command::NewRound)]
    );
    let effects = on_event(
        &mut app,
        Event::Round {
            round: 2,
            rm_version: 1,
        },
        201.0,
    );
    assert_eq!(effects, [Effect::Send(Command::RequestSamples { k: 2 })]);
    assert!(app.shown().is_none(), "sets from the last round's policy make way");
    assert_eq!((app.round, app.rm_version), (2, 1));
    assert_eq!(
        app.stages[app.selected].stage,
        Some(Stage::Rm),
        "Enter trains the next RM"
    );
}

#[test]
fn quitting_while_a_stage_runs_asks_first() {
    let mut app = demo_app(false);
    assert_eq!(press(&mut app, &[KeyCode::Char('q')]), []);
    assert_eq!(app.overlay, Overlay::ConfirmQuit);
    assert_eq!(press(&mut app, &[KeyCode::Esc]), []);
    assert_eq!(app.overlay, Overlay::None);
    assert_eq!(
        press(&mut app, &[KeyCode::Char('q'), KeyCode::Char('y')]),
        [Effect::Send(Command::Shutdown { checkpoint: true })]
    );
    // The workbench leaves once the trainer has finished.
    assert_eq!(on_event(&mut app, Event::ShutDown, 300.0), [Effect::Quit]);

    // Nothing running: quit at once, without a checkpoint.
    let mut idle = App::new(false);
    assert_eq!(
        press(&mut idle, &[KeyCode::Char('q')]),
        [Effect::Send(Command::Shutdown { checkpoint: false })]
    );
}

#[test]
fn panes_cursor_and_stage_start() {
    let mut app = demo_app(false);
    assert_eq!(app.focus, Pane::Stages);
    // PPO is paused: another stage cannot start.
    press(&mut app, &[KeyCode::Down, KeyCode::Down, KeyCode::Enter]);
    assert!(app.message.as_ref().unwrap().0.contains("PPO is running"));
    on_event(&mut app, ppo_stopped_at_40(), 300.0);
    assert_eq!(app.selected, 3);
    // RM is done: Enter asks before training it again, Esc keeps it, y
    // trains it again.
    assert_eq!(press(&mut app, &[KeyCode::Enter]), []);
    assert_eq!(app.overlay, Overlay::ConfirmRerun(Stage::Rm));
    assert_eq!(press(&mut app, &[KeyCode::Esc]), []);
    assert_eq!(app.overlay, Overlay::None);
    assert!(app.message.as_ref().unwrap().0.contains("RM kept"));
    assert_eq!(
        press(&mut app, &[KeyCode::Enter, KeyCode::Char('y')]),
        [Effect::Send(Command::Start(Stage::Rm))]
    );
    assert_eq!(app.selected, 3);
    press(&mut app, &[KeyCode::Tab]);
    assert_eq!(app.focus, Pane::Charts);
    let chart = app.chart;
    press(&mut app, &[KeyCode::Right]);
    assert_eq!(app.chart, chart + 1);
    press(
        &mut app,
        &[KeyCode::Tab, KeyCode::Char('j'), KeyCode::Char('j'), KeyCode::Char('k')],
    );
    assert_eq!((app.focus, app.scroll), (Pane::Compare, 1));
    press(&mut app, &[KeyCode::BackTab, KeyCode::BackTab]);
    assert_eq!(app.focus, Pane::Stages);
    press(&mut app, &[KeyCode::Char('?')]);
    assert_eq!(app.overlay, Overlay::Help(0));
    assert_eq!(
        press(&mut app, &[KeyCode::Char('q')]),
        [],
        "q closes help, not the workbench"
    );
    assert_eq!(app.overlay, Overlay::None);
}

#[test]
fn pace_and_time_left_come_from_event_times() {
    let app = demo_app(false);
    // PPO: iterations 21..40 four seconds apart; 60 left at 0.25 a second.
    assert_eq!(app.steps_per_second(), Some(0.25));
    assert_eq!(app.eta_seconds(), Some(240.0));
}

#[test]
fn errors_and_failed_stages_show() {
    let mut app = demo_app(false);
    on_event(
        &mut app,
        Event::Error("the trainer panicked at src/x.rs:1: boom".into()),
        1.0,
    );
    assert_eq!(
        app.message,
        Some(("error: the trainer panicked at src/x.rs:1: boom".into(), true))
    );
    on_event(
        &mut app,
        Event::Stage {
            stage: Stage::Rm,
            state: StageState::Failed("no SFT checkpoint".into()),
            step: 0,
            total: 50,
        },
        2.0,
    );
    assert_eq!(app.message, Some(("error: RM: no SFT checkpoint".into(), true)));
    on_event(&mut app, Event::ShutDown, 3.0);
    // With the trainer gone, q leaves at once.
    assert_eq!(press(&mut app, &[KeyCode::Char('q')]), [Effect::Quit]);
}

/// The demo's PPO stage, stopped with its checkpoint at step 40.
fn ppo_stopped_at_40() -> Event {
    Event::Stage {
        stage: Stage::Ppo,
        state: StageState::Done {
            checkpoint: "runs/demo/checkpoints/ppo-40".into(),
        },
        step: 40,
        total: 100,
    }
}

/// A lost terminal quits with a checkpoint whatever is open, the quit
/// question included (nobody is there to answer it), and once the trainer
/// has shut down the workbench ends.
#[test]
fn losing_the_terminal_quits_with_a_checkpoint_from_any_overlay() {
    let mut app = demo_app(false);
    press(&mut app, &[KeyCode::Char('q')]);
    assert_eq!(app.overlay, Overlay::ConfirmQuit);
    let effects = update(&mut app, rlhf_tui::ui::keys::Msg::TerminalLost);
    assert_eq!(effects, [Effect::Send(Command::Shutdown { checkpoint: true })]);
    assert_eq!(app.overlay, Overlay::None);
    assert_eq!(on_event(&mut app, Event::ShutDown, 300.0), [Effect::Quit]);
}

/// The judge chart (and the sycophancy probe's, the methods' comparisons
/// and DPO's) is offered once
/// the run has its figures: `]` through every chart of a run without them
/// never lands on one, and lands on the judge's once a score arrives.
#[test]
fn the_judge_chart_waits_for_an_evaluator() {
    use rlhf_tui::ui::app::{CHARTS, EVALUATOR_CHART};
    let judge = CHARTS.iter().position(|c| c.title == EVALUATOR_CHART).unwrap();
    let optional: Vec<usize> = (0..CHARTS.len()).filter(|&i| CHARTS[i].optional).collect();
    // The judge's, the sycophancy probe's, the two comparisons of methods
    // and DPO's two.
    assert!(optional.contains(&judge) && optional.len() == 6, "{optional:?}");
    let mut app = App::new(false);
    press(&mut app, &[KeyCode::Tab]);
    assert_eq!(app.focus, Pane::Charts);
    let offered = CHARTS.len() - optional.len();
    let mut seen = Vec::new();
    for _ in 0..offered {
        press(&mut app, &[KeyCode::Char(']')]);
        seen.push(app.chart);
    }
    assert!(seen.iter().all(|c| !optional.contains(c)), "{seen:?}");
    assert_eq!(
        offered,
        seen.iter().collect::<std::collections::BTreeSet<_>>().len(),
        "every other chart once: {seen:?}"
    );
    let values = vec![("judge/score_mean".to_string(), 0.8)];
    on_event(
        &mut app,
        Event::Metrics {
            stage: Stage::Ppo,
            step: 1,
            values,
        },
        10.0,
    );
    let mut seen = Vec::new();
    for _ in 0..CHARTS.len() {
        press(&mut app, &[KeyCode::Char(']')]);
        seen.push(app.chart);
    }
    assert!(seen.contains(&judge), "{seen:?}");
}

/// When the stage under the cursor finishes, the cursor moves on to the
/// next one, so the next Enter starts it instead of asking to re-run this.
#[test]
fn the_cursor_moves_on_when_its_stage_is_done() {
    let mut app = App::new(false);
    assert_eq!(app.stages[app.selected].stage, Some(Stage::Sft));
    let sft = |state| stage_event(Stage::Sft, state, 300, 300);
    on_event(&mut app, sft(StageState::Running), 1.0);
    on_event(
        &mut app,
        sft(StageState::Done {
            checkpoint: "runs/demo/checkpoints/sft-300".into(),
        }),
        2.0,
    );
    assert_eq!(app.stages[app.selected].stage, Some(Stage::Rm));
    assert_eq!(
        press(&mut app, &[KeyCode::Enter]),
        [Effect::Send(Command::Start(Stage::Rm))]
    );
}

/// Sets streamed from older policies never come back: a set from a newer
/// policy drops the older ones waiting (the one on screen stays), so `r`
/// shows what the policy writes now; and when a stage finishes, the pane
/// asks for a fresh set from the new models.
#[test]
fn r_shows_the_policy_as_it_is_now() {
    let mut app = App::new(false);
    let from = |id: u64, policy: &str| {
        let mut set = pair(id);
        set.policy = policy.into();
        Event::Samples(set)
    };
    for (id, policy) in [(1, "ppo-1"), (2, "ppo-2"), (3, "ppo-3"), (4, "ppo-16")] {
        on_event(&mut app, from(id, policy), id as f64);
    }
    let shown: Vec<&str> = app.queue.iter().map(|s| s.policy.as_str()).collect();
    assert_eq!(shown, ["ppo-1", "ppo-16"], "on screen, then the newest");
    assert_eq!(
        press(&mut app, &[KeyCode::Char('r')]),
        [Effect::Send(Command::RequestSamples { k: 2 })]
    );
    assert_eq!(app.queue.front().unwrap().policy, "ppo-16");

    let ppo = |state| stage_event(Stage::Ppo, state, 40, 40);
    on_event(&mut app, ppo(StageState::Running), 20.0);
    let effects = on_event(
        &mut app,
        ppo(StageState::Done {
            checkpoint: "runs/demo/checkpoints/ppo-40".into(),
        }),
        21.0,
    );
    assert_eq!(effects, [Effect::Send(Command::RequestSamples { k: 2 })]);
    assert!(app.queue.is_empty(), "the old sets are gone; the new one is coming");
}

/// `[` and `]` change the chart from any pane; pause, resume and the
/// criterion say what happened.
#[test]
fn chart_keys_are_global_and_changes_are_said() {
    let mut app = App::new(false);
    assert_eq!(app.focus, Pane::Stages);
    let chart = app.chart;
    press(&mut app, &[KeyCode::Char(']')]);
    assert_ne!(app.chart, chart);
    press(&mut app, &[KeyCode::Char('[')]);
    assert_eq!((app.chart, app.focus), (chart, Pane::Stages));

    let sft = |state| stage_event(Stage::Sft, state, 12, 300);
    on_event(&mut app, sft(StageState::Running), 1.0);
    on_event(&mut app, sft(StageState::Paused), 2.0);
    assert!(app.message.as_ref().unwrap().0.contains("SFT paused at step 12"));
    on_event(&mut app, sft(StageState::Running), 3.0);
    assert_eq!(app.message.as_ref().unwrap().0, "SFT resumed");
    press(&mut app, &[KeyCode::Char('C')]);
    assert!(app.message.as_ref().unwrap().0.starts_with("judging by: helpful"));
}

/// The editor opens on the current value, rounded and selected: Enter
/// keeps it, typing replaces it, Ctrl-U empties the input.
#[test]
fn the_editor_opens_on_the_value_selected() {
    let mut app = demo_app(false);
    app.params.lr = 0.000_977_975_432_332_819_1;
    press(&mut app, &[KeyCode::Char('l')]);
    let Overlay::Editor(editor) = &app.overlay else {
        panic!("no editor")
    };
    assert_eq!((editor.input.as_str(), editor.selected), ("0.000978", true));
    assert_eq!(press(&mut app, &[KeyCode::Enter]), [], "kept as it is");
    assert_eq!(app.overlay, Overlay::None);
    press(&mut app, &[KeyCode::Char('l'), KeyCode::Char('5'), KeyCode::Char('e')]);
    let ctrl_u = KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL);
    let msg = key_to_msg(&app.overlay, ctrl_u).unwrap();
    update(&mut app, msg);
    let effects = press(&mut app, &chars("0.0005"));
    assert_eq!(effects, []);
    assert_eq!(
        press(&mut app, &[KeyCode::Enter]),
        [Effect::Send(Command::Set(Param::LearningRate(0.0005)))]
    );
}

/// A reopened run's past changes become markers without touching the
/// parameters `Ready` gave.
#[test]
fn past_changes_are_markers_only() {
    let mut app = demo_app(false);
    let (markers, beta) = (app.markers.len(), app.params.beta);
    on_event(
        &mut app,
        Event::PastChange {
            stage: Some(Stage::Ppo),
            param: Param::Beta(0.3),
            old: 0.1,
            step: 12,
        },
        1.0,
    );
    assert_eq!(app.markers.len(), markers + 1);
    assert_eq!(app.markers.last().unwrap().label, "β 0.1 → 0.3");
    assert_eq!(app.params.beta, beta);
}

/// Steps per second count running time only: after a pause the pace
/// starts over instead of averaging the pause in.
#[test]
fn the_pace_starts_over_after_a_pause() {
    let mut app = App::new(false);
    let sft = |state, step| stage_event(Stage::Sft, state, step, 300);
    let metrics = |step| Event::Metrics {
        stage: Stage::Sft,
        step,
        values: vec![("loss".to_string(), 1.0)],
    };
    on_event(&mut app, sft(StageState::Running, 0), 0.0);
    for step in 1..=10 {
        on_event(&mut app, metrics(step), step as f64 * 0.1);
    }
    on_event(&mut app, sft(StageState::Paused, 10), 1.0);
    on_event(&mut app, sft(StageState::Running, 10), 61.0);
    for step in 11..=20 {
        on_event(&mut app, metrics(step), 61.0 + (step - 10) as f64 * 0.1);
    }
    let pace = app.steps_per_second().unwrap();
    assert!((pace - 10.0).abs() < 0.5, "{pace} steps/s");
}

/// A stage that failed to start leaves its error on the status bar until
/// another stage starts, not through the whole of it.
#[test]
fn a_failed_start_stops_being_the_news_when_another_stage_starts() {
    let mut app = App::new(false);
    let event = |stage, state| stage_event(stage, state, 0, 600);
    on_event(
        &mut app,
        event(Stage::Ppo, StageState::Failed("no RM checkpoint".into())),
        1.0,
    );
    assert!(app.message.as_ref().unwrap().1, "shown as an error");
    on_event(&mut app, event(Stage::Rm, StageState::Starting), 2.0);
    assert_eq!(app.message, None);
}

/// A skip is stored but not counted as a judgment.
#[test]
fn a_skip_is_not_counted_as_judged() {
    let mut app = App::new(false);
    on_event(&mut app, Event::Samples(pair(3)), 1.0);
    press(&mut app, &[KeyCode::Char('s')]);
    on_event(
        &mut app,
        Event::LabelSaved {
            set: 3,
            verdict: Verdict::Choice(Choice::Skip),
        },
        2.0,
    );
    assert_eq!(app.labels_saved, 0);
    on_event(&mut app, Event::Samples(pair(4)), 3.0);
    press(&mut app, &[KeyCode::Char('1')]);
    on_event(
        &mut app,
        Event::LabelSaved {
            set: 4,
            verdict: Verdict::Choice(Choice::Left),
        },
        4.0,
    );
    assert_eq!(app.labels_saved, 1);
}

/// On a short terminal the help window scrolls: ↓ and j move down, no
/// further than the shortest terminal needs, and ↑ answers at once.
#[test]
fn the_help_window_scrolls() {
    let mut app = App::new(false);
    press(&mut app, &[KeyCode::Char('?'), KeyCode::Down, KeyCode::Char('j')]);
    assert_eq!(app.overlay, Overlay::Help(2));
    press(&mut app, &[KeyCode::Down; 100]);
    let Overlay::Help(bottom) = app.overlay else {
        panic!("{:?}", app.overlay)
    };
    assert!(bottom > 2 && bottom < 20, "{bottom}");
    press(&mut app, &[KeyCode::Up]);
    assert_eq!(app.overlay, Overlay::Help(bottom - 1));
    press(&mut app, &[KeyCode::Esc]);
    assert_eq!(app.overlay, Overlay::None);
}

/// `E` asks for a blind evaluation (refused while a stage runs); once its
/// pairs arrive, `1` `2` `t` `s` are verdicts on the pair on screen, each
/// confirmed only when on disk, and Esc closes it.
#[test]
fn a_blind_evaluation_takes_verdicts_pair_by_pair() {
    use rlhf_tui::rlhf::win_rate::{Outcome, WinRate};
    use rlhf_tui::trainer::protocol::{EvalItem, EvalTally};
    let mut app = demo_app(false);
    // The demo has PPO paused mid-stage.
    assert_eq!(press(&mut app, &[KeyCode::Char('E')]), []);
    assert!(app.message.as_ref().unwrap().0.contains("stop the running stage"));
    on_event(
        &mut app,
        stage_event(
            Stage::Ppo,
            StageState::Done {
                checkpoint: "ppo-40".into(),
            },
            40,
            40,
        ),
        0.0,
    );
    assert_eq!(
        press(&mut app, &[KeyCode::Char('E')]),
        [Effect::Send(Command::StartEval)]
    );
    let item = |q: &str| EvalItem {
        prompt: q.into(),
        left: "x".into(),
        right: "y".into(),
    };
    let items = vec![item("one?"), item("two?")];
    on_event(
        &mut app,
        Event::EvalStarted {
            a: "ppo-40".into(),
            b: "sft-300".into(),
            items,
        },
        1.0,
    );
    assert_eq!(app.focus, Pane::Compare);
    let verdict = |item, choice| [Effect::Send(Command::EvalVerdict { item, choice })];
    assert_eq!(press(&mut app, &[KeyCode::Char('2')]), verdict(0, Choice::Right));
    // Nothing more until the first is on disk.
    assert_eq!(press(&mut app, &[KeyCode::Char('1')]), []);
    let tally = EvalTally {
        person: WinRate::of(&[Outcome::B]),
        judge: Some(WinRate::of(&[Outcome::B])),
        agreement: Some(1.0),
        kappa: None,
    };
    on_event(
        &mut app,
        Event::EvalSaved {
            item: 0,
            choice: Choice::Right,
            tally,
        },
        2.0,
    );
    assert_eq!(press(&mut app, &[KeyCode::Char('t')]), verdict(1, Choice::Tie));
    on_event(
        &mut app,
        Event::EvalSaved {
            item: 1,
            choice: Choice::Tie,
            tally,
        },
        3.0,
    );
    let view = app.eval.as_ref().unwrap();
    assert!(view.done() && view.pending.is_none());
    // All judged: further verdicts are refused, Esc closes it.
    assert_eq!(press(&mut app, &[KeyCode::Char('1')]), []);
    assert_eq!(press(&mut app, &[KeyCode::Esc]), []);
    assert!(app.eval.is_none());
    assert!(app.message.as_ref().unwrap().0.contains("eval.jsonl"));
}

/// The CAI stage sits between SFT and the reward model; a finished SFT
/// moves the cursor past it to RM, and with CAI selected the comparison
/// pane shows the revisions, paged with ← →. GRPO, RLOO and DPO, the
/// other branches, sit beside PPO, and a finished PPO, GRPO or RLOO keeps
/// the cursor.
#[test]
fn cai_is_a_branch_the_cursor_steps_over() {
    use rlhf_tui::trainer::protocol::{CaiView, Revised};
    let mut app = demo_app(false);
    let rows: Vec<Option<Stage>> = app.stages.iter().map(|r| r.stage).collect();
    assert_eq!(
        rows,
        [
            None,
            Some(Stage::Sft),
            Some(Stage::Cai),
            Some(Stage::Rm),
            Some(Stage::Ppo),
            Some(Stage::Grpo),
            Some(Stage::Rloo),
            Some(Stage::Dpo)
        ]
    );
    let done = |checkpoint: &str| StageState::Done {
        checkpoint: checkpoint.into(),
    };
    // A finished PPO, GRPO or RLOO keeps the cursor: the next cell is an
    // alternative, not a next step.
    for (i, stage) in [(4, Stage::Ppo), (5, Stage::Grpo), (6, Stage::Rloo)] {
        app.selected = i;
        on_event(&mut app, stage_event(stage, StageState::Running, 1, 2), 0.0);
        on_event(&mut app, stage_event(stage, done("x-2"), 2, 2), 0.5);
        assert_eq!(app.stages[app.selected].stage, Some(stage));
    }
    app.selected = 1;
    on_event(&mut app, stage_event(Stage::Sft, StageState::Running, 1, 2), 0.0);
    on_event(
        &mut app,
        stage_event(
            Stage::Sft,
            StageState::Done {
                checkpoint: "sft-2".into(),
            },
            2,
            2,
        ),
        1.0,
    );
    assert_eq!(app.stages[app.selected].stage, Some(Stage::Rm));
    let revised = |original: &str| Revised {
        prompt: "q".into(),
        original: original.into(),
        steps: Vec::new(),
        scores: Vec::new(),
    };
    let view = CaiView {
        examples: vec![revised("a"), revised("b"), revised("c")],
        counts: Vec::new(),
        changed: 0.5,
        won: None,
    };
    on_event(&mut app, Event::Revisions(view), 2.0);
    assert!(!app.showing_cai(), "RM is selected");
    app.selected = 2;
    assert!(app.showing_cai());
    app.focus = Pane::Compare;
    press(&mut app, &[KeyCode::Left]);
    assert_eq!(app.cai_example, 2, "← from the first wraps to the last");
    press(&mut app, &[KeyCode::Right, KeyCode::Right]);
    assert_eq!(app.cai_example, 1);
}

/// An external trainer (a TRL run through the bridge) takes some controls:
/// the others send nothing and say so; the ones it takes go out as usual,
/// and its completions (without log-probs) are labelled as any pair.
#[test]
fn an_external_trainer_gets_only_the_controls_it_takes() {
    use rlhf_tui::trainer::protocol::{Control, External};
    let mut app = demo_app(false);
    on_event(
        &mut app,
        Event::External(External {
            trainer: "DPOTrainer".into(),
            controls: vec![Control::Pause, Control::LearningRate, Control::Beta, Control::Stop],
        }),
        0.0,
    );
    for (key, words) in [
        ('r', "sample requests"),
        ('T', "temperature changes"),
        ('1', "labels"),
        ('N', "new rounds"),
        ('c', "checkpoints on request"),
    ] {
        assert_eq!(press(&mut app, &[KeyCode::Char(key)]), [], "{key}");
        let message = &app.message.as_ref().unwrap().0;
        assert_eq!(message, &format!("DPOTrainer does not take {words} from the workbench"));
    }
    assert_eq!(app.overlay, Overlay::None);
    assert_eq!(press(&mut app, &[KeyCode::Char(' ')]), [Effect::Send(Command::Resume)]);
    let mut keys = vec![KeyCode::Char('l'), KeyCode::Backspace, KeyCode::Backspace];
    keys.extend(chars("1e-5"));
    keys.push(KeyCode::Enter);
    let sent = press(&mut app, &keys);
    assert!(
        matches!(sent.as_slice(), [Effect::Send(Command::Set(Param::LearningRate(_)))]),
        "{sent:?}"
    );

    // GRPO's sets come without log-probs: drawn plain, labelled as usual.
    on_event(
        &mut app,
        Event::External(External {
            trainer: "GRPOTrainer".into(),
            controls: vec![Control::Label, Control::Samples],
        }),
        0.0,
    );
    let mut set = pair(90);
    for response in &mut set.responses {
        response.logprobs.clear();
        response.ref_logprobs.clear();
    }
    app.queue.clear();
    on_event(&mut app, Event::Samples(set), 1.0);
    let lines = rlhf_tui::ui::view::compare::token_lines(&app, &app.queue[0].responses[0]);
    assert!(!lines.is_empty());
    let sent = press(&mut app, &[KeyCode::Char('1')]);
    assert!(
        matches!(sent.as_slice(), [Effect::Send(Command::Label { set: 90, .. })]),
        "{sent:?}"
    );
}
