//! `rlhf-tui serve`: the trainer thread headless, behind the run's Unix
//! socket (`trainer.sock`, mode 0600) and, with `--listen ADDR`, a TCP
//! port that asks for the run's token (`trainer.token`, 0600, new at every
//! start). Every event goes to every attached workbench and into the
//! replay a late one is told first; commands from any of them reach the
//! trainer, each preceded by who sent it (`Command::Client`) when the
//! sender changes, so judgments and the audit log name them. A frame that
//! is malformed, oversized or from the wrong version or without the token
//! closes that connection with the reason in `serve.log`; the trainer
//! goes on. SIGINT or SIGTERM checkpoint a running stage and end.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Sender, unbounded};
use serde_json::json;

use super::frame::{self, FrameError};
use super::handshake::{self, Hello, PROTOCOL_VERSION, Welcome};
use super::replay::Replay;
use crate::fsutil::AppendLog;
use crate::trainer::protocol::{Command, Event};
use crate::trainer::worker::{self, WorkerSetup};

/// The run directory's files for the server.
pub const SOCKET: &str = "trainer.sock";
pub const TOKEN: &str = "trainer.token";
pub const LOG: &str = "serve.log";

/// How long a new connection has to say hello.
const HELLO_WITHIN: Duration = Duration::from_secs(5);

/// A stream either kind of socket gives.
pub trait Stream: Read + Write + Send {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Stream>>;
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
    fn close(&self);
}

impl Stream for UnixStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Stream for TcpStream {
    fn try_clone_box(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// The attached workbenches and what a new one is told first.
#[derive(Default)]
struct Hub {
    replay: Replay,
    clients: Vec<(u64, Sender<Event>)>,
    next_id: u64,
    /// The trainer has shut down: no one else attaches.
    closed: bool,
}

/// What every connection's thread shares.
struct Shared {
    hub: Mutex<Hub>,
    commands: Sender<Command>,
    /// Who sent the last command, held while a command and its sender's
    /// name go to the trainer so two workbenches' cannot interleave.
    last_sender: Mutex<Option<String>>,
    log: Mutex<AppendLog>,
    run: String,
}

impl Shared {
    fn note(&self, peer: &str, what: &str, reason: &str) {
        let line =
            json!({ "time": crate::trainer::audit::unix_seconds(), "peer": peer, "event": what, "reason": reason });
        eprintln!(
            "{peer}: {what}{}",
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            }
        );
        if let Ok(mut log) = self.log.lock() {
            let _ = log.append(&line);
        }
    }
}

/// Runs the trainer until SIGINT or SIGTERM (a running stage is
/// checkpointed first) or until it shuts down on its own.
pub fn serve(setup: WorkerSetup, listen: Option<String>) -> anyhow::Result<()> {
    let root = setup.run.root.clone();
    let run_name = root.file_name().unwrap_or_default().to_string_lossy().to_string();
    let handle = worker::spawn(setup)?;
    let shared = Arc::new(Shared {
        hub: Mutex::new(Hub::default()),
        commands: handle.commands.clone(),
        last_sender: Mutex::new(None),
        log: Mutex::new(AppendLog::open(&root.join(LOG))?),
        run: run_name.clone(),
    });

    let socket = root.join(SOCKET);
    let unix = bind_unix(&socket)?;
    eprintln!("serving run {run_name} on {}", socket.display());
    spawn_acceptor("unix", shared.clone(), None, move || {
        unix.accept()
            .map(|(s, _)| (Box::new(s) as Box<dyn Stream>, "unix socket".to_string()))
    })?;
    if let Some(addr) = listen {
        let token = write_token(&root.join(TOKEN))?;
        let tcp = TcpListener::bind(&addr).map_err(|e| anyhow::anyhow!("--listen {addr}: {e}"))?;
        eprintln!(
            "and on tcp {} (token in {})",
            tcp.local_addr()?,
            root.join(TOKEN).display()
        );
        spawn_acceptor("tcp", shared.clone(), Some(token), move || {
            tcp.accept()
                .map(|(s, peer)| (Box::new(s) as Box<dyn Stream>, peer.to_string()))
        })?;
    }

    // SIGINT / SIGTERM: checkpoint and end, as a lost terminal does.
    let commands = handle.commands.clone();
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        if signals.forever().next().is_some() {
            eprintln!("checkpointing and shutting down…");
            let _ = commands.send(Command::Shutdown { checkpoint: true });
        }
    })?;

    // Every event to every workbench and into the replay.
    for event in handle.events.iter() {
        let done = event == Event::ShutDown;
        if let Event::Error(why) = &event {
            eprintln!("error: {why}");
        }
        let mut hub = shared.hub.lock().expect("no panic while held");
        hub.replay.push(&event);
        hub.clients.retain(|(_, tx)| tx.send(event.clone()).is_ok());
        if done {
            hub.closed = true;
            hub.clients.clear();
            break;
        }
    }
    let _ = handle.thread.join();
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// The run's socket, a stale one from a killed server replaced; refused
/// while another server answers on it.
fn bind_unix(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!("{}: a trainer already serves this run; attach to it", path.display());
        }
        std::fs::remove_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// A fresh token in `path`, readable by its owner only.
fn write_token(path: &Path) -> anyhow::Result<String> {
    let token = handshake::new_token();
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

fn spawn_acceptor(
    kind: &str,
    shared: Arc<Shared>,
    token: Option<String>,
    mut accept: impl FnMut() -> std::io::Result<(Box<dyn Stream>, String)> + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("accept-{kind}"))
        .spawn(move || {
            loop {
                let Ok((stream, peer)) = accept() else {
                    // Out of descriptors, say: wait rather than spin.
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let (shared, token) = (shared.clone(), token.clone());
                let _ = std::thread::Builder::new()
                    .name("connection".into())
                    .spawn(move || connection(stream, peer, &shared, token.as_deref()));
            }
        })?;
    Ok(())
}

/// One workbench: the handshake, then its commands to the trainer until it
/// detaches or its connection fails, while a thread writes it the events.
fn connection(mut stream: Box<dyn Stream>, peer: String, shared: &Shared, token: Option<&str>) {
    let _ = stream.set_read_timeout(Some(HELLO_WITHIN));
    let hello = match frame::read::<Hello>(&mut stream) {
        Ok(hello) => hello,
        Err(e) => return refuse(stream, &peer, shared, &format!("no hello: {e}")),
    };
    if let Err(reason) = handshake::check(&hello, token) {
        return refuse(stream, &peer, shared, &reason);
    }
    let name = hello.name;
    let accepted = Welcome::Accepted {
        version: PROTOCOL_VERSION,
        run: shared.run.clone(),
    };
    if frame::write(&mut stream, &accepted).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(None);
    let (tx, rx) = unbounded();
    let id = {
        let mut hub = shared.hub.lock().expect("no panic while held");
        if hub.closed {
            return stream.close();
        }
        for event in hub.replay.events() {
            let _ = tx.send(event.clone());
        }
        hub.next_id += 1;
        let id = hub.next_id;
        hub.clients.push((id, tx));
        id
    };
    shared.note(&peer, &format!("{name} attached"), "");
    let Ok(mut writer) = stream.try_clone_box() else { return };
    // Frames sent, bytes, and the largest frame, for the log.
    let events = std::thread::spawn(move || {
        let (mut frames, mut bytes, mut largest) = (0usize, 0usize, 0usize);
        for event in rx.iter() {
            match frame::write(&mut writer, &event) {
                Ok(n) => (frames, bytes, largest) = (frames + 1, bytes + n, largest.max(n)),
                Err(_) => break,
            }
        }
        writer.close();
        (frames, bytes, largest)
    });
    let why = loop {
        match frame::read::<Command>(&mut stream) {
            Ok(Command::Detach) | Err(FrameError::Closed) => break String::new(),
            // The trainer outlives the workbench: a quit detaches.
            Ok(Command::Shutdown { .. }) => break String::new(),
            Ok(command) => {
                let mut last = shared.last_sender.lock().expect("no panic while held");
                if last.as_deref() != Some(name.as_str()) {
                    let _ = shared.commands.send(Command::Client { name: name.clone() });
                    *last = Some(name.clone());
                }
                if shared.commands.send(command).is_err() {
                    break "the trainer has shut down".into();
                }
            }
            Err(e) => break e.to_string(),
        }
    };
    shared
        .hub
        .lock()
        .expect("no panic while held")
        .clients
        .retain(|(c, _)| *c != id);
    stream.close();
    let (frames, bytes, largest) = events.join().unwrap_or_default();
    let what = if why.is_empty() { "detached" } else { "closed" };
    let sent = format!("{frames} frames sent, {bytes} bytes, the largest {largest}");
    shared.note(&peer, &format!("{name} {what} ({sent})"), &why);
}

fn refuse(mut stream: Box<dyn Stream>, peer: &str, shared: &Shared, reason: &str) {
    shared.note(peer, "refused", reason);
    let _ = frame::write(
        &mut stream,
        &Welcome::Refused {
            reason: reason.to_string(),
        },
    );
    stream.close();
}

/// The run's socket path, for `attach --run`.
pub fn socket_of(run_root: &Path) -> PathBuf {
    run_root.join(SOCKET)
}
