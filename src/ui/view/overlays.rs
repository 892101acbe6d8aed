//! Windows drawn over the panes: the parameter editor (with the reason a
//! value is refused), the quit question, and the help listing every key.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::theme;
use crate::ui::app::{App, Editing, Editor};
use crate::ui::keys::HELP;

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
    let what = match editor.editing {
        Editing::Beta => "β, the KL coefficient (used from the next rollout)",
        Editing::LearningRate => "learning rate (used from the next optimizer step)",
        Editing::Temperature => "sampling temperature (used from the next rollout)",
    };
    let inner = popup(frame, area, 60, 6, " set a parameter ", app);
    let mut lines = vec![
        Line::from(what),
        Line::from(vec![
            Span::raw("> "),
            Span::styled(editor.input.as_str(), theme::bold(app, Color::White)),
            Span::raw("▏"),
        ]),
    ];
    match &editor.error {
        Some(why) => lines.push(Line::styled(why.as_str(), theme::error(app))),
        None => lines.push(Line::default()),
    }
    lines.push(Line::from("Enter apply · Esc cancel"));
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

pub fn help(frame: &mut Frame, area: Rect, app: &App) {
    let inner = popup(frame, area, 64, HELP.len() as u16 + 4, " keys (Esc closes) ", app);
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!("{keys:>12}  "), theme::bold(app, Color::Cyan)),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::default());
    lines.push(Line::from("  NO_COLOR=1 turns colours off"));
    frame.render_widget(Paragraph::new(lines), inner);
}
