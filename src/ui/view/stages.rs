//! The stage selector: Base → SFT → CAI → RM → PPO, with GRPO and RLOO
//! beside PPO (on the same reward model) and DPO (the offline path from
//! the supervised policy), each with its state and,
//! once done, its held-out results beneath; the one under the cursor
//! highlighted and its checkpoint in the title, with the iterative loop's
//! round and the reward model's version.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::theme;
use crate::run::names;
use crate::trainer::protocol::{Stage, StageState};
use crate::ui::app::{App, Pane, StageRow};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let selected = &app.stages[app.selected];
    let checkpoint = match &selected.state {
        StageState::Done { checkpoint } | StageState::Stopped { checkpoint } => format!(" {checkpoint} "),
        _ => String::new(),
    };
    let round = match app.rm_version {
        0 => format!("round {}", app.round.max(1)),
        v => format!("round {} · RM v{v}", app.round.max(1)),
    };
    let block = Block::bordered()
        .title(format!(" stages · {} · {round} ", app.run))
        .title(Line::from(checkpoint).right_aligned())
        .border_style(theme::border(app, app.focus == Pane::Stages));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // The base model's cell holds only "Base ready →"; the stages share the
    // rest, a stage that has run (with its state and results to show)
    // twice as wide as one that has not.
    let widths = app.stages.iter().map(|row| match (row.stage, &row.state) {
        (None, _) => Constraint::Length(BASE_WIDTH),
        (Some(_), StageState::NotStarted) => Constraint::Fill(1),
        (Some(_), _) => Constraint::Fill(2),
    });
    let cells = Layout::horizontal(widths.collect::<Vec<_>>()).split(inner);
    for (i, (row, cell)) in app.stages.iter().zip(cells.iter()).enumerate() {
        // GRPO, RLOO and DPO are PPO's alternatives: no arrow leads to them.
        let next = app.stages.get(i + 1).and_then(|r| r.stage);
        let arrow = if next.is_some_and(|s| !s.is_alternative()) {
            " →"
        } else {
            ""
        };
        let mut style = state_style(app, &row.state);
        if i == app.selected {
            style = style.add_modifier(Modifier::REVERSED);
        }
        // In a narrow cell the state is a mark, so the arrow stays in view.
        let mut label = format!("{} {}", name(row), state_words(row));
        if (label.chars().count() + arrow.chars().count()) as u16 > cell.width {
            label = format!("{} {}", name(row), state_mark(row));
        }
        let line = Line::from(vec![Span::styled(label, style), Span::raw(arrow)]);
        let results = Line::styled(results(app, row, cell.width), theme::fg(app, Color::Gray));
        frame.render_widget(Paragraph::new(vec![line, results]), *cell);
    }
}

/// A finished stage's held-out figures, as its evaluation last logged
/// them (PPO without an evaluator: its last iteration's RM score and KL),
/// in as many words as fit `width` (a column stays between cells).
fn results(app: &App, row: &StageRow, width: u16) -> String {
    let (Some(stage), StageState::Done { .. }) = (row.stage, &row.state) else {
        return String::new();
    };
    let judged = app.last(stage, names::EVAL_JUDGE_SCORE).is_some();
    // What PPO and DPO started from: CAI's policy where the run has one.
    let (start, start_words) = match app.last(Stage::Cai, names::EVAL_JUDGE_SCORE) {
        Some(_) => (Stage::Cai, "CAI's"),
        None => (Stage::Sft, "SFT's"),
    };
    // (stage, metric, words, digits) of the figures shown.
    let (what, wanted): (&str, [(Stage, &str, &str, usize); 2]) = match stage {
        Stage::Sft => (
            "held-out",
            [
                (Stage::Sft, names::EVAL_JUDGE_SCORE, "judge", 3),
                (Stage::Sft, names::EVAL_LOSS, "loss", 3),
            ],
        ),
        Stage::Cai => (
            "held-out",
            [
                (Stage::Cai, names::EVAL_HARMFUL_COMPLIANCE, "harm", 2),
                (Stage::Cai, names::EVAL_RUDENESS, "rude", 2),
            ],
        ),
        Stage::Rm => (
            "held-out",
            [
                (Stage::Rm, names::EVAL_ACCURACY, "accuracy", 3),
                (Stage::Rm, names::EVAL_ECE, "ECE", 3),
            ],
        ),
        Stage::Ppo | Stage::Grpo | Stage::Rloo if judged => (
            "held-out",
            [
                (stage, names::EVAL_JUDGE_SCORE, "judge", 3),
                (start, names::EVAL_JUDGE_SCORE, start_words, 3),
            ],
        ),
        Stage::Dpo if judged => (
            "held-out",
            [
                (Stage::Dpo, names::EVAL_JUDGE_SCORE, "judge", 3),
                (start, names::EVAL_JUDGE_SCORE, start_words, 3),
            ],
        ),
        Stage::Dpo => (
            "held-out",
            [
                (Stage::Dpo, names::EVAL_DPO_ACCURACY, "pairs right", 3),
                (Stage::Dpo, names::EVAL_KL, "KL", 2),
            ],
        ),
        // Without an evaluator, where the last iteration left the policy.
        Stage::Ppo => (
            "last iteration",
            [
                (Stage::Ppo, names::SCORES, "RM score", 2),
                (Stage::Ppo, names::KL, "KL", 2),
            ],
        ),
        Stage::Grpo | Stage::Rloo => (
            "last iteration",
            [(stage, names::REWARD, "RM score", 2), (stage, names::KL, "KL", 2)],
        ),
    };
    let figures: Vec<String> = wanted
        .iter()
        .filter_map(|&(stage, key, words, digits)| app.last(stage, key).map(|v| format!("{words} {v:.digits$}")))
        .collect();
    if figures.is_empty() {
        return String::new();
    }
    let fits = |text: &String| text.chars().count() < width as usize;
    let all = figures.join(" · ");
    [
        format!("{what} {all}"),
        all,
        figures.first().cloned().unwrap_or_default(),
    ]
    .into_iter()
    .find(fits)
    .unwrap_or_default()
}

fn name(row: &StageRow) -> String {
    row.stage.map_or("Base".into(), |s| s.name().to_uppercase())
}

/// "Base ready →" and a column.
const BASE_WIDTH: u16 = 13;

/// The state in a mark or two, for a narrow cell.
fn state_mark(row: &StageRow) -> String {
    match &row.state {
        StageState::NotStarted => "–".into(),
        StageState::Done { .. } if row.stage.is_some() => "✓".into(),
        StageState::Running if row.finishing() => "… end".into(),
        StageState::Running => format!("▶ {}", row.step),
        StageState::Paused => format!("⏸ {}", row.step),
        StageState::Stopped { .. } => "⏹".into(),
        _ => state_words(row),
    }
}

fn state_words(row: &StageRow) -> String {
    match &row.state {
        StageState::NotStarted => "not started".into(),
        StageState::Starting => "starting".into(),
        StageState::Running if row.finishing() => format!("finishing {}/{}", row.step, row.total),
        StageState::Running => format!("▶ {}/{}", row.step, row.total),
        StageState::Paused => format!("⏸ {}/{}", row.step, row.total),
        StageState::Done { .. } if row.stage.is_none() => "ready".into(),
        StageState::Done { checkpoint } => {
            let name = checkpoint.rsplit('/').next().unwrap_or(checkpoint);
            format!("✓ {name}")
        }
        StageState::Stopped { checkpoint } => {
            let name = checkpoint.rsplit('/').next().unwrap_or(checkpoint);
            format!("⏹ {name}")
        }
        StageState::Failed(_) => "✗ failed".into(),
    }
}

fn state_style(app: &App, state: &StageState) -> ratatui::style::Style {
    match state {
        StageState::Running | StageState::Starting => theme::bold(app, Color::Green),
        StageState::Paused => theme::bold(app, Color::Yellow),
        StageState::Done { .. } => theme::fg(app, Color::Cyan),
        StageState::Stopped { .. } => theme::fg(app, Color::Yellow),
        StageState::Failed(_) => theme::error(app),
        StageState::NotStarted => theme::fg(app, Color::Gray),
    }
}
