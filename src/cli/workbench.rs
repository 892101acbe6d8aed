//! `rlhf-tui` with no subcommand: the workbench on a new run of the
//! built-in world, an existing run (`--run NAME`), or a Hugging Face GPT-2
//! directory as the base model (`--model DIR`).

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::device::{self, DeviceChoice};
use crate::run::{RunConfig, RunDir};
use crate::settings::Settings;
use crate::trainer::run_data::RunData;
use crate::trainer::worker::{PANIC_AT_STEP_VAR, WorkerSetup};

#[derive(Debug, Default, clap::Args)]
pub struct WorkbenchArgs {
    /// Reopens (or creates) runs/NAME; a new run is named by the time.
    #[arg(long)]
    pub run: Option<String>,
    /// A Hugging Face GPT-2, Llama or Qwen2 directory to use as the base model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A RON run config; a reopened run keeps its own unless this is given.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where run directories live.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// The name your judgments are stored under (default: $USER, else "human").
    #[arg(long)]
    pub annotator: Option<String>,
}

pub fn run(args: WorkbenchArgs, choice: DeviceChoice, settings: &Settings) -> anyhow::Result<()> {
    ensure_terminal()?;
    // https://no-color.org: any non-empty value turns colour off.
    crate::ui::driver::run(setup(args, choice, settings)?, no_color())
}

/// The workbench needs a terminal to draw on.
pub fn ensure_terminal() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::io::stdout().is_terminal() && std::io::stdin().is_terminal(),
        "the workbench needs a terminal; `rlhf-tui train --stage sft|rm|ppo` runs a stage without one"
    );
    Ok(())
}

/// `NO_COLOR` (https://no-color.org): any non-empty value turns colour off.
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// The trainer's setup for the run the arguments name (created, or
/// reopened with its saved config): what the workbench and `serve` start.
pub fn setup(args: WorkbenchArgs, choice: DeviceChoice, settings: &Settings) -> anyhow::Result<WorkerSetup> {
    let name = args.run.clone().unwrap_or_else(new_run_name);
    let saved = RunDir::saved_config(&args.runs_dir, &name);
    let mut config = match (&args.config, saved.exists()) {
        (Some(path), _) => RunConfig::from_file(path)?,
        (None, true) => RunConfig::from_file(&saved)?,
        (None, false) => RunConfig::default(),
    };
    if let Some(model) = args.model {
        config.sft.init = model;
    }
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    // A data file that cannot be used is refused before a run is made.
    let data = RunData::of(&config)?;
    let selected = device::select(choice)?;
    let run = RunDir::create(&args.runs_dir, &name)?;
    run.save_config(&config.to_ron())?;
    crate::world::assets::locate_base(&mut config)?;
    Ok(WorkerSetup {
        data,
        config,
        run,
        device: selected.device,
        device_label: selected.label,
        annotator: annotator(args.annotator.or_else(|| settings.annotator.clone())),
        panic_at_step: std::env::var(PANIC_AT_STEP_VAR).ok().and_then(|v| v.parse().ok()),
    })
}

/// The name given, else the login name; "judge" is the judge's.
pub fn annotator(given: Option<String>) -> String {
    let name = given
        .or_else(|| std::env::var("USER").ok())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "human".into());
    if name == crate::prefs::stats::JUDGE {
        "human".into()
    } else {
        name
    }
}

/// `run-20261124-153005`, from the UTC clock.
fn new_run_name() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_date(secs / 86_400);
    let t = secs % 86_400;
    format!("run-{y:04}{m:02}{d:02}-{:02}{:02}{:02}", t / 3600, t / 60 % 60, t % 60)
}

/// (year, month, day) of a day count since 1970-01-01, in the proleptic
/// Gregorian calendar (Howard Hinnant's days-to-civil algorithm).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_date;

    #[test]
    fn dates_from_day_counts() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        // 2000-02-29 is day 11,016; 2026-11-24 is day 20,781.
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_781), (2026, 11, 24));
    }
}
