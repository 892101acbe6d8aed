//! The command line: argument definitions (clap) and dispatch to one file
//! per subcommand.

mod attach;
mod bench;
mod config;
mod devices;
mod eval;
mod generate;
mod prefs;
mod pretrain;
mod score;
mod serve;
mod train;
mod workbench;
mod world;

use clap::{Parser, Subcommand};

use crate::device::DeviceChoice;
use crate::settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "rlhf-tui",
    version,
    about = "A terminal workbench for RLHF: SFT, a reward model and PPO, run and watched live"
)]
pub struct Cli {
    /// Where tensors live: auto takes a real GPU when there is one, else
    /// the CPU [default: the settings' device, else auto].
    #[arg(long, global = true, value_enum, env = "BURN_DEVICE")]
    pub device: Option<DeviceChoice>,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// With no subcommand: the workbench.
    #[command(flatten)]
    pub workbench: workbench::WorkbenchArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sample continuations of a prompt from a Hugging Face model directory.
    Generate(generate::GenerateArgs),
    /// Print the log-probability of each token of a text under a model.
    Score(score::ScoreArgs),
    /// Run a fixed benchmark workload and print one JSON line.
    Bench(bench::BenchArgs),
    /// Compare two models blind: a judge's win rate of A over B on held-out
    /// prompts, with its 95% interval.
    Eval(eval::EvalArgs),
    /// List the devices this build and this machine offer.
    Devices,
    /// Train the built-in world's base model (tokenizer and GPT-2) from scratch.
    Pretrain(pretrain::PretrainArgs),
    /// Run a training stage without the workbench, into runs/NAME/.
    Train(train::TrainArgs),
    /// Run the trainer without a terminal, for workbenches to attach to;
    /// it goes on when they quit (Ctrl-C checkpoints and stops it).
    Serve(serve::ServeArgs),
    /// Open the workbench on a trainer that `serve` runs.
    Attach(attach::AttachArgs),
    /// Import, export and summarise a run's preference judgments.
    #[command(subcommand)]
    Prefs(prefs::PrefsCommand),
    /// Print the built-in world's data or judge a response.
    #[command(subcommand)]
    World(world::WorldCommand),
    /// Show where your settings are and what is in force.
    Config,
}

/// Parses the command line, runs it, and reports an error as a message
/// (never a panic backtrace) with a non-zero exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = Settings::load().and_then(|settings| {
        // A flag overrides the settings.
        let device = cli.device.or(settings.device).unwrap_or_default();
        match cli.command {
            None => workbench::run(cli.workbench, device, &settings),
            Some(Command::Config) => config::run(&settings, cli.device),
            Some(Command::Serve(args)) => serve::run(args, device, &settings),
            Some(Command::Attach(args)) => attach::run(args, &settings),
            Some(command) => run(command, device),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command, device: DeviceChoice) -> anyhow::Result<()> {
    match command {
        Command::Generate(args) => generate::run(args, device),
        Command::Score(args) => score::run(args, device),
        Command::Bench(args) => bench::run(args, device),
        Command::Eval(args) => eval::run(args, device),
        Command::Devices => devices::run(),
        Command::Pretrain(args) => pretrain::run(args, device),
        Command::Train(args) => train::run(args, device),
        Command::Prefs(command) => prefs::run(command),
        Command::World(command) => world::run(command),
        Command::Config | Command::Serve(_) | Command::Attach(_) => unreachable!("run with the settings in main"),
    }
}
