//! The comparison pane: one prompt and two responses side by side (or, in
//! rank mode, K stacked, each with its place once ranked), wrapped and
//! scrollable, each token coloured by how far the policy moved from
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
use crate::ui::words::{ranking_words, verdict_words};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    if let Some(view) = &app.eval {
        return super::eval::draw(frame, area, app, view);
    }
    if let (true, Some(view)) = (app.showing_cai(), &app.cai) {
        return super::constitution::draw(frame, area, app, view);
    }
    // The criterion up here: on the bottom edge it crowded the counts and
    // the agreement of a narrow pane.
    let criterion = app.criterion.name();
    let title = match app.shown() {
        Some(set) if set.responses.len() == 2 => format!(" pair from {} · {criterion} ", set.policy),
        Some(set) => format!(" rank {} from {} · {criterion} ", set.responses.len(), set.policy),
        None => format!(" pair · {criterion} "),
    };
    let block = Block::bordered()
        .title(title)
        .title_bottom(Line::from(counts(app)))
        .title_bottom(Line::from(agreement(app)).right_aligned())
        .border_style(theme::border(app, app.focus == Pane::Compare));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(set) = app.shown() else {
        let text = "waiting for responses from the trainer… (r asks for more)";
        frame.render_widget(Paragraph::new(text).style(theme::fg(app, Color::Gray)), inner);
        return;
    };
    let prompt = set.asked.readable();
    let prompt_lines = (prompt.chars().count() as u16 / inner.width.max(1)) + 1;
    let [prompt_area, sides, legend, status] = Layout::vertical([
        Constraint::Length(prompt_lines.min(4)),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(prompt)
            .style(theme::bold(app, Color::White))
            .wrap(Wrap { trim: true }),
        prompt_area,
    );
    let k = set.responses.len();
    if k == 2 {
        let [left, right] = Layout::horizontal([Constraint::Ratio(1, 2); 2]).areas(sides);
        draw_response(frame, left, app, "1 left", &set.responses[0]);
        draw_response(frame, right, app, "2 right", &set.responses[1]);
    } else {
        let rows = Layout::vertical(vec![Constraint::Ratio(1, k as u32); k]).split(sides);
        for (i, (response, row)) in set.responses.iter().zip(rows.iter()).enumerate() {
            let name = match app.ranking.iter().position(|&r| r == i) {
                Some(place) => format!("{} · ranked #{}", i + 1, place + 1),
                None => format!("{}", i + 1),
            };
            draw_response(frame, *row, app, &name, response);
        }
    }
    frame.render_widget(Paragraph::new(colour_legend(app)), legend);
    frame.render_widget(Paragraph::new(status_line(app, k)), status);
}

/// What the token colours mean, each sample in its own colour.
fn colour_legend(app: &App) -> Line<'static> {
    let (what, samples, other): (_, [(&str, f32); 3], _) = match app.colouring {
        Colouring::Kl => (
            "colour = log π − log π_ref: ",
            [("> 1", 1.5), ("> 0.25", 0.5), ("< −1", -1.5)],
            "log-prob",
        ),
        Colouring::Logprob => (
            "colour = log π: ",
            [("> −0.1 sure", 0.0), ("< −0.7", -1.0), ("< −2.3 unsure", -3.0)],
            "KL",
        ),
    };
    let mut spans = vec![Span::styled(what, theme::fg(app, Color::Gray))];
    for (words, value) in samples {
        // The sample is coloured as a token with that value would be.
        let (logp, ref_logp) = match app.colouring {
            Colouring::Kl => (value, 0.0),
            Colouring::Logprob => (value, value),
        };
        spans.push(Span::styled(words, token_style(app, logp, ref_logp)));
        spans.push(Span::raw(" "));
    }
    spans.push(Span::styled(
        format!("nats · v {other} colours"),
        theme::fg(app, Color::Gray),
    ));
    Line::from(spans)
}

/// Judged so far (skips not counted) and sets waiting to be judged.
fn counts(app: &App) -> String {
    format!(" judged {} · {} to judge ", app.labels_saved, app.queue.len())
}

/// Agreement on the criterion: Cohen's κ between the person and the judge
/// (with the units both labelled) and Krippendorff's α over everyone.
fn agreement(app: &App) -> String {
    let number = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    let Some(agreement) = app.current_agreement().filter(|a| a.shared > 0) else {
        return String::new();
    };
    let kappa = agreement.human_judge().map_or(String::new(), |k| {
        format!("κ you–judge {} ({} sets) · ", number(k.kappa), k.units)
    });
    format!(" {kappa}α all {} ", number(agreement.alpha))
}

/// Where the judgment stands, the judge's view of the last one, and the keys.
fn status_line(app: &App, k: usize) -> Line<'static> {
    if let Some((_, verdict)) = &app.pending {
        return Line::styled(
            format!("saving: {}…", verdict_words(verdict)),
            theme::bold(app, Color::Yellow),
        );
    }
    if k > 2 {
        let typed = if app.ranking.is_empty() {
            "best first".to_string()
        } else {
            format!("{} > …", ranking_words(&app.ranking))
        };
        return Line::from(format!("rank 1–{k}: {typed} · Backspace back · s skip · u undo"));
    }
    match app.judged.last() {
        Some(last) => {
            // A skip is no judgment to agree with.
            let judge = last
                .set
                .judge
                .iter()
                .find(|(c, _)| *c == last.criterion)
                .filter(|_| !last.verdict.is_skip())
                .map_or(String::new(), |(_, v)| {
                    let agrees = if *v == last.verdict { "agrees" } else { "differs" };
                    format!(" · judge: {} ({agrees})", verdict_words(v))
                });
            Line::from(format!(
                "last: {}{judge} · 1 2 t x s · u undo · r new",
                verdict_words(&last.verdict)
            ))
        }
        None => Line::from("1 left · 2 right · t tie · x both bad · s skip · u undo · R rank mode"),
    }
}

fn draw_response(frame: &mut Frame, area: Rect, app: &App, name: &str, response: &Response) {
    // The reward model's score is unbounded (only differences mean
    // something), the judge's runs from 0 to 1: written so they do not
    // read alike.
    let reward = response.reward.map_or("no RM yet".into(), |r| format!("RM {r:+.2}"));
    // A run without an evaluator shows no judge rather than a zero.
    let judge = response.judge.map_or(String::new(), |j| format!(" · judge {j:.2}/1"));
    // The scores on a line of their own, which wraps in a narrow box
    // where a title would be cut.
    let block = Block::bordered().title(format!(" {name} "));
    let scores = format!("{reward}{judge} · T {}", response.temperature);
    let mut text = vec![Line::styled(scores, theme::fg(app, Color::DarkGray))];
    text.extend(token_lines(app, response));
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
        // An external trainer's completions come without log-probs: plain.
        let style = match (response.logprobs.get(i), response.ref_logprobs.get(i)) {
            (Some(&logp), Some(&ref_logp)) => token_style(app, logp, ref_logp),
            _ => Style::default(),
        };
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
