//! `rlhf-tui attach`: the workbench on a trainer that `serve` runs, over
//! the run's Unix socket or TCP.

use std::path::PathBuf;

use crate::remote::client;
use crate::remote::handshake::Address;
use crate::remote::server::{TOKEN, socket_of};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// A TCP address (host:port) the trainer listens on; without it, the
    /// run's Unix socket (runs/NAME/trainer.sock).
    pub address: Option<String>,
    /// The served run: its socket, and over TCP its token file.
    #[arg(long)]
    pub run: Option<String>,
    /// Where run directories live.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// The run's token, for TCP (else read from runs/NAME/trainer.token,
    /// else $RLHF_TUI_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// The name your judgments and steering are recorded under (default: $USER).
    #[arg(long)]
    pub annotator: Option<String>,
}

pub fn run(args: AttachArgs, settings: &Settings) -> anyhow::Result<()> {
    super::workbench::ensure_terminal()?;
    let run_dir = args.run.as_ref().map(|name| args.runs_dir.join(name));
    let (address, token) = match (&args.address, &run_dir) {
        (Some(addr), _) => {
            let from_file = run_dir
                .as_ref()
                .and_then(|dir| std::fs::read_to_string(dir.join(TOKEN)).ok())
                .map(|t| t.trim().to_string());
            let token = args
                .token
                .clone()
                .or(from_file)
                .or_else(|| std::env::var("RLHF_TUI_TOKEN").ok());
            (Address::Tcp(addr.clone()), token)
        }
        (None, Some(dir)) => (Address::Unix(socket_of(dir)), None),
        (None, None) => anyhow::bail!("attach to what? give --run NAME (its Unix socket) or a TCP address"),
    };
    let name = super::workbench::annotator(args.annotator.or_else(|| settings.annotator.clone()));
    let handle = client::attach(&address, &name, token)?;
    // Short: the status bar has the live parameters to show beside it.
    let label = match (&address, &args.run) {
        (Address::Unix(_), Some(run)) => run.clone(),
        (_, _) => args.address.clone().unwrap_or_default(),
    };
    crate::ui::driver::run_attached(handle, &label, super::workbench::no_color())
}
