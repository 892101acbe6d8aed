//! `rlhf-tui attach`: the workbench's end of a served trainer. It makes
//! the same channel pair a trainer thread in the same process gives
//! (`TrainerHandle`), so the workbench runs unchanged: one thread writes
//! its commands as frames, another reads the trainer's events. Quitting
//! (`Command::Detach`) closes the connection and ends the workbench; the
//! trainer goes on.

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crossbeam_channel::unbounded;

use super::frame;
use super::handshake::{Address, Hello, PROTOCOL_VERSION, Welcome};
use super::server::Stream;
use crate::trainer::protocol::{Command, Event};
use crate::trainer::worker::TrainerHandle;

/// Connects, says hello as `name` (with `token` over TCP) and returns the
/// channels, or the server's reason for refusing.
pub fn attach(address: &Address, name: &str, token: Option<String>) -> anyhow::Result<TrainerHandle> {
    let mut stream: Box<dyn Stream> = match address {
        Address::Unix(path) => Box::new(
            UnixStream::connect(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}; is `rlhf-tui serve` running for this run?", path.display()))?,
        ),
        Address::Tcp(addr) => Box::new(TcpStream::connect(addr).map_err(|e| anyhow::anyhow!("{addr}: {e}"))?),
    };
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    frame::write(
        &mut stream,
        &Hello {
            version: PROTOCOL_VERSION,
            name: name.to_string(),
            token,
        },
    )?;
    match frame::read::<Welcome>(&mut stream)? {
        Welcome::Accepted { .. } => {}
        Welcome::Refused { reason } => anyhow::bail!("the trainer refused: {reason}"),
    }
    stream.set_read_timeout(None)?;

    let (command_tx, command_rx) = unbounded::<Command>();
    let (event_tx, event_rx) = unbounded();
    let mut reader = stream.try_clone_box()?;
    let local = event_tx.clone();
    std::thread::Builder::new()
        .name("attach-events".into())
        .spawn(move || {
            loop {
                match frame::read::<Event>(&mut reader) {
                    Ok(event) => {
                        // The trainer has ended: the connection's close is no error.
                        let last = event == Event::ShutDown;
                        if event_tx.send(event).is_err() || last {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = event_tx.send(Event::Error(format!("the connection to the trainer: {e}")));
                        let _ = event_tx.send(Event::ShutDown);
                        return;
                    }
                }
            }
        })?;
    let thread = std::thread::Builder::new()
        .name("attach-commands".into())
        .spawn(move || {
            for command in command_rx.iter() {
                let detach = matches!(command, Command::Detach | Command::Shutdown { .. });
                if detach {
                    let _ = frame::write(&mut stream, &Command::Detach);
                    stream.close();
                    let _ = local.send(Event::ShutDown);
                    return;
                }
                if frame::write(&mut stream, &command).is_err() {
                    return;
                }
            }
            stream.close();
        })?;
    Ok(TrainerHandle {
        commands: command_tx,
        events: event_rx,
        thread,
    })
}
