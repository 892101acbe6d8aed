//! The constitution pane, in the comparison pane's place while the CAI
//! stage is selected: one sampled response, the critic's critique of it
//! under each principle drawn (named), and the revision, side by side;
//! beneath, per principle how often it was drawn, changed the response and
//! beat it by the judge, and how many responses were revised overall.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::theme;
use crate::trainer::protocol::CaiView;
use crate::ui::app::{App, Pane};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, view: &CaiView) {
    let n = view.examples.len();
    let title = match n {
        0 => " constitution · nothing was revised ".to_string(),
        n => format!(" constitution · example {} of {n} · ←/→ ", app.cai_example % n + 1),
    };
    let block = Block::bordered()
        .title(title)
        .title_bottom(Line::from(overall(view)))
        .border_style(theme::border(app, app.focus == Pane::Compare));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [prompt_area, sides, counts_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(3)]).areas(inner);
    frame.render_widget(
        Paragraph::new(counts(view))
            .wrap(Wrap { trim: true })
            .style(theme::fg(app, Color::Gray)),
        counts_area,
    );
    let Some(example) = view.examples.get(app.cai_example % n.max(1)) else {
        return;
    };
    frame.render_widget(
        Paragraph::new(example.prompt.as_str()).style(theme::bold(app, Color::White)),
        prompt_area,
    );
    let columns = Layout::horizontal([Constraint::Ratio(1, 3); 3]).split(sides);
    let score = |i: usize| {
        example
            .scores
            .get(i)
            .map_or(String::new(), |s| format!(" · judge {s:.2}"))
    };
    // A principle the response already kept takes one grey line.
    let critiques: Vec<Line> = example
        .steps
        .iter()
        .zip(example.befores())
        .flat_map(|(step, before)| match step.changed(before) {
            true => vec![
                Line::styled(format!("{}:", step.principle), theme::bold(app, Color::Cyan)),
                Line::from(step.critique.clone()),
            ],
            false => vec![Line::styled(
                format!("{}: nothing to revise", step.principle),
                theme::fg(app, Color::Gray),
            )],
        })
        .collect();
    let panes = [
        (
            format!("original{}", score(0)),
            vec![Line::from(example.original.clone())],
        ),
        ("critiques".to_string(), critiques),
        (
            format!("revision{}", score(example.steps.len())),
            vec![Line::from(example.revision().to_string())],
        ),
    ];
    for ((name, text), column) in panes.into_iter().zip(columns.iter()) {
        let block = Block::bordered()
            .title(format!(" {name} "))
            .border_style(theme::fg(app, Color::DarkGray));
        frame.render_widget(
            Paragraph::new(text)
                .block(block)
                .wrap(Wrap { trim: true })
                .scroll((app.scroll, 0)),
            *column,
        );
    }
}

/// How many responses the rounds changed, and how many of those beat
/// their original by the judge.
fn overall(view: &CaiView) -> String {
    let won = view.won.map_or(String::new(), |w| {
        format!(" · {:.0}% of those beat the original", 100.0 * w)
    });
    format!(" {:.0}% of responses revised{won} ", 100.0 * view.changed)
}

/// Per principle: revised of drawn, and beat (with a judge).
fn counts(view: &CaiView) -> Line<'static> {
    let spans: Vec<Span> = view
        .counts
        .iter()
        .map(|c| {
            let beat = match view.won {
                Some(_) => format!(", {} beat", c.beat),
                None => String::new(),
            };
            Span::raw(format!("{} {}/{} revised{beat}  ", c.name, c.revised, c.drawn))
        })
        .collect();
    Line::from(spans)
}
