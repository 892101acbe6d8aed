//! The blind evaluation, in the comparison pane's place while one is open:
//! a held-out prompt and two models' answers side by side with no names,
//! no scores and no colours (anything that told them apart would unblind
//! them); beneath, model A's win rate by you and by the judge with their
//! 95% intervals, and how often you and the judge agree. Once every pair
//! is judged, the figures alone, with which model was A and which B.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::theme;
use crate::rlhf::win_rate::WinRate;
use crate::ui::app::{App, EvalView, Pane};
use crate::ui::words::choice_words;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, view: &EvalView) {
    let n = view.items.len();
    let title = match view.done() {
        true => format!(" blind evaluation · {n} pairs judged "),
        false => format!(" blind evaluation · pair {} of {n} ", view.at + 1),
    };
    let block = Block::bordered()
        .title(title)
        .title_bottom(Line::from(" 1 2 better · t tie · x both bad · s skip · Esc ends "))
        .border_style(theme::border(app, app.focus == Pane::Compare));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [body, figures] = Layout::vertical([Constraint::Min(1), Constraint::Length(4)]).areas(inner);
    frame.render_widget(Paragraph::new(tally_lines(view)).wrap(Wrap { trim: true }), figures);
    let Some(item) = view.items.get(view.at) else {
        let models = vec![
            Line::from(format!("A: {}", view.a)),
            Line::from(format!("B: {}", view.b)),
        ];
        frame.render_widget(Paragraph::new(models).wrap(Wrap { trim: true }), body);
        return;
    };
    let [prompt, sides, status] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(1), Constraint::Length(1)]).areas(body);
    frame.render_widget(
        Paragraph::new(item.prompt.as_str())
            .style(theme::bold(app, Color::White))
            .wrap(Wrap { trim: true }),
        prompt,
    );
    let [left, right] = Layout::horizontal([Constraint::Ratio(1, 2); 2]).areas(sides);
    for (name, text, area) in [("1 left", &item.left, left), ("2 right", &item.right, right)] {
        frame.render_widget(
            Paragraph::new(text.as_str())
                .block(Block::bordered().title(format!(" {name} ")))
                .wrap(Wrap { trim: true })
                .scroll((app.scroll, 0)),
            area,
        );
    }
    if let Some(choice) = view.pending {
        let saving = Line::styled(
            format!("saving: {}…", choice_words(choice)),
            theme::bold(app, Color::Yellow),
        );
        frame.render_widget(Paragraph::new(saving), status);
    }
}

/// A's win rate by you and by the judge, and your agreement.
fn tally_lines(view: &EvalView) -> Vec<Line<'static>> {
    let Some(tally) = &view.tally else {
        return vec![Line::from(
            "A's win rate shows after the first verdict (ties half a win; 95% Wilson interval)",
        )];
    };
    let rate = |who: &str, r: &WinRate| {
        format!(
            "{who}: A won {}, B won {}, {} ties · A's win rate {:.2} [{:.2}–{:.2}]",
            r.wins_a, r.wins_b, r.ties, r.win_rate_a, r.ci_low, r.ci_high
        )
    };
    let mut lines = vec![Line::from(rate("you", &tally.person))];
    match &tally.judge {
        Some(judge) => lines.push(Line::from(rate("judge", judge))),
        None => lines.push(Line::from("judge: the run has none")),
    }
    if let Some(agreement) = tally.agreement {
        let kappa = tally.kappa.map_or(String::new(), |k| format!(" · Cohen's κ {k:.2}"));
        lines.push(Line::from(format!(
            "you and the judge agree on {:.0}%{kappa}",
            100.0 * agreement
        )));
    }
    lines
}
