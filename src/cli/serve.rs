//! `rlhf-tui serve`: the trainer without a terminal, for workbenches to
//! attach to (see `remote`).

use crate::device::DeviceChoice;
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub run: super::workbench::WorkbenchArgs,
    /// Also listen on this TCP address (host:port); workbenches there must
    /// give the token written to runs/NAME/trainer.token.
    #[arg(long)]
    pub listen: Option<String>,
}

pub fn run(args: ServeArgs, choice: DeviceChoice, settings: &Settings) -> anyhow::Result<()> {
    let setup = super::workbench::setup(args.run, choice, settings)?;
    crate::remote::server::serve(setup, args.listen)
}
