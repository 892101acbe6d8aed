//! The workbench's state machine, pure: a key message or a trainer event
//! changes the `App` and returns effects (commands for the trainer, or
//! quit) for the driver to carry out. No IO, no clock: event times come in
//! with the events.

use super::app::{
    ALERTS_KEPT, App, CHARTS, Colouring, Editing, Editor, EvalView, Judged, LabelMode, Marker, Overlay, Pane, Params,
    QUEUE_LEN, StageRow, help_lines,
};
use super::keys::Msg;
use super::words::{param_change, verdict_words};
use crate::run::names;
use crate::trainer::protocol::{Choice, Command, Control, Criterion, Event, KlMode, Param, Stage, StageState, Verdict};

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Send(Command),
    Quit,
}

/// Lines the help window shows on the shortest terminal (24 rows, less
/// its border).
const SHORTEST_HELP: u16 = 22;

/// Steps kept for the steps-per-second estimate.
const TIMING_WINDOW: usize = 20;

pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    if msg == Msg::TerminalLost {
        // Whatever dialog was open, nobody is there to answer it.
        app.overlay = Overlay::None;
        return quit(app, true);
    }
    match app.overlay.clone() {
        Overlay::Help(first) => {
            // Scrolled where the terminal is too short for all of it, no
            // further than a 24-line terminal needs (the view also keeps
            // the last line in sight), so Up answers at once.
            let last_first = help_lines().saturating_sub(SHORTEST_HELP);
            app.overlay = match msg {
                Msg::Cancel => Overlay::None,
                Msg::Down => Overlay::Help((first + 1).min(last_first)),
                Msg::Up => Overlay::Help(first.saturating_sub(1)),
                _ => Overlay::Help(first),
            };
            Vec::new()
        }
        Overlay::Alerts => {
            if msg == Msg::Cancel {
                app.overlay = Overlay::None;
            }
            Vec::new()
        }
        Overlay::Editor(editor) => edit(app, editor, msg),
        Overlay::ConfirmRerun(stage) => {
            app.overlay = Overlay::None;
            match msg {
                Msg::Confirm => send(Command::Start(stage)),
                _ => tell(app, &format!("{} kept as it is", stage.name().to_uppercase())),
            }
        }
        Overlay::ConfirmQuit => match msg {
            Msg::QuitConfirmed { checkpoint } => {
                app.overlay = Overlay::None;
                quit(app, checkpoint)
            }
            Msg::Cancel => {
                app.overlay = Overlay::None;
                Vec::new()
            }
            _ => Vec::new(),
        },
        Overlay::None => main(app, msg),
    }
}

fn send(command: Command) -> Vec<Effect> {
    vec![Effect::Send(command)]
}

fn main(app: &mut App, msg: Msg) -> Vec<Effect> {
    let placed_last = app.placed_last.take();
    // A blind evaluation takes the verdict keys while it is open.
    if let Some(effects) = eval_key(app, &msg) {
        return effects;
    }
    if let Some(control) = control_of(app, &msg).filter(|c| !app.takes(*c)) {
        let trainer = app.external.as_ref().map_or("", |e| e.trainer.as_str()).to_string();
        return tell(
            app,
            &format!("{trainer} does not take {} from the workbench", control.words()),
        );
    }
    match msg {
        Msg::Eval if app.eval.is_some() => tell(app, "an evaluation is open: Esc closes it"),
        Msg::Eval if app.active().is_some() => tell(app, "stop the running stage (S) before an evaluation"),
        Msg::Eval => {
            tell(app, "answering held-out prompts with both models…");
            send(Command::StartEval)
        }
        Msg::TogglePause if app.active().is_some_and(StageRow::finishing) => tell(
            app,
            "the stage has taken all its steps: its held-out evaluation and checkpoint end it",
        ),
        Msg::TogglePause => match app.active().map(|r| r.state.clone()) {
            Some(StageState::Paused) => send(Command::Resume),
            Some(_) => send(Command::Pause),
            None => tell(app, "no stage is running: Enter starts the one under the cursor"),
        },
        Msg::Edit(Editing::GroupSize) if app.params.group_size.is_none() => tell(
            app,
            "K, the responses per prompt, is GRPO's and RLOO's: start one of them first",
        ),
        Msg::Edit(editing) => {
            let current = match editing {
                Editing::Beta => app.params.beta,
                Editing::LearningRate => app.params.lr,
                Editing::Temperature => app.params.temperature,
                Editing::GroupSize => app.params.group_size.unwrap_or(0) as f64,
            };
            app.overlay = Overlay::Editor(Editor {
                editing,
                input: shown(current),
                error: None,
                selected: true,
            });
            Vec::new()
        }
        Msg::ToggleKlMode => {
            let mode = match app.params.kl_mode {
                KlMode::Fixed => KlMode::Adaptive,
                KlMode::Adaptive => KlMode::Fixed,
            };
            send(Command::Set(Param::KlMode(mode)))
        }
        Msg::Help => {
            app.overlay = Overlay::Help(0);
            Vec::new()
        }
        Msg::ShowAlerts => {
            app.overlay = Overlay::Alerts;
            Vec::new()
        }
        // Attached, the trainer goes on: nothing to ask.
        Msg::Quit if app.attached.is_some() => quit(app, false),
        Msg::Quit => match app.active() {
            Some(_) if !app.trainer_gone => {
                app.overlay = Overlay::ConfirmQuit;
                Vec::new()
            }
            _ => quit(app, false),
        },
        Msg::NextPane | Msg::PrevPane => {
            let i = Pane::ORDER.iter().position(|p| *p == app.focus).unwrap_or(0);
            let n = Pane::ORDER.len();
            let next = if msg == Msg::NextPane { i + 1 } else { i + n - 1 };
            app.focus = Pane::ORDER[next % n];
            Vec::new()
        }
        Msg::Up | Msg::Down | Msg::Left | Msg::Right => {
            step_cursor(app, &msg);
            Vec::new()
        }
        Msg::Enter => match app.stages[app.selected].stage {
            Some(stage) if app.focus == Pane::Stages => {
                if let Some(row) = app.active() {
                    let name = row.stage.map_or("", |s| s.name()).to_uppercase();
                    return tell(app, &format!("{name} is running: S stops it first"));
                }
                match &app.stages[app.selected].state {
                    StageState::Done { .. } => {
                        app.overlay = Overlay::ConfirmRerun(stage);
                        Vec::new()
                    }
                    StageState::Stopped { checkpoint } => {
                        let from = checkpoint.rsplit('/').next().unwrap_or(checkpoint).to_string();
                        tell(app, &format!("continuing {} from {from}", stage.name().to_uppercase()));
                        send(Command::Start(stage))
                    }
                    _ => send(Command::Start(stage)),
                }
            }
            Some(_) => Vec::new(),
            None => tell(app, &format!("the base model: {}", app.base)),
        },
        Msg::Stop if app.active().is_some() => send(Command::Stop),
        Msg::StepOnce if app.paused() => send(Command::StepOnce),
        Msg::Checkpoint if app.active().is_some() => send(Command::Checkpoint),
        Msg::StepOnce if app.active().is_some() => tell(app, "'.' takes one step while paused"),
        Msg::Stop | Msg::StepOnce | Msg::Checkpoint => tell(app, "no stage is running"),
        // The set being saved stays until it is stored, so undo can find it.
        Msg::NewPair | Msg::ToggleRankMode | Msg::NewRound if app.pending.is_some() => {
            tell(app, "saving the last judgment…")
        }
        Msg::NewPair => {
            // The one on screen makes way; a judged set never returns.
            app.queue.pop_front();
            fresh_set(app)
        }
        Msg::ToggleRankMode => {
            app.mode = match app.mode {
                LabelMode::Pair => LabelMode::Rank,
                LabelMode::Rank => LabelMode::Pair,
            };
            app.queue.clear();
            let mode = match app.mode {
                LabelMode::Pair => "pair mode: choose the better of two".to_string(),
                LabelMode::Rank => format!("rank mode: order {} responses, best first", app.rank_k),
            };
            tell(app, &mode);
            fresh_set(app)
        }
        Msg::NextCriterion => {
            let i = Criterion::ALL.iter().position(|c| *c == app.criterion).unwrap_or(0);
            app.criterion = Criterion::ALL[(i + 1) % Criterion::ALL.len()];
            let text = format!("judging by: {} (C changes it)", app.criterion.name());
            tell(app, &text)
        }
        Msg::Chart { forward } => {
            cycle_chart(app, forward);
            Vec::new()
        }
        Msg::NewRound if app.active().is_some() => tell(app, "stop the running stage (S) before a new round"),
        Msg::NewRound => send(Command::NewRound),
        Msg::ToggleColouring => {
            app.colouring = match app.colouring {
                Colouring::Kl => Colouring::Logprob,
                Colouring::Logprob => Colouring::Kl,
            };
            Vec::new()
        }
        Msg::Label(choice) => match app.shown().map(|s| s.responses.len()) {
            Some(k) if k > 2 && matches!(choice, Choice::Tie | Choice::BothBad) => {
                tell(app, "tie and both bad are for pairs: rank with the digits, or s skips")
            }
            _ => judge(app, Verdict::Choice(choice)),
        },
        // The digit of the response a ranking placed last by itself.
        Msg::Digit(n) if placed_last == Some(n - 1) => Vec::new(),
        Msg::Digit(n) => match app.shown().map(|s| s.responses.len()) {
            Some(2) if n <= 2 => judge(app, Verdict::Choice([Choice::Left, Choice::Right][n - 1])),
            Some(k) if k > 2 && n <= k && app.pending.is_none() => {
                if !app.ranking.contains(&(n - 1)) {
                    app.ranking.push(n - 1);
                }
                if app.ranking.len() + 1 == k {
                    // The one left is last.
                    let last = (0..k).find(|i| !app.ranking.contains(i)).expect("one left");
                    app.ranking.push(last);
                    app.placed_last = Some(last);
                    return judge(app, Verdict::Ranking(app.ranking.clone()));
                }
                Vec::new()
            }
            _ => Vec::new(),
        },
        Msg::Backspace => {
            if app.pending.is_none() {
                app.ranking.pop();
            }
            Vec::new()
        }
        Msg::Undo => match (app.judged.last(), &app.retracting) {
            (Some(last), None) => {
                let set = last.set.id;
                app.retracting = app.judged.pop();
                send(Command::Undo { set })
            }
            (_, Some(_)) => Vec::new(),
            (None, None) => tell(app, "nothing to undo"),
        },
        Msg::Cancel => {
            app.message = None;
            Vec::new()
        }
        Msg::Char(_) | Msg::ClearInput | Msg::QuitConfirmed { .. } | Msg::Confirm | Msg::TerminalLost => Vec::new(),
    }
}

/// A key while a blind evaluation is open: a verdict on the pair on
/// screen (sent, confirmed when on disk), or Esc closing it; `None` for
/// keys it leaves to the rest of the workbench.
fn eval_key(app: &mut App, msg: &Msg) -> Option<Vec<Effect>> {
    let view = app.eval.as_mut()?;
    let choice = match *msg {
        Msg::Cancel => {
            app.eval = None;
            return Some(tell(app, "evaluation closed; its verdicts are in eval.jsonl"));
        }
        Msg::Digit(1) => Choice::Left,
        Msg::Digit(2) => Choice::Right,
        Msg::Label(choice) => choice,
        Msg::Undo => return Some(tell(app, "an evaluation's verdicts stay as given")),
        _ => return None,
    };
    if view.pending.is_some() {
        return Some(tell(app, "saving the last verdict…"));
    }
    if view.done() {
        return Some(tell(app, "every pair is judged: Esc closes the evaluation"));
    }
    view.pending = Some(choice);
    Some(send(Command::EvalVerdict { item: view.at, choice }))
}

/// Sends the judgment of the set on screen; the screen confirms it only
/// when the trainer says it is on disk.
fn judge(app: &mut App, verdict: Verdict) -> Vec<Effect> {
    match (app.shown(), &app.pending) {
        (_, Some(_)) => tell(app, "saving the last judgment…"),
        (None, None) => tell(app, "nothing to judge yet"),
        (Some(set), None) => {
            let set = set.id;
            app.pending = Some((set, verdict.clone()));
            send(Command::Label {
                set,
                verdict,
                criterion: app.criterion,
            })
        }
    }
}

/// Asks for a set of the current mode's size.
/// The control a key asks of the trainer, where it asks one.
fn control_of(app: &App, msg: &Msg) -> Option<Control> {
    Some(match msg {
        Msg::TogglePause => Control::Pause,
        Msg::StepOnce => Control::Step,
        Msg::Stop => Control::Stop,
        Msg::Checkpoint => Control::Checkpoint,
        Msg::Edit(Editing::Beta) => Control::Beta,
        Msg::Edit(Editing::LearningRate) => Control::LearningRate,
        Msg::Edit(Editing::Temperature) => Control::Temperature,
        Msg::Edit(Editing::GroupSize) => Control::GroupSize,
        Msg::ToggleKlMode => Control::KlMode,
        Msg::Label(_) | Msg::Digit(_) | Msg::Undo => Control::Label,
        Msg::NewPair | Msg::ToggleRankMode => Control::Samples,
        Msg::NewRound => Control::Round,
        Msg::Eval => Control::Eval,
        Msg::Enter if app.focus == Pane::Stages => Control::Start,
        _ => return None,
    })
}

fn fresh_set(app: &mut App) -> Vec<Effect> {
    app.scroll = 0;
    app.ranking.clear();
    if !app.takes(Control::Samples) {
        return Vec::new();
    }
    send(Command::RequestSamples { k: app.set_size() })
}

fn tell(app: &mut App, text: &str) -> Vec<Effect> {
    app.message = Some((text.to_string(), false));
    Vec::new()
}

fn quit(app: &mut App, checkpoint: bool) -> Vec<Effect> {
    if app.trainer_gone {
        return vec![Effect::Quit];
    }
    app.quitting = true;
    if app.attached.is_some() {
        app.message = Some(("detaching: the trainer goes on".into(), false));
        return send(Command::Detach);
    }
    app.message = Some((
        if checkpoint {
            "writing a checkpoint, then quitting…"
        } else {
            "quitting…"
        }
        .into(),
        false,
    ));
    send(Command::Shutdown { checkpoint })
}

/// The next or previous chart the pane offers.
fn cycle_chart(app: &mut App, forward: bool) {
    let n = CHARTS.len();
    let mut chart = app.chart;
    for _ in 0..n {
        chart = if forward { (chart + 1) % n } else { (chart + n - 1) % n };
        if app.offers_chart(chart) {
            break;
        }
    }
    app.chart = chart;
}

fn step_cursor(app: &mut App, msg: &Msg) {
    let forward = matches!(msg, Msg::Down | Msg::Right);
    match app.focus {
        Pane::Stages => {
            let n = app.stages.len();
            app.selected = if forward {
                (app.selected + 1).min(n - 1)
            } else {
                app.selected.saturating_sub(1)
            };
        }
        Pane::Charts => cycle_chart(app, forward),
        // Left and right page through the constitution's examples.
        Pane::Compare if app.showing_cai() && matches!(msg, Msg::Left | Msg::Right) => {
            let n = app.cai.as_ref().map_or(1, |v| v.examples.len().max(1));
            app.cai_example = (app.cai_example + if forward { 1 } else { n - 1 }) % n;
            app.scroll = 0;
        }
        Pane::Compare => {
            app.scroll = if forward {
                app.scroll.saturating_add(1)
            } else {
                app.scroll.saturating_sub(1)
            };
        }
    }
}

fn edit(app: &mut App, mut editor: Editor, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Cancel => {
            app.overlay = Overlay::None;
            return Vec::new();
        }
        Msg::Char(c) => {
            if std::mem::take(&mut editor.selected) {
                editor.input.clear();
            }
            editor.input.push(c);
        }
        Msg::Backspace => {
            if std::mem::take(&mut editor.selected) {
                editor.input.clear();
            }
            editor.input.pop();
        }
        Msg::ClearInput => {
            editor.input.clear();
            editor.selected = false;
        }
        Msg::Enter if editor.selected => {
            // Untouched: the value stays as it is.
            app.overlay = Overlay::None;
            return Vec::new();
        }
        Msg::Enter => {
            let input = editor.input.trim();
            let param = match editor.editing {
                Editing::GroupSize => input
                    .parse::<usize>()
                    .map(Param::GroupSize)
                    .map_err(|_| "not a whole number"),
                editing => input.parse::<f64>().map_err(|_| "not a number").map(|v| match editing {
                    Editing::Beta => Param::Beta(v),
                    Editing::LearningRate => Param::LearningRate(v),
                    _ => Param::Temperature(v),
                }),
            };
            match param.map_err(str::to_string).and_then(|p| p.check().map(|()| p)) {
                Ok(param) => {
                    app.overlay = Overlay::None;
                    return send(Command::Set(param));
                }
                Err(why) => editor.error = Some(why),
            }
        }
        _ => {}
    }
    app.overlay = Overlay::Editor(editor);
    Vec::new()
}

/// A value as the editor shows it: four significant digits, not the
/// schedule's `0.0009779754323328191`.
fn shown(value: f64) -> String {
    let rounded: f64 = format!("{value:.3e}").parse().unwrap_or(value);
    format!("{rounded}")
}

/// A stage's new state: its chart and a fresh pace when it starts or
/// resumes, a word on pause and resume (an error on the status bar stays),
/// and when it finishes the cursor on the next stage and a fresh set from
/// the new models in the pair pane.
fn stage_changed(app: &mut App, stage: Stage, state: StageState, step: usize, total: usize) -> Vec<Effect> {
    let before = app.row_mut(stage).state.clone();
    let was_paused = before == StageState::Paused;
    let was_running = was_paused || matches!(before, StageState::Starting | StageState::Running);
    let name = stage.name().to_uppercase();
    if state == StageState::Starting {
        // An earlier stage's error is no longer the news.
        if app.showing_error() {
            app.message = None;
        }
        let first = |title| CHARTS.iter().position(|c| c.title == title).unwrap_or(0);
        app.chart = match stage {
            Stage::Sft => first("SFT loss"),
            Stage::Cai => first("CAI loss"),
            Stage::Rm => first("RM loss"),
            Stage::Ppo | Stage::Grpo | Stage::Rloo => first("reward"),
            Stage::Dpo => first("DPO loss"),
        };
    }
    // Steps per second and the ETA count running time only.
    if state == StageState::Starting || (was_paused && state == StageState::Running) {
        app.timings.clear();
    }
    match &state {
        StageState::Failed(why) => app.message = Some((format!("error: {name}: {why}"), true)),
        _ if app.showing_error() => {}
        StageState::Paused if was_running && !was_paused => {
            let text = format!("{name} paused at step {step}: space resumes, . takes one step");
            app.message = Some((text, false));
        }
        StageState::Running if was_paused => app.message = Some((format!("{name} resumed"), false)),
        _ => {}
    }
    // Stopped early with a checkpoint counts: the next stage can start from it.
    let finished = was_running && matches!(state, StageState::Done { .. } | StageState::Stopped { .. });
    // The cursor moves on, so the next Enter starts the next stage rather
    // than asking to re-run this one: past CAI, a branch a person takes on
    // purpose, from SFT to the reward model; and never from PPO onto its
    // alternatives (GRPO, RLOO, DPO), branches a person takes on purpose.
    let on_it = app.stages.get(app.selected).and_then(|r| r.stage) == Some(stage);
    let next = app.stages.get(app.selected + 1).and_then(|r| r.stage);
    if finished && on_it && next.is_some_and(|s| !s.is_alternative()) {
        app.selected += 1;
        if app.stages[app.selected].stage == Some(Stage::Cai) && app.selected + 1 < app.stages.len() {
            app.selected += 1;
        }
    }
    let row = app.row_mut(stage);
    (row.state, row.step, row.total) = (state, step, total);
    if finished && app.pending.is_none() {
        app.queue.clear();
        return fresh_set(app);
    }
    Vec::new()
}

/// A trainer event, arrived at `at` seconds (for steps per second).
pub fn on_event(app: &mut App, event: Event, at: f64) -> Vec<Effect> {
    match event {
        Event::Ready {
            device,
            run,
            base,
            stages,
            beta,
            lr,
            temperature,
            kl_mode,
            rank_k,
            judged,
        } => {
            app.rank_k = rank_k;
            app.labels_saved = judged;
            app.device = device;
            app.run = run;
            app.base = base;
            for (stage, state) in stages {
                app.row_mut(stage).state = state;
            }
            app.stages[0].state = StageState::Done {
                checkpoint: app.base.clone(),
            };
            app.params = Params {
                beta,
                lr,
                lr_of: Stage::Ppo,
                temperature,
                kl_mode,
                group_size: None,
            };
            // A first set to judge while nothing runs.
            return fresh_set(app);
        }
        Event::Stage {
            stage,
            state,
            step,
            total,
        } => return stage_changed(app, stage, state, step, total),
        Event::Metrics { stage, step, values } => {
            let row = app.row_mut(stage);
            row.step = step;
            for (key, value) in values {
                // TRL logs the rate as `learning_rate`.
                if key == names::LR || key == "learning_rate" {
                    (app.params.lr, app.params.lr_of) = (value, stage);
                }
                app.series.entry((stage, key)).or_default().push(step as f64, value);
            }
            if app.timings.len() == TIMING_WINDOW {
                app.timings.pop_front();
            }
            app.timings.push_back((at, step));
        }
        // A set asked for before the labeling mode changed (a pair after
        // `R`, or four after the way back) is not what the person asks for
        // now; the change asked for one that is. An external trainer's
        // sets are its own to size.
        Event::Samples(set) if app.takes(Control::Samples) && set.responses.len() != app.set_size() => {}
        Event::Samples(set) => {
            // Sets waiting from an older policy make way for this one, so
            // `r` never brings back what the policy wrote iterations ago;
            // the one on screen stays until it is judged or skipped.
            let mut position = 0;
            app.queue.retain(|waiting| {
                position += 1;
                position == 1 || waiting.policy == set.policy
            });
            if app.queue.len() == QUEUE_LEN {
                // Keep the one on screen; the oldest waiting makes way.
                app.queue.remove(1);
            }
            app.queue.push_back(set);
        }
        Event::Live {
            beta,
            kl_mode,
            group_size,
        } => (app.params.beta, app.params.kl_mode, app.params.group_size) = (beta, kl_mode, group_size),
        Event::Round { round, rm_version } => {
            let next = app.round != 0 && round > app.round;
            (app.round, app.rm_version) = (round, rm_version);
            if next {
                app.message = Some((
                    format!(
                        "round {round}: label fresh sets from the current policy, then train the RM (v{})",
                        rm_version + 1
                    ),
                    false,
                ));
                app.queue.clear();
                // The round's next stage is the reward model's.
                app.selected = app
                    .stages
                    .iter()
                    .position(|r| r.stage == Some(Stage::Rm))
                    .unwrap_or(app.selected);
                return fresh_set(app);
            }
        }
        Event::External(external) => app.external = Some(external),
        Event::Agreement(rows) => app.agreement = rows,
        Event::Throughput(mine) => app.throughput = Some(mine),
        Event::EvalStarted { a, b, items } => {
            app.eval = Some(EvalView {
                a,
                b,
                items,
                at: 0,
                pending: None,
                tally: None,
            });
            app.focus = Pane::Compare;
            app.message = Some((
                "blind evaluation: 1 or 2 the better answer · t tie · x both bad · s skip · Esc ends".into(),
                false,
            ));
        }
        Event::EvalSaved { item, tally, .. } => {
            if let Some(view) = &mut app.eval {
                (view.at, view.pending, view.tally) = (item + 1, None, Some(tally));
            }
        }
        Event::Revisions(view) => {
            (app.cai, app.cai_example) = (Some(view), 0);
        }
        Event::Alert(alert) => {
            if app.alert_log.len() == ALERTS_KEPT {
                app.alert_log.remove(0);
            }
            app.alert_log.push(alert.clone());
            app.alerts.retain(|a| a.kind != alert.kind);
            app.alerts.push(alert);
            // Of the alerts raised at one step, the gravest (reward hacking
            // first) keeps the message line; `!` lists them all.
            let step = app.alerts.last().map_or(0, |a| a.step);
            if let Some(top) = app.alerts.iter().filter(|a| a.step == step).min_by_key(|a| a.kind) {
                let text = format!(
                    "⚠ {} at step {}: {} (! lists all)",
                    top.kind.title(),
                    top.step,
                    top.message
                );
                app.message = Some((text, true));
            }
        }
        Event::AlertCleared { kind, .. } => app.alerts.retain(|a| a.kind != kind),
        Event::Calibration(bins) => app.calibration = bins,
        Event::Warning(text) => app.message = Some((format!("warning: {text}"), true)),
        Event::Note(text) => app.message = Some((text, false)),
        Event::PastChange {
            stage,
            param,
            old,
            step,
        } => {
            let label = param_change(&param, old);
            app.markers.push(Marker { stage, step, label });
        }
        Event::ParamChanged { param, old, step } => {
            match param {
                Param::Beta(v) => app.params.beta = v,
                Param::LearningRate(v) => app.params.lr = v,
                Param::Temperature(v) => app.params.temperature = v,
                Param::KlMode(mode) => app.params.kl_mode = mode,
                Param::GroupSize(k) => app.params.group_size = Some(k),
            }
            let stage = app.active().and_then(|r| r.stage);
            let label = param_change(&param, old);
            app.message = Some((format!("{label} at step {step}"), false));
            app.markers.push(Marker { stage, step, label });
        }
        Event::Checkpoint { path, .. } => app.message = Some((format!("checkpoint {path}"), false)),
        Event::LabelSaved { set, verdict } => {
            if app.pending.as_ref().is_some_and(|(p, _)| *p == set) {
                app.pending = None;
            }
            if let Some(i) = app.queue.iter().position(|p| p.id == set) {
                let set = app.queue.remove(i).expect("found");
                app.message = Some((format!("saved: {}", verdict_words(&verdict)), false));
                // A skip is stored, but it is no judgment to count.
                app.labels_saved += usize::from(!verdict.is_skip());
                app.judged.push(Judged {
                    set,
                    verdict,
                    criterion: app.criterion,
                });
                app.scroll = 0;
                app.ranking.clear();
            }
            if app.queue.is_empty() {
                return fresh_set(app);
            }
        }
        Event::Retracted { set } => {
            if let Some(judged) = app.retracting.take().filter(|j| j.set.id == set) {
                app.labels_saved = app.labels_saved.saturating_sub(usize::from(!judged.verdict.is_skip()));
                app.message = Some((format!("undone: {}", verdict_words(&judged.verdict)), false));
                // Back on screen to judge again.
                app.queue.push_front(judged.set);
                app.ranking.clear();
            }
        }
        Event::Error(text) => {
            app.pending = None;
            app.ranking.clear();
            app.message = Some((format!("error: {text}"), true));
        }
        Event::ShutDown => {
            app.trainer_gone = true;
            // A stage the thread was running when it ended will not go on.
            for row in app.stages.iter_mut().skip(1) {
                if matches!(
                    row.state,
                    StageState::Starting | StageState::Running | StageState::Paused
                ) {
                    row.state = StageState::Failed("the trainer thread ended".into());
                }
            }
            if app.quitting {
                return vec![Effect::Quit];
            }
        }
    }
    Vec::new()
}
