//! The comparison pane: one prompt and two responses side by side, wrapped
//! and scrollable, each token coloured by how far the policy moved from
//! the reference there (log π − log π_ref) or by the policy's own
//! log-prob, with the reward model's and the judge's scores and where the
//! judgment stands.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::theme;
use crate::trainer::protocol::Response;
use crate::ui::app::{App, Colouring, Pane};
use crate::ui::update::choice_words;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let colouring = match app.colouring {
        Colouring::Kl => "colour: KL to reference",
        Colouring::Logprob => "colour: log-prob",
    };
    let title = match app.shown() {
        Some(pair) => format!(" pair from {} · {} ", pair.policy, colouring),
        None => " pair ".into(),
    };
    let block = Block::bordered()
        .title(title)
        .title(Line::from(format!(" judged {} · waiting {} ", app.labels_saved, app.queue.len())).right_aligned())
        .border_style(theme::border(app, app.focus == Pane::Compare));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(pair) = app.shown() else {
        let text = "waiting for a pair from the trainer… (r asks for one)";
        frame.render_widget(Paragraph::new(text).style(theme::fg(app, Color::Gray)), inner);
        return;
    };
    let prompt = pair.prompt.trim().replace("\n\n", " ");
    let prompt_lines = (prompt.chars().count() as u16 / inner.width.max(1)) + 1;
    let [prompt_area, sides, status] = Layout::vertical([
        Constraint::Length(prompt_lines.min(4)),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(prompt)
            .style(theme::bold(app, Color::White))
            .wrap(Wrap { trim: true }),
        prompt_area,
    );
    let [left, right] = Layout::horizontal([Constraint::Ratio(1, 2); 2]).areas(sides);
    draw_response(frame, left, app, "1 left", &pair.left);
    draw_response(frame, right, app, "2 right", &pair.right);

    let line = match (app.pending, app.judged.last()) {
        (Some((_, choice)), _) => Line::styled(
            format!("saving: {}…", choice_words(choice)),
            theme::bold(app, Color::Yellow),
        ),
        (None, Some(last)) => Line::from(format!(
            "last: {} · 1 2 t x s judge · u undo · r new pair",
            choice_words(last.choice)
        )),
        (None, None) => Line::from("1 left · 2 right · t tie · x both bad · s skip · u undo"),
    };
    frame.render_widget(Paragraph::new(line), status);
}

fn draw_response(frame: &mut Frame, area: Rect, app: &App, name: &str, response: &Response) {
    let reward = response.reward.map_or("RM –".into(), |r| format!("RM {r:.2}"));
    let block = Block::bordered().title(format!(" {name} · {reward} · judge {:.2} ", response.judge));
    let text = token_lines(app, response);
    let paragraph = Paragraph::new(text)
        .block(block)
        .wrap(Wrap { trim: false })
        .scroll((app.scroll, 0));
    frame.render_widget(paragraph, area);
}

/// The response as styled spans, one per token, broken at newlines.
pub fn token_lines<'a>(app: &App, response: &'a Response) -> Vec<Line<'a>> {
    let mut lines = vec![Line::default()];
    for (i, token) in response.tokens.iter().enumerate() {
        let style = token_style(app, response.logprobs[i], response.ref_logprobs[i]);
        for (j, piece) in token.split('\n').enumerate() {
            if j > 0 {
                lines.push(Line::default());
            }
            if !piece.is_empty() {
                lines
                    .last_mut()
                    .expect("one line")
                    .push_span(Span::styled(piece, style));
            }
        }
    }
    lines
}

/// Red where the policy is far more (or, blue, far less) sure of a token
/// than the reference; by log-prob, green when sure and red when not.
fn token_style(app: &App, logp: f32, ref_logp: f32) -> Style {
    let colour = match app.colouring {
        Colouring::Kl => match logp - ref_logp {
            d if d > 1.0 => Some(Color::Red),
            d if d > 0.25 => Some(Color::Yellow),
            d if d < -1.0 => Some(Color::Blue),
            _ => None,
        },
        Colouring::Logprob => match logp {
            l if l > -0.1 => Some(Color::Green),
            l if l < -2.3 => Some(Color::Red),
            l if l < -0.7 => Some(Color::Yellow),
            _ => None,
        },
    };
    match colour {
        // Without colour, the strongest tokens are underlined instead.
        Some(Color::Red) if app.no_color => Style::default().add_modifier(Modifier::UNDERLINED),
        Some(c) => theme::fg(app, c),
        None => Style::default(),
    }
}
