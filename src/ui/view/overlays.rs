//! Windows drawn over the panes: the parameter editor (with the reason a
//! value is refused), the quit question, the help listing every key, and
//! the alerts raised with their numbers.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::theme;
use crate::trainer::protocol::{Stage, StageState};
use crate::ui::app::{App, Editing, Editor, help_lines};
use crate::ui::keys::{HELP, READING};

/// A box `width`×`height` in the middle of `area`, cleared.
fn popup(frame: &mut Frame, area: Rect, width: u16, height: u16, title: &str, app: &App) -> Rect {
    let rect = area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    );
    frame.render_widget(Clear, rect);
    let block = Block::bordered()
        .title(title.to_string())
        .border_style(theme::border(app, true));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    inner
}

pub fn editor(frame: &mut Frame, area: Rect, app: &App, editor: &Editor) {
    let dpo = app.active().and_then(|r| r.stage) == Some(crate::trainer::protocol::Stage::Dpo);
    let what = match editor.editing {
        Editing::Beta if dpo => "β, DPO's implied-reward scale (used from the next step)",
        Editing::Beta => "β, the KL coefficient (used from the next rollout)",
        Editing::LearningRate => "learning rate (used from the next optimizer step)",
        Editing::Temperature => "sampling temperature (used from the next rollout)",
        Editing::GroupSize => "K, the responses sampled per prompt (used from the next rollout)",
    };
    let inner = popup(frame, area, 66, 6, " set a parameter ", app);
    let mut lines = vec![
        Line::from(what),
        Line::from(vec![
            Span::raw("> "),
            Span::styled(
                editor.input.as_str(),
                // Selected: what is typed replaces it.
                if editor.selected {
                    theme::bold(app, Color::White).add_modifier(ratatui::style::Modifier::REVERSED)
                } else {
                    theme::bold(app, Color::White)
                },
            ),
            Span::raw("▏"),
        ]),
    ];
    match &editor.error {
        Some(why) => lines.push(Line::styled(why.as_str(), theme::error(app))),
        None => lines.push(Line::default()),
    }
    lines.push(Line::from(
        "Enter apply · Esc cancel · Ctrl-U clear · typing replaces it",
    ));
    frame.render_widget(Paragraph::new(lines), inner);
}

pub fn confirm_quit(frame: &mut Frame, area: Rect, app: &App) {
    let inner = popup(frame, area, 56, 5, " quit? ", app);
    let lines = vec![
        Line::from("A stage is running."),
        Line::from("y: write a checkpoint and quit"),
        Line::from("n: quit without one · Esc: stay"),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Enter on a finished stage: what training it again keeps.
pub fn confirm_rerun(frame: &mut Frame, area: Rect, app: &App, stage: Stage) {
    let name = stage.name().to_uppercase();
    let row = app.stages.iter().find(|r| r.stage == Some(stage));
    let (checkpoint, step) = match row.map(|r| (&r.state, r.step)) {
        Some((StageState::Done { checkpoint }, step)) => (checkpoint.as_str(), step),
        _ => ("", 0),
    };
    let inner = popup(frame, area, 72, 7, &format!(" train {name} again? "), app);
    let lines = vec![
        Line::from(format!("{name} is done: {checkpoint}")),
        Line::from(format!(
            "Training it again starts it over, counting steps on from {step}:"
        )),
        Line::from("no checkpoint is overwritten (the newest few per stage are kept)."),
        Line::from("y / Enter: train it again · n / Esc: keep it"),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The help window from line `first` (as far down as the end allows).
pub fn help(frame: &mut Frame, area: Rect, app: &App, first: u16) {
    let height = help_lines() + 2;
    let title = match height > area.height {
        true => " keys (Esc closes · ↓↑ scroll) ",
        false => " keys (Esc closes) ",
    };
    let inner = popup(frame, area, 100, height, title, app);
    let row = |(keys, what): &(&str, &'static str)| {
        Line::from(vec![
            Span::styled(format!("{keys:>12}  "), theme::bold(app, Color::Cyan)),
            Span::raw(*what),
        ])
    };
    let mut lines: Vec<Line> = HELP.iter().map(row).collect();
    lines.push(Line::default());
    lines.push(Line::styled("  reading the screen", theme::bold(app, Color::White)));
    lines.extend(READING.iter().map(row));
    lines.push(Line::default());
    lines.push(Line::from("  NO_COLOR=1 turns colours off"));
    let last_first = (lines.len() as u16).saturating_sub(inner.height);
    frame.render_widget(Paragraph::new(lines).scroll((first.min(last_first), 0)), inner);
}

pub fn alerts(frame: &mut Frame, area: Rect, app: &App) {
    let width = area.width.saturating_sub(4).max(20);
    let height = area.height.saturating_sub(4).max(5);
    let inner = popup(frame, area, width, height, " alerts, newest first (Esc closes) ", app);
    if app.alert_log.is_empty() {
        frame.render_widget(Paragraph::new("no alerts: the monitors watch PPO as it runs"), inner);
        return;
    }
    let lines: Vec<Line> = app
        .alert_log
        .iter()
        .rev()
        .map(|alert| {
            let on = app.alerts.iter().any(|a| a.kind == alert.kind && a.step == alert.step);
            let style = if on {
                theme::error(app)
            } else {
                theme::fg(app, Color::Gray)
            };
            Line::from(vec![
                Span::styled(format!("{:>6}  {:<20}", alert.step, alert.kind.title()), style),
                Span::raw(alert.message.as_str()),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
