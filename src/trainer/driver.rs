//! The one loop a stage runs in, for `rlhf-tui train` and for the
//! workbench's trainer thread alike: every step's metrics into the run's
//! log, the monitors (PPO's), the check for a loss or gradient that is not
//! finite, and the baseline and held-out evaluation around them. What
//! differs is a front end's `Hooks`: the workbench polls, steers and serves
//! between steps and tells the screen; the command line draws progress and
//! stops at a step that was not finite.

use std::path::PathBuf;

use super::stage::{Metrics, StageRun, no_steering};
use crate::rlhf::monitors::{Changes, Monitor};
use crate::run::{MetricsLog, RunConfig, RunDir};
use crate::trainer::protocol::Stage;

/// Whether the loop goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Go,
    Stop,
}

/// What a finished step came to.
pub struct Stepped<'a> {
    pub metrics: &'a Metrics,
    /// The monitors' alerts raised and cleared by this step.
    pub alerts: Changes,
    /// The first metric that is not finite: the step's update was withheld.
    pub non_finite: Option<(&'static str, f64)>,
}

/// What a front end does around the shared loop.
pub trait Hooks {
    /// The run's metrics log.
    fn log(&mut self) -> &mut MetricsLog;

    /// Before each step; `Stop` ends the loop.
    fn before_step(&mut self, _active: &mut StageRun) -> Flow {
        Flow::Go
    }

    /// Takes one step, steered as the front end steers; `None` when the
    /// steering stopped it part way.
    fn step(&mut self, active: &mut StageRun) -> Option<Metrics> {
        active.step(&mut no_steering)
    }

    /// After each step, once its metrics are in the log (and a periodic
    /// checkpoint, when one was due, on disk).
    fn after_step(&mut self, active: &mut StageRun, stepped: Stepped) -> anyhow::Result<Flow>;

    /// A periodic checkpoint was written.
    fn checkpointed(&mut self, _active: &StageRun, _path: &std::path::Path) {}
}

/// The monitors a stage runs under: the online methods' (PPO, GRPO, RLOO), none for the others.
pub fn monitor(stage: Stage, config: &RunConfig) -> Option<Monitor> {
    stage.is_online().then(|| Monitor::new(&config.monitors))
}

/// Logs a fresh start's baseline (the held-out figures before step 1, at
/// step 0) and returns it; a resumed stage's curves already have theirs.
pub fn log_baseline(active: &StageRun, log: &mut MetricsLog) -> anyhow::Result<Metrics> {
    let baseline = active.baseline()?;
    if !baseline.is_empty() {
        log.append(active.stage.name(), 0, &baseline)?;
    }
    Ok(baseline)
}

/// Steps until the stage is done or a hook stops it, writing the periodic
/// checkpoints `checkpoints` asks for into `run` between steps. A step
/// whose update was withheld (not finite) gets none: the front end decides
/// whether the stage goes on.
pub fn run_steps(
    active: &mut StageRun,
    run: &RunDir,
    monitor: &mut Option<Monitor>,
    hooks: &mut impl Hooks,
) -> anyhow::Result<()> {
    while !active.is_done() {
        if hooks.before_step(active) == Flow::Stop {
            break;
        }
        let Some(metrics) = hooks.step(active) else {
            break;
        };
        hooks.log().append(active.stage.name(), active.step, &metrics)?;
        let stepped = Stepped {
            alerts: monitor
                .as_mut()
                .map(|m| m.observe(active.step, &metrics))
                .unwrap_or_default(),
            non_finite: metrics.iter().find(|(_, v)| !v.is_finite()).copied(),
            metrics: &metrics,
        };
        if stepped.non_finite.is_none() && active.checkpoint_due() {
            let path = active.checkpoint(run)?;
            hooks.checkpointed(active, &path);
        }
        if hooks.after_step(active, stepped)? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

/// The stage's final checkpoint, and its held-out evaluation logged at
/// its last step.
pub fn finish(active: &StageRun, run: &RunDir, log: &mut MetricsLog) -> anyhow::Result<(PathBuf, Metrics)> {
    let (path, eval) = active.finish(run)?;
    log.append(active.stage.name(), active.step, &eval)?;
    Ok((path, eval))
}
