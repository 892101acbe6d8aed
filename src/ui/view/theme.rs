//! Colours, or none: with `NO_COLOR` set every style here drops its colour
//! and keeps only its modifiers (bold, reversed), so nothing depends on
//! colour alone.

use ratatui::style::{Color, Modifier, Style};

use crate::ui::app::App;

pub fn fg(app: &App, color: Color) -> Style {
    if app.no_color {
        Style::default()
    } else {
        Style::default().fg(color)
    }
}

pub fn bold(app: &App, color: Color) -> Style {
    fg(app, color).add_modifier(Modifier::BOLD)
}

/// The focused pane's border stands out; the others are dim.
pub fn border(app: &App, focused: bool) -> Style {
    if focused {
        bold(app, Color::Cyan)
    } else {
        fg(app, Color::DarkGray)
    }
}

pub fn error(app: &App) -> Style {
    bold(app, Color::Red)
}
