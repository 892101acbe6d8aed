//! The status bar: device, stage and step, pace and time left, the live
//! parameters, paused or running, the newest monitor alert; below it the
//! last message (errors in red) or the main keys.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::theme;
use crate::trainer::protocol::{Control, KlMode, StageState};
use crate::ui::app::App;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let sep = || Span::styled(" │ ", theme::fg(app, Color::DarkGray));
    let mut spans = Vec::new();
    // The alerts still on, newest first, before anything else on the line
    // so a narrow terminal never cuts them; the message line has the numbers.
    if !app.alerts.is_empty() {
        let titles: Vec<&str> = app.alerts.iter().rev().map(|a| a.kind.title()).collect();
        spans.push(Span::styled(
            format!(" ⚠ {} ", titles.join(", ")),
            theme::error(app).add_modifier(Modifier::BOLD | Modifier::REVERSED),
        ));
    }
    spans.push(Span::raw(format!(" {}", app.device)));
    if let Some(at) = &app.attached {
        spans.push(sep());
        spans.push(Span::styled(format!("attached {at}"), theme::bold(app, Color::Cyan)));
    }
    if let Some(external) = &app.external {
        spans.push(sep());
        spans.push(Span::styled(
            format!("external {}", external.trainer),
            theme::bold(app, Color::Magenta),
        ));
    }
    match app.active() {
        Some(row) => {
            let name = row.stage.map_or("", |s| s.name()).to_uppercase();
            spans.push(sep());
            spans.push(Span::styled(
                format!("{name} {}/{}", row.step, row.total),
                theme::bold(app, Color::White),
            ));
            if row.finishing() {
                spans.extend([sep(), Span::raw("held-out evaluation and checkpoint")]);
            } else {
                let pace = app
                    .steps_per_second()
                    .map_or("– steps/s".into(), |s| format!("{s:.2} steps/s"));
                let eta = app
                    .eta_seconds()
                    .map_or("ETA –".into(), |s| format!("ETA {}", duration(s)));
                spans.extend([sep(), Span::raw(pace), sep(), Span::raw(eta)]);
            }
        }
        None => spans.extend([sep(), Span::raw("idle")]),
    }
    let p = &app.params;
    // Whose learning rate, where the running stage does not say it.
    let whose = match app.active().and_then(|r| r.stage) {
        Some(stage) if stage == p.lr_of => String::new(),
        _ => format!("{} ", p.lr_of.name().to_uppercase()),
    };
    let kl = match p.kl_mode {
        KlMode::Fixed => "fixed",
        KlMode::Adaptive => "adaptive",
    };
    spans.extend([
        sep(),
        Span::raw(format!("β {} ({kl})", p.beta)),
        sep(),
        Span::raw(format!("{whose}lr {:.2e}", p.lr)),
        sep(),
        Span::raw(format!("T {}", p.temperature)),
    ]);
    if let Some(k) = p.group_size {
        spans.extend([sep(), Span::raw(format!("K {k}"))]);
    }
    let state = match app.active() {
        Some(row) if row.state == StageState::Paused => Some(("⏸ PAUSED", Color::Yellow)),
        Some(row) if row.state == StageState::Starting => Some(("… STARTING", Color::Green)),
        Some(row) if row.finishing() => Some(("… FINISHING", Color::Green)),
        Some(_) => Some(("▶ RUNNING", Color::Green)),
        None => None,
    };
    if let Some((words, colour)) = state {
        spans.push(sep());
        spans.push(Span::styled(
            words,
            theme::bold(app, colour).add_modifier(Modifier::REVERSED),
        ));
    }
    // How fast the person labels, once two judgments are timed: last, as
    // the first thing a narrow terminal cuts.
    if let Some((seconds, rate)) = app.throughput.as_ref().and_then(|t| t.median_seconds.zip(t.per_hour)) {
        spans.push(sep());
        spans.push(Span::raw(format!("labeling {seconds:.0} s each, {rate:.0}/h")));
    }

    let second = match &app.message {
        Some((text, true)) => Line::styled(format!(" {text}"), theme::error(app)),
        Some((text, false)) => Line::styled(format!(" {text}"), theme::fg(app, Color::Cyan)),
        None if app.external.is_some() => controls_line(app),
        None => Line::styled(
            " ? help · q quit · space pause · Enter start stage · Tab panes · b β · l lr",
            Style::default().add_modifier(Modifier::DIM),
        ),
    };
    frame.render_widget(Paragraph::new(vec![Line::from(spans), second]), area);
}

/// An external trainer's keys: the controls it takes as usual, the others
/// greyed and struck through.
fn controls_line(app: &App) -> Line<'static> {
    const KEYS: [(&str, Control); 10] = [
        ("space pause", Control::Pause),
        (". step", Control::Step),
        ("S stop", Control::Stop),
        ("c checkpoint", Control::Checkpoint),
        ("l lr", Control::LearningRate),
        ("b β", Control::Beta),
        ("T temperature", Control::Temperature),
        ("1 2 label", Control::Label),
        ("r new pair", Control::Samples),
        ("Enter start", Control::Start),
    ];
    let mut spans = vec![Span::raw(" ? help · q detach")];
    for (keys, control) in KEYS {
        spans.push(Span::raw(" · "));
        let style = match app.takes(control) {
            true => Style::default(),
            false => theme::fg(app, Color::DarkGray).add_modifier(Modifier::CROSSED_OUT),
        };
        spans.push(Span::styled(keys, style));
    }
    Line::from(spans)
}

/// `1h02m`, `3m05s` or `42s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}
