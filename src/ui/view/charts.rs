//! The charts pane: the chosen chart over the whole run (downsampled) above
//! the same series over the recent window at full resolution once the two
//! differ, with a vertical marker wherever a parameter was changed by hand
//! (yellow) or a monitor raised an alert (red), a held-out level where the
//! chart has one, a legend line naming all of it, and the y axis's
//! unit in the title; the methods' comparisons, one figure against
//! another with a colour per method and each method's held-out result as
//! a block; and the reward model's reliability diagram with its numbers.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::symbols::Marker as Dots;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph};

use super::theme;
use crate::run::names;
use crate::trainer::protocol::{ReliabilityBin, Stage};
use crate::ui::app::{App, CHARTS, ChartSpec, Pane, RELIABILITY};
use crate::ui::history::History;

const COLOURS: [Color; 4] = [Color::Cyan, Color::Magenta, Color::Green, Color::LightBlue];
/// The held-out level a chart's series are measured against.
const LEVEL: Color = Color::Gray;
const MIN_HEIGHT_FOR_TWO: u16 = 12;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let spec = &CHARTS[app.chart];
    let block = Block::bordered()
        .title(format!(
            " {} ({}/{}) · y: {} ",
            spec.title,
            app.chart + 1,
            CHARTS.len(),
            spec.unit
        ))
        .title(Line::from(" [ ] other charts ").right_aligned())
        .border_style(theme::border(app, app.focus == Pane::Charts));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if spec.title == RELIABILITY {
        return draw_reliability(frame, inner, app);
    }
    if let Some(against) = &spec.against {
        return draw_against(frame, inner, app, spec, against);
    }
    let whole = series(app, spec, |h| h.whole());
    if whole.iter().all(|(_, points)| points.is_empty()) {
        let hint = "no data yet · [ ] other charts · Enter starts a stage";
        frame.render_widget(Paragraph::new(hint).style(theme::fg(app, Color::Gray)), inner);
        return;
    }
    let level = spec
        .level
        .and_then(|(name, stage, key)| Some((name, app.last(stage, key)?)));
    let marks = marks(app, spec);
    // The legend on a line of its own: inside the chart its box covered
    // the newest points.
    let [legend, charts] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
    frame.render_widget(Paragraph::new(legend_line(app, &whole, level, &marks)), legend);
    let recent = series(app, spec, |h| h.recent());
    // One chart while the recent window still holds the whole run (they
    // would draw the same picture), or when two would be unreadable.
    if whole == recent || charts.height < MIN_HEIGHT_FOR_TWO {
        return draw_chart(frame, charts, app, &whole, level, &marks, "whole run");
    }
    let [top, bottom] = Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(charts);
    draw_chart(frame, top, app, &whole, level, &marks, "whole run");
    draw_chart(frame, bottom, app, &recent, level, &marks, "recent");
}

type Series = Vec<(String, Vec<(f64, f64)>)>;

/// (legend name, points) of each of the chart's series.
fn series(app: &App, spec: &ChartSpec, points: impl Fn(&History) -> Vec<(f64, f64)>) -> Series {
    spec.series
        .iter()
        .map(|(stage, key)| {
            let name = format!("{} {key}", stage.name().to_uppercase());
            let points = app
                .series
                .get(&(*stage, key.to_string()))
                .map(&points)
                .unwrap_or_default();
            (name, points)
        })
        .collect()
}

/// Steps where a parameter was changed by hand during this chart's stages
/// (false) or a monitor raised an alert on PPO's (true).
fn marks(app: &App, spec: &ChartSpec) -> Vec<(f64, bool)> {
    let on_chart = |stage: Option<Stage>| stage.is_none_or(|s| spec.series.iter().any(|(st, _)| *st == s));
    let changes = app
        .markers
        .iter()
        .filter(|m| on_chart(m.stage))
        .map(|m| (m.step as f64, false));
    let alerts = app
        .alert_log
        .iter()
        .filter(|_| on_chart(Some(Stage::Ppo)))
        .map(|a| (a.step as f64, true));
    changes.chain(alerts).collect()
}

/// Each series' colour and name, the level line and the kinds of marks drawn.
fn legend_line(app: &App, series: &Series, level: Option<(&str, f64)>, marks: &[(f64, bool)]) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, (name, points)) in series.iter().enumerate() {
        if !points.is_empty() {
            spans.push(Span::styled("━ ", theme::fg(app, COLOURS[i % COLOURS.len()])));
            spans.push(Span::raw(format!("{name}  ")));
        }
    }
    if let Some((name, value)) = level {
        spans.push(Span::styled("┄ ", theme::fg(app, LEVEL)));
        spans.push(Span::raw(format!("{name} {value:.2}  ")));
    }
    for (alert, colour, words) in [
        (false, Color::Yellow, "you changed a parameter  "),
        (true, Color::Red, "alert  "),
    ] {
        if marks.iter().any(|&(_, a)| a == alert) {
            spans.push(Span::styled("│ ", theme::fg(app, colour)));
            spans.push(Span::raw(words));
        }
    }
    Line::from(spans)
}

fn draw_chart(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    series: &Series,
    level: Option<(&str, f64)>,
    marks: &[(f64, bool)],
    label: &str,
) {
    if series.iter().all(|(_, p)| p.is_empty()) {
        return;
    }
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let ([x0, x1], [y0, y1]) = bounds(points, level.map(|(_, v)| v));
    let level_line = level.map(|(_, v)| [(x0, v), (x1, v)]);
    let marks: Vec<([(f64, f64); 2], bool)> = marks
        .iter()
        .filter(|&&(x, _)| x >= x0 && x <= x1)
        .map(|&(x, alert)| ([(x, y0), (x, y1)], alert))
        .collect();
    let mut datasets: Vec<Dataset> = Vec::new();
    if let Some(line) = &level_line {
        datasets.push(line_of(app, line, LEVEL, Dots::Dot));
    }
    for (mark, alert) in &marks {
        datasets.push(line_of(
            app,
            mark,
            if *alert { Color::Red } else { Color::Yellow },
            Dots::Dot,
        ));
    }
    // The series last, so they are drawn over the lines behind them.
    for (i, (_, points)) in series.iter().enumerate() {
        datasets.push(line_of(app, points, COLOURS[i % COLOURS.len()], Dots::Braille));
    }
    let chart = Chart::new(datasets)
        .x_axis(Axis::default().bounds([x0, x1]).labels([
            format!("{x0:.0}"),
            format!("step · {label}"),
            format!("{x1:.0}"),
        ]))
        .y_axis(Axis::default().bounds([y0, y1]).labels([fmt(y0), fmt(y1)]))
        .legend_position(None);
    frame.render_widget(chart, area);
}

/// Bounds around every point and the level, never empty.
fn bounds<'a>(points: impl Iterator<Item = &'a (f64, f64)>, level: Option<f64>) -> ([f64; 2], [f64; 2]) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if let Some(v) = level {
        (y0, y1) = (y0.min(v), y1.max(v));
    }
    if x1 - x0 < 1.0 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-9 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    ([x0, x1], [y0, y1])
}

fn fmt(v: f64) -> String {
    if v.abs() >= 1000.0 || (v != 0.0 && v.abs() < 0.01) {
        format!("{v:.1e}")
    } else {
        format!("{v:.2}")
    }
}

/// A comparison chart: each method's figure against its other figure at
/// the same steps (its trajectory, a line), and its held-out result (one
/// point, a block), in the method's colour.
fn draw_against(frame: &mut Frame, area: Rect, app: &App, spec: &ChartSpec, against: &crate::ui::app::Against) {
    let methods: Vec<Stage> = Stage::ALL
        .into_iter()
        .filter(|s| s.is_online() || *s == Stage::Dpo)
        .collect();
    let colour = |stage: Stage| COLOURS[methods.iter().position(|&s| s == stage).unwrap_or(0) % COLOURS.len()];
    let drawn: Vec<(Stage, Vec<(f64, f64)>)> = against
        .series
        .iter()
        .map(|&(stage, x, y)| (stage, joined(app, stage, x, y)))
        .filter(|(_, points)| !points.is_empty())
        .collect();
    if drawn.is_empty() {
        let hint = "no data yet: PPO, GRPO, RLOO and DPO with a judge draw here, each in its colour";
        frame.render_widget(Paragraph::new(hint).style(theme::fg(app, Color::Gray)), area);
        return;
    }
    let level = spec
        .level
        .and_then(|(name, stage, key)| Some((name, app.last(stage, key)?)));
    let mut legend = Vec::new();
    for stage in methods.iter().filter(|s| drawn.iter().any(|(d, _)| d == *s)) {
        legend.push(Span::styled("━ ", theme::fg(app, colour(*stage))));
        legend.push(Span::raw(format!("{}  ", stage.name().to_uppercase())));
    }
    if drawn.iter().any(|(_, p)| p.len() == 1) {
        legend.push(Span::raw("█ held-out  "));
    }
    if let Some((name, value)) = level {
        legend.push(Span::styled("┄ ", theme::fg(app, LEVEL)));
        legend.push(Span::raw(format!("{name} {value:.2}")));
    }
    let [legend_area, chart_area] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(legend)), legend_area);
    let ([x0, x1], [y0, y1]) = bounds(drawn.iter().flat_map(|(_, p)| p.iter()), level.map(|(_, v)| v));
    let level_line = level.map(|(_, v)| [(x0, v), (x1, v)]);
    let mut datasets: Vec<Dataset> = level_line
        .iter()
        .map(|line| line_of(app, line, LEVEL, Dots::Dot))
        .collect();
    for (stage, points) in &drawn {
        let dataset = match points.len() {
            1 => line_of(app, points, colour(*stage), Dots::Block).graph_type(GraphType::Scatter),
            _ => line_of(app, points, colour(*stage), Dots::Braille),
        };
        datasets.push(dataset);
    }
    let chart = Chart::new(datasets)
        .x_axis(
            Axis::default()
                .bounds([x0, x1])
                .labels([fmt(x0), against.x_unit.to_string(), fmt(x1)]),
        )
        .y_axis(Axis::default().bounds([y0, y1]).labels([fmt(y0), fmt(y1)]))
        .legend_position(None);
    frame.render_widget(chart, chart_area);
}

/// (x, y) at each step where `stage` logged both `x` and `y`, in step order:
/// one pass over both (each is in step order), as this runs every frame.
fn joined(app: &App, stage: Stage, x: &str, y: &str) -> Vec<(f64, f64)> {
    let history = |key: &str| app.series.get(&(stage, key.to_string())).map(History::whole);
    let (Some(xs), Some(ys)) = (history(x), history(y)) else {
        return Vec::new();
    };
    let mut xs = xs.into_iter().peekable();
    let mut points = Vec::with_capacity(ys.len());
    for (step, value) in ys {
        while xs.next_if(|&(s, _)| s < step).is_some() {}
        if let Some(&(s, at)) = xs.peek()
            && s == step
        {
            points.push((at, value));
        }
    }
    points
}

fn line_of<'a>(app: &App, points: &'a [(f64, f64)], colour: Color, marker: Dots) -> Dataset<'a> {
    Dataset::default()
        .marker(marker)
        .graph_type(GraphType::Line)
        .style(theme::fg(app, colour))
        .data(points)
}

/// The reward model's reliability diagram: for each confidence bin with
/// pairs in it, the share it ordered correctly against its mean
/// confidence (a calibrated model sits on the diagonal), and beside it the
/// same bins as numbers with the held-out accuracy and ECE.
fn draw_reliability(frame: &mut Frame, area: Rect, app: &App) {
    let bins: Vec<&ReliabilityBin> = app.calibration.iter().filter(|b| b.count > 0).collect();
    if bins.is_empty() {
        let hint = "no reward model yet: its reliability shows here when RM finishes";
        frame.render_widget(Paragraph::new(hint).style(theme::fg(app, Color::Gray)), area);
        return;
    }
    let points: Vec<(f64, f64)> = bins.iter().map(|b| (b.confidence as f64, b.accuracy as f64)).collect();
    let [chart_area, table_area] = Layout::horizontal([Constraint::Min(20), Constraint::Length(28)]).areas(area);
    let diagonal = [(0.5, 0.5), (1.0, 1.0)];
    let datasets = vec![
        line_of(app, &diagonal, LEVEL, Dots::Dot),
        line_of(app, &points, COLOURS[0], Dots::Braille),
    ];
    let chart = Chart::new(datasets)
        .x_axis(Axis::default().bounds([0.5, 1.0]).labels(["0.5", "confidence", "1.0"]))
        .y_axis(Axis::default().bounds([0.0, 1.0]).labels(["0", "1"]))
        .legend_position(None);
    frame.render_widget(chart, chart_area);
    let figure = |key, words: &str| {
        app.last(Stage::Rm, key)
            .map_or(String::new(), |v| format!(" {words} {v:.3}"))
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled(" ━ ", theme::fg(app, COLOURS[0])),
            Span::raw("the model "),
            Span::styled("┄ ", theme::fg(app, LEVEL)),
            Span::raw("calibrated"),
        ]),
        Line::from(figure(names::EVAL_ACCURACY, "held-out accuracy")),
        Line::from(figure(names::EVAL_ECE, "ECE")),
        Line::styled(" confidence  right  pairs", theme::fg(app, Color::Gray)),
    ];
    lines.extend(bins.iter().map(|b| {
        Line::from(format!(
            " {:.2}–{:.2}   {:.2}  {:>5}",
            b.low, b.high, b.accuracy, b.count
        ))
    }));
    frame.render_widget(Paragraph::new(lines), table_area);
}
