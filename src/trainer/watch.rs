//! The checks after every step: the NaN guard, which pauses a stage whose
//! loss or gradient was not finite, and PPO's monitors, whose alerts go to
//! the workbench and the audit log.

use serde_json::json;

use super::control::Control;
use super::protocol::{Event, Stage};
use crate::rlhf::monitors::Changes;

/// The NaN guard: a step whose loss or gradient was not finite had its
/// update withheld by the trainer; the stage is paused so nothing more is
/// lost, with the step and the metric named, until the person changes the
/// learning rate and resumes. No checkpoint is written meanwhile, so the
/// last one is the last good one.
pub fn guard(control: &mut Control, stage: Stage, step: usize, non_finite: Option<(&str, f64)>) {
    let Some((key, value)) = non_finite else {
        return;
    };
    control.audit_record("nonfinite", json!({ "metric": key, "value": value.to_string() }));
    control.send(Event::Error(format!(
        "{} step {step}: {key} is {value}; that update was not applied. Paused: lower the learning rate (l) and resume (space)",
        stage.name().to_uppercase()
    )));
    control.set_paused(true);
}

/// Passes the monitors' new alerts to the workbench and the audit log.
pub fn watch(control: &mut Control, changes: Changes, step: usize) {
    for alert in changes.raised {
        control.audit_record("alert", json!({ "kind": alert.kind, "message": alert.message }));
        control.send(Event::Alert(alert));
    }
    for kind in changes.cleared {
        control.send(Event::AlertCleared { kind, step });
    }
}
