//! A trainer that outlives the workbench: `rlhf-tui serve` runs the
//! trainer thread headless behind a socket, and `rlhf-tui attach` opens
//! the workbench on it. The same `Command`s and `Event`s as in one process
//! travel as length-prefixed JSON frames (`frame.rs`) after a handshake
//! (`handshake.rs`): a Unix socket in the run directory by default, TCP
//! when asked, with a token from the run directory required over TCP.

pub mod client;
pub mod frame;
pub mod handshake;
pub mod replay;
pub mod server;
