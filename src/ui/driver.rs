//! The UI thread's loop: blocks on a `select!` over key input (read on its
//! own thread), trainer events and a redraw tick; turns keys into messages,
//! messages and events into state changes and effects, effects into
//! commands; draws after each. It never spins and never waits on training.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select, tick, unbounded};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent};
use ratatui::Terminal;
use ratatui::backend::Backend;

use super::app::App;
use super::keys::key_to_msg;
use super::update::{Effect, on_event, update};
use super::{terminal, view};
use crate::trainer::protocol::{Command, Event};
use crate::trainer::worker::{self, WorkerSetup};

/// What the input thread reads from the terminal.
#[derive(Clone, Debug)]
pub enum Input {
    Key(KeyEvent),
    Resize,
}

/// Fault injection for tests of the crash path: the UI thread panics when
/// this key is pressed.
pub const PANIC_KEY_VAR: &str = "RLHF_TUI_PANIC_KEY";

/// How often the screen redraws with nothing new (for the ETA and pace).
const TICK: Duration = Duration::from_millis(250);

/// Opens the workbench on a real terminal and runs until the person quits.
pub fn run(setup: WorkerSetup, no_color: bool) -> anyhow::Result<()> {
    let handle = worker::spawn(setup)?;
    let mut term = terminal::enter()?;
    let inputs = spawn_input_thread()?;
    let mut app = App::new(no_color);
    let panic_key = std::env::var(PANIC_KEY_VAR).ok().and_then(|v| v.chars().next());
    let result = event_loop(
        &mut term,
        &mut app,
        &inputs,
        &handle.commands,
        &handle.events,
        panic_key,
    );
    terminal::restore();
    // The trainer has written its checkpoint and said `ShutDown`, or is gone.
    let _ = handle.thread.join();
    result
}

fn spawn_input_thread() -> std::io::Result<Receiver<Input>> {
    let (tx, rx) = unbounded();
    std::thread::Builder::new().name("input".into()).spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            let input = match event {
                TermEvent::Key(key) => Input::Key(key),
                TermEvent::Resize(..) => Input::Resize,
                _ => continue,
            };
            if tx.send(input).is_err() {
                return;
            }
        }
    })?;
    Ok(rx)
}

/// Runs until an `Effect::Quit`: after the trainer has shut down, or at
/// once when it is already gone.
pub fn event_loop<B: Backend>(
    term: &mut Terminal<B>,
    app: &mut App,
    inputs: &Receiver<Input>,
    commands: &Sender<Command>,
    events: &Receiver<Event>,
    panic_key: Option<char>,
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let start = Instant::now();
    let ticks = tick(TICK);
    term.draw(|frame| view::draw(frame, app))?;
    loop {
        let effects = select! {
            recv(inputs) -> input => match input {
                Ok(Input::Key(key)) if panic_key.is_some_and(|c| key.code == KeyCode::Char(c)) => {
                    panic!("injected on the UI thread by {PANIC_KEY_VAR}")
                }
                Ok(Input::Key(key)) => key_to_msg(&app.overlay, key).map(|msg| update(app, msg)).unwrap_or_default(),
                Ok(Input::Resize) => {
                    term.autoresize()?;
                    Vec::new()
                }
                // No terminal input any more: nobody can steer; stop.
                Err(_) => update(app, super::keys::Msg::QuitConfirmed { checkpoint: true }),
            },
            recv(events) -> event => match event {
                Ok(event) => on_event(app, event, start.elapsed().as_secs_f64()),
                Err(_) => on_event(app, Event::ShutDown, start.elapsed().as_secs_f64()),
            },
            recv(ticks) -> _ => Vec::new(),
        };
        for effect in effects {
            match effect {
                Effect::Send(command) => {
                    if commands.send(command).is_err() {
                        app.trainer_gone = true;
                    }
                }
                Effect::Quit => return Ok(()),
            }
        }
        term.draw(|frame| view::draw(frame, app))?;
    }
}
