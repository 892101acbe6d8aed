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
use super::keys::{Msg, key_to_msg};
use super::update::{Effect, on_event, update};
use super::{terminal, view};
use crate::trainer::protocol::{Command, Event};
use crate::trainer::worker::{self, TrainerHandle, WorkerSetup};

/// What the input thread reads from the terminal.
#[derive(Clone, Debug)]
pub enum Input {
    Key(KeyEvent),
    Resize,
    /// The terminal hung up (SIGHUP), the process was asked to end
    /// (SIGTERM), or input reached its end.
    Lost,
}

/// Fault injection for tests of the crash path: the UI thread panics when
/// this key is pressed.
pub const PANIC_KEY_VAR: &str = "RLHF_TUI_PANIC_KEY";

/// How often the screen redraws with nothing new (for the ETA and pace).
const TICK: Duration = Duration::from_millis(250);

/// Opens the workbench on a real terminal and runs until the person quits.
pub fn run(setup: WorkerSetup, no_color: bool) -> anyhow::Result<()> {
    on_trainer(worker::spawn(setup)?, App::new(no_color))
}

/// The workbench on a served trainer, `at` the address in words;
/// quitting detaches.
pub fn run_attached(handle: TrainerHandle, at: &str, no_color: bool) -> anyhow::Result<()> {
    let mut app = App::new(no_color);
    app.attached = Some(at.to_string());
    on_trainer(handle, app)
}

fn on_trainer(handle: TrainerHandle, mut app: App) -> anyhow::Result<()> {
    let mut term = terminal::enter()?;
    let inputs = spawn_input_thread()?;
    spawn_signal_thread(inputs.0)?;
    let panic_key = std::env::var(PANIC_KEY_VAR).ok().and_then(|v| v.chars().next());
    let result = event_loop(
        &mut term,
        &mut app,
        &inputs.1,
        &handle.commands,
        &handle.events,
        panic_key,
    );
    terminal::restore();
    // The trainer has written its checkpoint and said `ShutDown`, or is
    // gone; an attached workbench's sending thread ends when its channel
    // closes.
    drop(handle.commands);
    let _ = handle.thread.join();
    result
}

/// The terminal's keys and resizes, then `Lost` when reading fails.
fn spawn_input_thread() -> std::io::Result<(Sender<Input>, Receiver<Input>)> {
    let (tx, rx) = unbounded();
    let sender = tx.clone();
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
        let _ = tx.send(Input::Lost);
    })?;
    Ok((sender, rx))
}

/// SIGHUP (the ssh connection or the tmux session went away) and SIGTERM
/// arrive as `Input::Lost` instead of ending the process where it stands,
/// so that a running stage is checkpointed first.
fn spawn_signal_thread(inputs: Sender<Input>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for _ in signals.forever() {
            if inputs.send(Input::Lost).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}

/// Runs until an `Effect::Quit`: after the trainer has shut down, or at
/// once when it is already gone. When the terminal is lost (its input ends
/// or hangs up, or drawing fails), a running stage is checkpointed and the
/// loop ends when the trainer has shut down, drawing nothing meanwhile.
pub fn event_loop<B: Backend>(
    term: &mut Terminal<B>,
    app: &mut App,
    inputs: &Receiver<Input>,
    commands: &Sender<Command>,
    events: &Receiver<Event>,
    panic_key: Option<char>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let ticks = tick(TICK);
    let (mut inputs, mut events) = (inputs.clone(), events.clone());
    let mut lost = !draw(term, app);
    let mut effects = Vec::new();
    loop {
        if lost {
            // Nothing more is read: a closed input would wake the loop
            // again at once.
            inputs = crossbeam_channel::never();
            if !app.quitting {
                effects.extend(update(app, Msg::TerminalLost));
            }
        }
        for effect in effects.drain(..) {
            match effect {
                Effect::Send(command) => {
                    if commands.send(command).is_err() {
                        app.trainer_gone = true;
                    }
                }
                Effect::Quit => return Ok(()),
            }
        }
        effects = select! {
            recv(inputs) -> input => match input {
                Ok(Input::Key(key)) if panic_key.is_some_and(|c| key.code == KeyCode::Char(c)) => {
                    panic!("injected on the UI thread by {PANIC_KEY_VAR}")
                }
                Ok(Input::Key(key)) => key_to_msg(&app.overlay, key).map(|msg| update(app, msg)).unwrap_or_default(),
                Ok(Input::Resize) => {
                    lost |= term.autoresize().is_err();
                    Vec::new()
                }
                Ok(Input::Lost) | Err(_) => {
                    lost = true;
                    Vec::new()
                }
            },
            recv(events) -> event => match event {
                Ok(event) => on_event(app, event, start.elapsed().as_secs_f64()),
                Err(_) => {
                    // The trainer's end is gone: said once, then never read
                    // again, or the closed channel would wake the loop at
                    // once, forever, while the person reads the last screen.
                    events = crossbeam_channel::never();
                    on_event(app, Event::ShutDown, start.elapsed().as_secs_f64())
                }
            },
            recv(ticks) -> _ => Vec::new(),
        };
        if !lost {
            lost = !draw(term, app);
        }
    }
}

/// Draws a frame; false when the terminal would not take it.
fn draw<B: Backend>(term: &mut Terminal<B>, app: &App) -> bool {
    term.draw(|frame| view::draw(frame, app)).is_ok()
}
