//! The workbench's own speed: a full 200×50 frame drawn from 100,000-point
//! histories; the time from a key press to the redrawn frame that shows it
//! while PPO trains on every core through the real trainer thread and the
//! real event loop; and the memory histories hold as a run grows.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::{Backend, ClearType, TestBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use serde_json::{Value, json};

use crate::device::Selected;
use crate::model::weights::SeededInit;
use crate::model::{ScalarModel, hf};
use crate::rlhf::data::Prompt;
use crate::run::names;
use crate::run::{RunConfig, RunDir};
use crate::trainer::protocol::{Command, Event, Response, SampleSet, Stage, StageState};
use crate::trainer::run_data::RunData;
use crate::trainer::worker::{TrainerHandle, WorkerSetup, spawn};
use crate::ui::app::App;
use crate::ui::driver::{Input, event_loop};
use crate::ui::update::on_event;
use crate::ui::view;

const SIZE: (u16, u16) = (200, 50);
const PPO_METRICS: [&str; 12] = [
    names::SCORES,
    names::RLHF_REWARD,
    names::KL,
    names::SEQUENCE_ENTROPY,
    names::POLICY_LOSS,
    names::VALUE_LOSS,
    names::TOKEN_ENTROPY,
    names::CLIP_FRACTION,
    names::VALUE_CLIP_FRACTION,
    names::JUDGE_SCORE,
    names::RATIO,
    names::LR,
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn feed_steps(app: &mut App, from: usize, to: usize) {
    for step in from..to {
        let t = step as f64;
        let values = PPO_METRICS
            .iter()
            .enumerate()
            .map(|(i, k)| (k.to_string(), (t / 1000.0 + i as f64).sin()))
            .collect();
        on_event(
            app,
            Event::Metrics {
                stage: Stage::Ppo,
                step,
                values,
            },
            t,
        );
    }
}

fn sample_response(n: usize) -> Response {
    Response {
        tokens: (0..n).map(|i| format!(" word{i}")).collect(),
        logprobs: (0..n).map(|i| -(i as f32 % 3.0)).collect(),
        ref_logprobs: (0..n).map(|i| -(i as f32 % 2.0)).collect(),
        reward: Some(1.0),
        judge: Some(0.5),
        temperature: 1.0,
    }
}

/// Frame times at 200×50 with 100,000 points in each of 12 PPO series, and
/// memory as the histories grow to 1,000,000 points.
pub fn draw(repeats: usize) -> Value {
    let mut app = App::new(false);
    on_event(
        &mut app,
        Event::Stage {
            stage: Stage::Ppo,
            state: StageState::Running,
            step: 0,
            total: 2_000_000,
        },
        0.0,
    );
    app.queue.push_back(SampleSet {
        id: 1,
        prompt: "\n\nHuman: What is a cat?\n\nAssistant:".into(),
        asked: Prompt::question("What is a cat?"),
        policy: "ppo-1".into(),
        responses: vec![sample_response(48), sample_response(48)],
        judge: Vec::new(),
    });
    feed_steps(&mut app, 1, 100_001);
    let mut term = Terminal::new(TestBackend::new(SIZE.0, SIZE.1)).expect("test backend");
    let mut times = Vec::new();
    for i in 0..(200 * repeats).max(200) {
        app.chart = i % crate::ui::app::CHARTS.len();
        let start = Instant::now();
        term.draw(|frame| view::draw(frame, &app)).expect("draw");
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let held_100k: usize = app.series.values().map(|h| h.points_held()).sum();
    let rss_100k = crate::memory::resident_bytes();
    feed_steps(&mut app, 100_001, 1_000_001);
    let held_1m: usize = app.series.values().map(|h| h.points_held()).sum();
    let rss_1m = crate::memory::resident_bytes();
    json!({
        "workload": "ui-draw", "size": format!("{}x{}", SIZE.0, SIZE.1), "series": PPO_METRICS.len(),
        "points_per_series": 100_000, "frames": times.len(),
        "frame_ms_p50": percentile(&times, 0.5), "frame_ms_p99": percentile(&times, 0.99),
        "frame_ms_max": percentile(&times, 1.0),
        "points_held_at_100k_steps": held_100k, "points_held_at_1m_steps": held_1m,
        "rss_growth_bytes_100k_to_1m_steps": rss_1m.zip(rss_100k).map(|(b, a)| b as i64 - a as i64),
    })
}

/// When the key was sent, and the title text the frame showing it carries.
type Pending = Option<(Instant, &'static str)>;

/// A test backend that notes, at each flush, whether the frame now shows
/// the change the last key asked for, and how long after the key.
struct ProbeBackend {
    inner: TestBackend,
    pending: Arc<Mutex<Pending>>,
    latencies: Arc<Mutex<Vec<f64>>>,
}

impl Backend for ProbeBackend {
    type Error = core::convert::Infallible;

    fn draw<'a, I: Iterator<Item = (u16, u16, &'a Cell)>>(&mut self, content: I) -> Result<(), Self::Error> {
        self.inner.draw(content)
    }
    fn hide_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.hide_cursor()
    }
    fn show_cursor(&mut self) -> Result<(), Self::Error> {
        self.inner.show_cursor()
    }
    fn get_cursor_position(&mut self) -> Result<Position, Self::Error> {
        self.inner.get_cursor_position()
    }
    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Self::Error> {
        self.inner.set_cursor_position(position)
    }
    fn clear(&mut self) -> Result<(), Self::Error> {
        self.inner.clear()
    }
    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Self::Error> {
        self.inner.clear_region(clear_type)
    }
    fn size(&self) -> Result<Size, Self::Error> {
        self.inner.size()
    }
    fn window_size(&mut self) -> Result<WindowSize, Self::Error> {
        self.inner.window_size()
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        let mut pending = self.pending.lock().expect("probe lock");
        if let Some((sent, title)) = *pending {
            let buffer = self.inner.buffer();
            let text: String = buffer.content().iter().map(|c| c.symbol()).collect();
            if text.contains(title) {
                let ms = sent.elapsed().as_secs_f64() * 1e3;
                self.latencies.lock().expect("probe lock").push(ms);
                *pending = None;
            }
        }
        Ok(())
    }
}

/// Key press to redrawn frame while PPO (the default config, on the
/// built-in world) trains through the real trainer thread.
pub fn latency(selected: &Selected, presses: usize) -> anyhow::Result<Value> {
    let dir = std::env::temp_dir().join(format!("rlhf-tui-bench-ui-{}", std::process::id()));
    let base = std::path::PathBuf::from("assets/base");
    let (body, tokenizer) = hf::load_language_model(&base, &selected.device)?;
    let rm = ScalarModel::build(body, &mut SeededInit::new(3), &selected.device)?;
    hf::save_scalar_model(&dir.join("rm"), &rm, &tokenizer)?;
    let mut config = RunConfig::default();
    config.ppo.policy_init = Some(base);
    config.ppo.reward_init = Some(dir.join("rm"));
    config.ppo.iterations = 1_000_000;
    let handle = spawn(WorkerSetup {
        data: RunData::of(&config)?,
        config,
        run: RunDir::create(&dir, "bench")?,
        device: selected.device.clone(),
        device_label: selected.label.clone(),
        annotator: "bench".into(),
        panic_at_step: None,
    })?;
    handle.commands.send(Command::Start(Stage::Ppo))?;
    let (app, times) = probed(handle, App::new(false), move |press, pending| {
        // PPO's baseline evaluation and first iterations get going.
        std::thread::sleep(Duration::from_secs(20));
        for i in 0..presses {
            // `v` switches the comparison's colouring (from KL, first), and
            // the legend's offer of the other one with it.
            let title = if i % 2 == 0 {
                "v KL colours"
            } else {
                "v log-prob colours"
            };
            *pending.lock().expect("probe lock") = Some((Instant::now(), title));
            press(KeyCode::Char('v'));
            std::thread::sleep(Duration::from_millis(250));
        }
        press(KeyCode::Char('q'));
        press(KeyCode::Char('n'));
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    let ppo_steps = app
        .stages
        .iter()
        .find(|r| r.stage == Some(Stage::Ppo))
        .map_or(0, |r| r.step);
    let mut report = json!({
        "workload": "ui-latency", "device": selected.label, "presses": presses,
        "ppo_iterations_meanwhile": ppo_steps,
    });
    add_figures(&mut report, &times);
    Ok(report)
}

/// Runs the real event loop on `handle` into a probing backend while
/// `script` presses keys (and says, through `Pending`, what the frame
/// should come to show); returns the app as it ended and the key-to-frame
/// times seen, sorted.
fn probed(
    handle: TrainerHandle,
    mut app: App,
    script: impl FnOnce(&dyn Fn(KeyCode), &Mutex<Pending>) + Send + 'static,
) -> anyhow::Result<(App, Vec<f64>)> {
    let pending = Arc::new(Mutex::new(None));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let backend = ProbeBackend {
        inner: TestBackend::new(SIZE.0, SIZE.1),
        pending: pending.clone(),
        latencies: latencies.clone(),
    };
    let (keys, inputs) = unbounded();
    let presser = std::thread::spawn(move || {
        let press = |code| {
            let _ = keys.send(Input::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        };
        script(&press, &pending);
    });
    let mut term = Terminal::new(backend)?;
    event_loop(&mut term, &mut app, &inputs, &handle.commands, &handle.events, None)?;
    presser.join().expect("key thread");
    let _ = handle.thread.join();
    let mut times = latencies.lock().expect("probe lock").clone();
    anyhow::ensure!(!times.is_empty(), "no key press reached the screen");
    times.sort_by(f64::total_cmp);
    Ok((app, times))
}

/// How many were seen and their p50, p99 and largest, into `report`.
fn add_figures(report: &mut Value, sorted: &[f64]) {
    report["seen"] = json!(sorted.len());
    report["key_to_frame_ms_p50"] = json!(percentile(sorted, 0.5));
    report["key_to_frame_ms_p99"] = json!(percentile(sorted, 0.99));
    report["key_to_frame_ms_max"] = json!(percentile(sorted, 1.0));
}

/// Key press to redrawn frame for a change the trainer must confirm:
/// β set in the editor (`b`, the value, Enter) until the trainer's
/// `ParamChanged` is drawn, with no stage running, so what is measured is
/// the path itself: in one process over channels, or `attached` over the
/// run's Unix socket to a `serve`d trainer (frames both ways). Also the
/// sizes of the frames the trainer sent, from the metrics on.
pub fn steer_latency(selected: &Selected, presses: usize, attached: bool) -> anyhow::Result<Value> {
    let dir = std::env::temp_dir().join(format!("rlhf-tui-bench-steer-{}-{attached}", std::process::id()));
    let config = RunConfig::default();
    let setup = WorkerSetup {
        data: RunData::of(&config)?,
        config,
        run: RunDir::create(&dir, "bench")?,
        device: selected.device.clone(),
        device_label: selected.label.clone(),
        annotator: "bench".into(),
        panic_at_step: None,
    };
    let handle = if attached {
        let socket = crate::remote::server::socket_of(&setup.run.root);
        std::thread::spawn(move || crate::remote::server::serve(setup, None));
        let start = Instant::now();
        while !socket.exists() {
            anyhow::ensure!(start.elapsed().as_secs() < 60, "the server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let address = crate::remote::handshake::Address::Unix(socket);
        crate::remote::client::attach(&address, "bench", None)?
    } else {
        spawn(setup)?
    };

    let mut app = App::new(false);
    app.attached = attached.then(|| "bench".into());
    let (_, times) = probed(handle, app, move |press, pending| {
        std::thread::sleep(Duration::from_secs(2));
        // β from the config's 0.05 to 0.1 (untimed), then between 0.2 and 0.1.
        for i in 0..=presses {
            let (value, shown) = match i {
                0 => ("0.1", None),
                _ if i % 2 == 1 => ("0.2", Some("β 0.1 → 0.2")),
                _ => ("0.1", Some("β 0.2 → 0.1")),
            };
            press(KeyCode::Char('b'));
            std::thread::sleep(Duration::from_millis(50));
            for c in value.chars() {
                press(KeyCode::Char(c));
            }
            std::thread::sleep(Duration::from_millis(50));
            *pending.lock().expect("probe lock") = shown.map(|s| (Instant::now(), s));
            press(KeyCode::Enter);
            std::thread::sleep(Duration::from_millis(200));
        }
        press(KeyCode::Char('q'));
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    let path = if attached {
        "attached (unix socket)"
    } else {
        "in-process"
    };
    let mut report = json!({ "workload": "ui-steer-latency", "path": path, "presses": presses });
    add_figures(&mut report, &times);
    Ok(report)
}
