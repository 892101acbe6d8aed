//! The charts pane: the chosen chart over the whole run (downsampled) above
//! the same series over the recent window at full resolution, with a
//! vertical marker wherever a parameter was changed by hand (yellow) or a
//! monitor raised an alert (red); and the reward model's reliability
//! diagram.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::symbols::Marker as Dots;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph};

use super::theme;
use crate::trainer::protocol::Stage;
use crate::ui::app::{App, CHARTS, ChartSpec, Pane, RELIABILITY};

const COLOURS: [Color; 3] = [Color::Cyan, Color::Magenta, Color::Green];
const MIN_HEIGHT_FOR_TWO: u16 = 12;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let spec = &CHARTS[app.chart];
    let block = Block::bordered()
        .title(format!(" {} ({}/{}) ", spec.title, app.chart + 1, CHARTS.len()))
        .title(Line::from(" [ ] other charts ").right_aligned())
        .border_style(theme::border(app, app.focus == Pane::Charts));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if spec.title == RELIABILITY {
        return draw_reliability(frame, inner, app);
    }
    let whole: Vec<(String, Vec<(f64, f64)>)> = series(app, spec, |h| h.whole());
    if whole.iter().all(|(_, points)| points.is_empty()) {
        let hint = "no data yet · [ ] other charts · Enter starts a stage";
        frame.render_widget(Paragraph::new(hint).style(theme::fg(app, Color::Gray)), inner);
        return;
    }
    // Too short for two readable charts: the whole run only.
    if inner.height < MIN_HEIGHT_FOR_TWO {
        draw_chart(frame, inner, app, spec, &whole, "whole run");
        return;
    }
    let recent = series(app, spec, |h| h.recent());
    let [top, bottom] = Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(inner);
    draw_chart(frame, top, app, spec, &whole, "whole run");
    draw_chart(frame, bottom, app, spec, &recent, "recent");
}

/// (legend name, points) of each of the chart's series.
fn series(
    app: &App,
    spec: &ChartSpec,
    points: impl Fn(&crate::ui::history::History) -> Vec<(f64, f64)>,
) -> Vec<(String, Vec<(f64, f64)>)> {
    spec.series
        .iter()
        .map(|(stage, key)| {
            let name = format!("{} {key}", stage.name());
            let points = app
                .series
                .get(&(*stage, key.to_string()))
                .map(&points)
                .unwrap_or_default();
            (name, points)
        })
        .collect()
}

fn draw_chart(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    spec: &ChartSpec,
    series: &[(String, Vec<(f64, f64)>)],
    label: &str,
) {
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return;
    }
    if x1 - x0 < 1.0 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-9 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    // Changes made (yellow) during this chart's stages and alerts raised
    // (red, PPO's) on it, inside the window.
    let on_chart = |stage: Option<Stage>| stage.is_none_or(|s| spec.series.iter().any(|(st, _)| *st == s));
    let changes = app
        .markers
        .iter()
        .filter(|m| on_chart(m.stage))
        .map(|m| (m.step, false));
    let alerts = app
        .alert_log
        .iter()
        .filter(|_| on_chart(Some(Stage::Ppo)))
        .map(|a| (a.step, true));
    let marks: Vec<([(f64, f64); 2], bool)> = changes
        .chain(alerts)
        .map(|(step, alert)| (step as f64, alert))
        .filter(|&(x, _)| x >= x0 && x <= x1)
        .map(|(x, alert)| ([(x, y0), (x, y1)], alert))
        .collect();
    let mut datasets: Vec<Dataset> = series
        .iter()
        .enumerate()
        .filter(|(_, (_, p))| !p.is_empty())
        .map(|(i, (name, points))| {
            Dataset::default()
                .name(name.as_str())
                .marker(Dots::Braille)
                .graph_type(GraphType::Line)
                .style(theme::fg(app, COLOURS[i % COLOURS.len()]))
                .data(points)
        })
        .collect();
    for (mark, alert) in &marks {
        let colour = if *alert { Color::Red } else { Color::Yellow };
        datasets.push(
            Dataset::default()
                .marker(Dots::Dot)
                .graph_type(GraphType::Line)
                .style(theme::fg(app, colour))
                .data(mark),
        );
    }
    let fmt = |v: f64| {
        if v.abs() >= 1000.0 || (v != 0.0 && v.abs() < 0.01) {
            format!("{v:.1e}")
        } else {
            format!("{v:.2}")
        }
    };
    let chart = Chart::new(datasets)
        .x_axis(
            Axis::default()
                .title(format!("step ({label})"))
                .bounds([x0, x1])
                .labels([format!("{x0:.0}"), format!("{x1:.0}")]),
        )
        .y_axis(Axis::default().bounds([y0, y1]).labels([fmt(y0), fmt(y1)]))
        .hidden_legend_constraints((Constraint::Ratio(1, 1), Constraint::Ratio(1, 1)));
    frame.render_widget(chart, area);
}

/// The reward model's reliability diagram: for each confidence bin with
/// pairs in it, the share it ordered correctly against its mean
/// confidence; a calibrated model sits on the diagonal.
fn draw_reliability(frame: &mut Frame, area: Rect, app: &App) {
    let points: Vec<(f64, f64)> = app
        .calibration
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| (b.confidence as f64, b.accuracy as f64))
        .collect();
    if points.is_empty() {
        let hint = "no reward model yet: its reliability shows here when RM finishes";
        frame.render_widget(Paragraph::new(hint).style(theme::fg(app, Color::Gray)), area);
        return;
    }
    let diagonal = [(0.5, 0.5), (1.0, 1.0)];
    let datasets = vec![
        Dataset::default()
            .name("calibrated")
            .marker(Dots::Dot)
            .graph_type(GraphType::Line)
            .style(theme::fg(app, Color::DarkGray))
            .data(&diagonal),
        Dataset::default()
            .name("accuracy by confidence")
            .marker(Dots::Braille)
            .graph_type(GraphType::Line)
            .style(theme::fg(app, COLOURS[0]))
            .data(&points),
    ];
    let chart = Chart::new(datasets)
        .x_axis(
            Axis::default()
                .title("confidence")
                .bounds([0.5, 1.0])
                .labels(["0.5", "1.0"]),
        )
        .y_axis(Axis::default().title("accuracy").bounds([0.0, 1.0]).labels(["0", "1"]))
        .hidden_legend_constraints((Constraint::Ratio(1, 1), Constraint::Ratio(1, 1)));
    frame.render_widget(chart, area);
}
