//! Each pane drawn into ratatui's `TestBackend` at 80×24 and 160×48 and
//! compared with the reviewed text in `tests/snapshots/`. After a wanted
//! change, `UPDATE_SNAPSHOTS=1 cargo test --release --test ui_snapshots`
//! rewrites them; review the diff before committing.

mod common;

use common::ui::{demo_app, metric, pair, rank_set, stage_event};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use rlhf_tui::prefs::stats::Kappa;
use rlhf_tui::trainer::protocol::{
    Agreement, Alert, AlertKind, Choice, Criterion, Event, ReliabilityBin, Throughput, Verdict,
};
use rlhf_tui::ui::app::{App, CHARTS, Colouring, Editing, Editor, Judged, Overlay, RELIABILITY};
use rlhf_tui::ui::update::on_event;
use rlhf_tui::ui::view::{charts, compare, draw, stages, status};

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn render(app: &App, (w, h): (u16, u16), pane: &str) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|frame| {
        let area = frame.area();
        match pane {
            "stages" => stages::draw(frame, area, app),
            "charts" => charts::draw(frame, area, app),
            "compare" => compare::draw(frame, area, app),
            "status" => status::draw(frame, area, app),
            _ => draw(frame, app),
        }
    })
    .unwrap();
    term.backend().buffer().clone()
}

fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in 0..area.height {
        let line: String = (0..area.width).map(|x| buffer[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn check(name: &str, app: &App, pane: &str) {
    for size in SIZES {
        let got = text(&render(app, size, pane));
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(format!("{name}-{}x{}.txt", size.0, size.1));
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{}: missing; run with UPDATE_SNAPSHOTS=1", path.display()));
        if got != want {
            let new = path.with_extension("txt.new");
            std::fs::write(&new, &got).unwrap();
            panic!("{} differs from the drawing; see {}", path.display(), new.display());
        }
    }
}

#[test]
fn stage_selector() {
    check("stages", &demo_app(false), "stages");
}

#[test]
fn charts_whole_run_and_recent_window_with_a_marker() {
    let mut app = demo_app(false);
    // The KL chart: β changed at iteration 25.
    app.chart = 1;
    check("charts-kl", &app, "charts");
    let chart = |title| CHARTS.iter().position(|c| c.title == title).unwrap();
    app.chart = chart("SFT loss");
    check("charts-sft-loss", &app, "charts");
    // A chart with no data says how to find one that has.
    app.chart = chart("RM accuracy");
    check("charts-empty", &app, "charts");
}

#[test]
fn comparison() {
    let mut app = demo_app(false);
    check("compare", &app, "compare");
    // After a judgment the judge also made: whether it agrees, and κ.
    let mut judged = pair(6);
    judged.judge = vec![(Criterion::Overall, Verdict::Choice(Choice::Right))];
    app.judged.push(Judged {
        set: judged,
        verdict: Verdict::Choice(Choice::Left),
        criterion: Criterion::Overall,
    });
    app.labels_saved = 1;
    app.agreement = vec![Agreement {
        criterion: Criterion::Overall,
        shared: 12,
        alpha: Some(0.41),
        kappas: vec![Kappa {
            first: "ann".into(),
            second: "judge".into(),
            units: 12,
            kappa: Some(0.4),
        }],
    }];
    check("compare-judged", &app, "compare");
    // Rank mode, two places typed.
    app.queue.clear();
    app.queue.push_back(rank_set(9));
    app.ranking = vec![2, 0];
    check("compare-rank", &app, "compare");
    app.queue.clear();
    check("compare-empty", &app, "compare");
}

#[test]
fn alerts_on_the_status_bar_and_charts_and_the_reliability_diagram() {
    let mut app = demo_app(false);
    let alert = |kind, step, message: &str| {
        Event::Alert(Alert {
            kind,
            step,
            message: message.into(),
        })
    };
    on_event(
        &mut app,
        alert(
            AlertKind::LowDiversity,
            32,
            "distinct-1 0.083, distinct-2 0.125 (limits 0.1, 0.2)",
        ),
        180.0,
    );
    on_event(
        &mut app,
        alert(
            AlertKind::RewardHacking,
            36,
            "over 5 iterations the RM score rose +0.701 while the judge's fell -0.130",
        ),
        185.0,
    );
    // Raised at the same step after it, a lesser alert leaves the message
    // line to reward hacking.
    on_event(
        &mut app,
        alert(AlertKind::HighClipFraction, 36, "clip fraction 0.391 > 0.3"),
        186.0,
    );
    assert!(
        app.message
            .as_ref()
            .unwrap()
            .0
            .starts_with("⚠ reward hacking at step 36")
    );
    check("alerts", &app, "screen");
    app.overlay = Overlay::Alerts;
    check("alerts-window", &app, "screen");
    app.overlay = Overlay::None;
    let bin = |low: f32, count, confidence, accuracy| ReliabilityBin {
        low,
        high: low + 0.1,
        count,
        confidence,
        accuracy,
    };
    app.calibration = vec![
        bin(0.5, 40, 0.55, 0.52),
        bin(0.6, 35, 0.65, 0.70),
        bin(0.7, 30, 0.75, 0.71),
        bin(0.8, 0, 0.0, 0.0),
        bin(0.9, 60, 0.96, 0.93),
    ];
    app.chart = CHARTS.iter().position(|c| c.title == RELIABILITY).unwrap();
    check("charts-reliability", &app, "charts");
}

#[test]
fn status_bar() {
    let mut app = demo_app(false);
    check("status", &app, "status");
    // How fast the person labels, as the trainer reports it.
    on_event(
        &mut app,
        Event::Throughput(Throughput {
            annotator: "ann".into(),
            judgments: 13,
            median_seconds: Some(20.0),
            per_hour: Some(180.0),
        }),
        0.0,
    );
    check("status-pace", &app, "status");
}

#[test]
fn whole_screen_and_overlays() {
    let mut app = demo_app(false);
    check("screen", &app, "screen");
    app.overlay = Overlay::Help(0);
    check("help", &app, "screen");
    // Scrolled to the end where the terminal is short (more than fits).
    app.overlay = Overlay::Help(u16::MAX);
    check("help-end", &app, "screen");
    app.overlay = Overlay::Editor(Editor {
        editing: Editing::Beta,
        input: "-1".into(),
        error: Some("β must be a number ≥ 0".into()),
        selected: false,
    });
    check("editor", &app, "screen");
    app.overlay = Overlay::ConfirmQuit;
    check("confirm-quit", &app, "screen");
}

/// Colour of the first cell showing `needle` in the buffer.
fn colour_of(buffer: &Buffer, needle: &str) -> Color {
    let area = buffer.area;
    for y in 0..area.height {
        let line: String = (0..area.width).map(|x| buffer[(x, y)].symbol()).collect();
        if let Some(byte) = line.find(needle) {
            let x = line[..byte].chars().count() as u16;
            return buffer[(x, y)].fg;
        }
    }
    panic!("{needle} not drawn");
}

#[test]
fn tokens_are_coloured_by_kl_or_log_prob_and_no_color_turns_colour_off() {
    let mut app = demo_app(false);
    let buffer = render(&app, (160, 48), "compare");
    // KL +1.5 nats red, +0.5 yellow, −1.5 blue, 0 uncoloured.
    assert_eq!(colour_of(&buffer, "Sure"), Color::Red);
    assert_eq!(colour_of(&buffer, "happy"), Color::Yellow);
    assert_eq!(colour_of(&buffer, "small"), Color::Blue);
    assert_eq!(colour_of(&buffer, "pet"), Color::Reset);
    // By log-prob every token here is −0.5: uncoloured.
    app.colouring = Colouring::Logprob;
    let buffer = render(&app, (160, 48), "compare");
    assert_eq!(colour_of(&buffer, "Sure"), Color::Reset);

    let plain = demo_app(true);
    let buffer = render(&plain, (160, 48), "screen");
    assert!(
        buffer
            .content()
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
    );
    // The same text either way.
    assert_eq!(text(&buffer), text(&render(&demo_app(false), (160, 48), "screen")));
}

/// A run without an evaluator: the pair pane shows the reward model's
/// scores and no judge column, rather than a judge of zero.
#[test]
fn a_run_without_an_evaluator_shows_no_judge() {
    let mut app = App::new(false);
    let mut set = pair(7);
    for response in &mut set.responses {
        response.judge = None;
    }
    on_event(&mut app, Event::Samples(set), 1.0);
    let screen = text(&render(&app, (160, 48), "compare"));
    assert!(screen.contains("RM "), "{screen}");
    assert!(!screen.contains("judge 0"), "{screen}");
}

/// The status bar says whose learning rate it shows where no running
/// stage says it: after SFT has ended, SFT's last one.
#[test]
fn the_status_bar_says_whose_learning_rate_it_is() {
    use rlhf_tui::trainer::protocol::{Stage, StageState};
    let mut app = App::new(false);
    let sft = |state| stage_event(Stage::Sft, state, 300, 300);
    on_event(&mut app, sft(StageState::Running), 1.0);
    metric(&mut app, Stage::Sft, 300, "lr", 0.0001);
    let running = text(&render(&app, (160, 48), "status"));
    assert!(running.contains("│ lr 1.00e-4"), "{running}");
    on_event(
        &mut app,
        sft(StageState::Done {
            checkpoint: "sft-300".into(),
        }),
        3.0,
    );
    let idle = text(&render(&app, (160, 48), "status"));
    assert!(idle.contains("SFT lr 1.00e-4"), "{idle}");
}

/// A stage that has taken all its steps says it is finishing (its held-out
/// evaluation and checkpoint take a while and no steps) rather than running
/// with no time left.
#[test]
fn a_stage_past_its_last_step_is_finishing() {
    use rlhf_tui::trainer::protocol::{Stage, StageState};
    let mut app = App::new(false);
    on_event(&mut app, stage_event(Stage::Cai, StageState::Running, 0, 150), 1.0);
    let step = |app: &mut App, step: usize, at: f64| {
        let values = vec![("loss".to_string(), 1.0)];
        on_event(
            app,
            Event::Metrics {
                stage: Stage::Cai,
                step,
                values,
            },
            at,
        );
    };
    step(&mut app, 148, 10.0);
    step(&mut app, 149, 11.0);
    let running = text(&render(&app, (160, 48), "status"));
    assert!(running.contains("CAI 149/150 │ 1.00 steps/s │ ETA 1s"), "{running}");
    assert!(running.contains("▶ RUNNING"), "{running}");
    step(&mut app, 150, 12.0);
    let finishing = text(&render(&app, (160, 48), "status"));
    assert!(
        finishing.contains("CAI 150/150 │ held-out evaluation and checkpoint"),
        "{finishing}"
    );
    assert!(
        finishing.contains("… FINISHING") && !finishing.contains("ETA"),
        "{finishing}"
    );
    let stages = text(&render(&app, (160, 48), "stages"));
    assert!(stages.contains("finishing 150/150"), "{stages}");
}

/// A chart draws the whole run alone while the recent window still holds
/// all of it, and the two once the run outgrows the window; its legend
/// and unit sit on a line of their own, over no curve.
#[test]
fn one_chart_until_whole_run_and_recent_differ() {
    use rlhf_tui::trainer::protocol::Stage;
    use rlhf_tui::ui::history::RECENT_POINTS;
    let mut app = demo_app(false);
    app.chart = 1;
    let short = text(&render(&app, (160, 48), "charts"));
    assert!(short.contains("step · whole run"), "{short}");
    assert!(!short.contains("step · recent"), "{short}");
    assert!(short.contains("━ PPO objective/kl"), "{short}");
    assert!(short.contains("│ you changed a parameter"), "{short}");
    assert!(short.contains("KL (2/17) · y: nats per response"), "{short}");
    for step in 41..=(RECENT_POINTS + 60) {
        metric(
            &mut app,
            Stage::Ppo,
            step,
            "objective/kl",
            3.0 + (step % 7) as f64 / 10.0,
        );
    }
    check("charts-kl-long", &app, "charts");
    let long = text(&render(&app, (160, 48), "charts"));
    assert!(
        long.contains("step · whole run") && long.contains("step · recent"),
        "{long}"
    );
}

/// The judge chart draws SFT's held-out score across it as the level PPO
/// has to beat, named in the legend with its value.
#[test]
fn the_judge_chart_has_the_sft_baseline() {
    use rlhf_tui::trainer::protocol::Stage;
    let mut app = demo_app(false);
    for step in 1..=40 {
        metric(
            &mut app,
            Stage::Ppo,
            step,
            "judge/score_mean",
            0.8 + step as f64 / 400.0,
        );
    }
    app.chart = CHARTS.iter().position(|c| c.title == "judge score").unwrap();
    check("charts-judge", &app, "charts");
    let screen = text(&render(&app, (160, 48), "charts"));
    assert!(screen.contains("┄ SFT held-out 0.87"), "{screen}");
    // The level is drawn below every point of the series (0.80 to 0.90),
    // so the y axis reaches down to it.
    assert!(screen.contains("0.80"), "{screen}");
}

/// The methods compared on one axis: GRPO's and RLOO's judge score against
/// their KL iteration by iteration, and each method's held-out result
/// (DPO's, which has no iterations, too) as a block in its colour.
#[test]
fn methods_overlay_judge_against_kl() {
    use rlhf_tui::trainer::protocol::Stage;
    let mut app = demo_app(false);
    for step in 1..=20 {
        let t = step as f64;
        metric(&mut app, Stage::Rloo, step, "objective/kl", 0.2 * t);
        metric(&mut app, Stage::Rloo, step, "judge/score_mean", 0.85 + 0.002 * t);
        metric(&mut app, Stage::Grpo, step, "objective/kl", 0.1 * t);
        metric(&mut app, Stage::Grpo, step, "judge/score_mean", 0.85 + 0.005 * t);
    }
    metric(&mut app, Stage::Dpo, 200, "eval/kl", 0.2);
    metric(&mut app, Stage::Dpo, 200, "eval/judge_score_mean", 0.93);
    app.chart = CHARTS.iter().position(|c| c.title == "judge vs KL").unwrap();
    assert!(app.offers_chart(app.chart));
    check("charts-judge-vs-kl", &app, "charts");
    let buffer = render(&app, (160, 48), "charts");
    let screen = text(&buffer);
    for words in [
        "━ RLOO",
        "━ GRPO",
        "━ DPO",
        "█ held-out",
        "KL per response, nats",
        "┄ SFT held-out",
    ] {
        assert!(screen.contains(words), "{words}: {screen}");
    }
    // The x axis spans the KLs drawn (0.1 to 4.0), not the steps.
    assert!(screen.contains("0.10") && screen.contains("4.00"), "{screen}");
    // DPO's one point, a block in DPO's colour.
    let dpo = colour_of(&buffer, "━ DPO");
    let blocks = (0..buffer.area.height)
        .flat_map(|y| (0..buffer.area.width).map(move |x| (x, y)))
        .filter(|&(x, y)| buffer[(x, y)].symbol() == "█" && buffer[(x, y)].fg == dpo)
        .count();
    assert_eq!(blocks, 1, "DPO's held-out point: {screen}");
}

/// A finished stage shows its held-out results beneath its name; a stage
/// not yet run says so in words.
#[test]
fn finished_stages_show_their_held_out_results() {
    use rlhf_tui::trainer::protocol::{Stage, StageState};
    let app = demo_app(false);
    let screen = text(&render(&app, (160, 48), "stages"));
    // Five stages to a row of 160 columns: the figures without "held-out".
    assert!(screen.contains("judge 0.874 · loss 0.920"), "{screen}");
    assert!(screen.contains("accuracy 0.908 · ECE 0.031"), "{screen}");
    // PPO is paused: no results yet.
    let results = screen.lines().nth(2).unwrap();
    assert_eq!(results.matches('·').count(), 2, "{screen}");
    let mut app = App::new(false);
    let ready = text(&render(&app, (160, 48), "stages"));
    assert!(ready.contains("SFT not started"), "{ready}");
    on_event(&mut app, stage_event(Stage::Ppo, StageState::Running, 0, 2), 1.0);
    metric(&mut app, Stage::Sft, 300, "eval/judge_score_mean", 0.874);
    metric(&mut app, Stage::Ppo, 2, "eval/judge_score_mean", 0.967);
    let done = StageState::Done {
        checkpoint: "ppo-2".into(),
    };
    on_event(&mut app, stage_event(Stage::Ppo, done, 2, 2), 3.0);
    let screen = text(&render(&app, (160, 48), "stages"));
    assert!(screen.contains("judge 0.967 · SFT's 0.874"), "{screen}");
    // A run without an evaluator: where PPO's last iteration left it.
    let mut app = demo_app(false);
    let done = StageState::Done {
        checkpoint: "ppo-40".into(),
    };
    on_event(&mut app, stage_event(Stage::Ppo, done, 40, 40), 300.0);
    let screen = text(&render(&app, (160, 48), "stages"));
    assert!(screen.contains("RM score 2.53 · KL 3.00"), "{screen}");
}

/// The pair pane says what its token colours mean, each sample in the
/// colour it names, and the reward model's unbounded score reads unlike
/// the judge's 0-to-1 one.
#[test]
fn the_pair_pane_has_a_colour_legend_and_scores_that_read_apart() {
    let mut app = demo_app(false);
    let buffer = render(&app, (160, 48), "compare");
    let screen = text(&buffer);
    assert!(
        screen.contains("colour = log π − log π_ref: > 1 > 0.25 < −1 nats · v log-prob colours"),
        "{screen}"
    );
    assert_eq!(colour_of(&buffer, "> 1 "), Color::Red);
    assert_eq!(colour_of(&buffer, "> 0.25"), Color::Yellow);
    assert_eq!(colour_of(&buffer, "< −1"), Color::Blue);
    assert!(screen.contains("RM +2.25 · judge 1.00/1"), "{screen}");
    assert!(screen.contains("RM -0.50 · judge 0.40/1"), "{screen}");
    app.colouring = Colouring::Logprob;
    let buffer = render(&app, (160, 48), "compare");
    assert_eq!(colour_of(&buffer, "> −0.1 sure"), Color::Green);
    assert_eq!(colour_of(&buffer, "< −2.3 unsure"), Color::Red);
}
