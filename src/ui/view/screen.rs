//! The whole screen: stage selector on top, charts and the comparison side
//! by side (stacked on narrow terminals), the status bar at the bottom,
//! and any overlay above them. Reads the `App`; changes nothing.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};

use super::{charts, compare, overlays, stages, status};
use crate::ui::app::{App, Overlay};

/// Terminals narrower than this stack the charts above the comparison.
const SIDE_BY_SIDE_WIDTH: u16 = 120;

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let [top, body, bottom] =
        Layout::vertical([Constraint::Length(4), Constraint::Min(4), Constraint::Length(2)]).areas(area);
    let [left, right] = if area.width >= SIDE_BY_SIDE_WIDTH {
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body)
    } else {
        Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body)
    };
    stages::draw(frame, top, app);
    charts::draw(frame, left, app);
    compare::draw(frame, right, app);
    status::draw(frame, bottom, app);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help(first) => overlays::help(frame, area, app, *first),
        Overlay::Editor(editor) => overlays::editor(frame, area, app, editor),
        Overlay::ConfirmQuit => overlays::confirm_quit(frame, area, app),
        Overlay::ConfirmRerun(stage) => overlays::confirm_rerun(frame, area, app, *stage),
        Overlay::Alerts => overlays::alerts(frame, area, app),
    }
}
