//! What a workbench that attaches late is told first: the trainer's events
//! so far, kept in bounded memory. State that only its newest value
//! matters for (a stage's state and step, the live parameters, agreement,
//! the newest pair) is kept once; the passing messages (notes, warnings,
//! errors, checkpoint lines) are not kept; the metrics are kept whole
//! until there are `MAX_METRICS` of them, then every other one of the
//! older half is dropped, so a run of a million steps replays in the
//! same few megabytes as one of twenty thousand.

use std::collections::VecDeque;
use std::mem::discriminant;

use crate::trainer::protocol::Event;

pub const MAX_METRICS: usize = 20_000;

#[derive(Debug, Default)]
pub struct Replay {
    events: VecDeque<Event>,
    metrics: usize,
}

impl Replay {
    pub fn push(&mut self, event: &Event) {
        match event {
            Event::Note(_) | Event::Warning(_) | Event::Error(_) | Event::Checkpoint { .. } | Event::ShutDown => return,
            Event::Stage { stage, .. } => {
                self.events
                    .retain(|e| !matches!(e, Event::Stage { stage: s, .. } if s == stage));
            }
            Event::Live { .. }
            | Event::External(_)
            | Event::Round { .. }
            | Event::Samples(_)
            | Event::Agreement(_)
            | Event::Throughput(_)
            | Event::Calibration(_)
            | Event::Revisions(_) => {
                let kind = discriminant(event);
                self.events.retain(|e| discriminant(e) != kind);
            }
            Event::Metrics { .. } => {
                self.metrics += 1;
                if self.metrics > MAX_METRICS {
                    self.thin();
                }
            }
            _ => {}
        }
        self.events.push_back(event.clone());
    }

    /// Drops every other metrics event of the older half.
    fn thin(&mut self) {
        let half = self.metrics / 2;
        let (mut seen, mut dropped) = (0, 0);
        self.events.retain(|e| {
            if !matches!(e, Event::Metrics { .. }) || seen >= half {
                return true;
            }
            seen += 1;
            let keep = seen % 2 == 0;
            dropped += usize::from(!keep);
            keep
        });
        self.metrics -= dropped;
    }

    /// The events to tell a new workbench, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainer::protocol::{Stage, StageState};

    fn metrics(step: usize) -> Event {
        Event::Metrics {
            stage: Stage::Ppo,
            step,
            values: vec![("objective/kl".into(), step as f64)],
        }
    }

    #[test]
    fn state_is_kept_once_messages_not_at_all_and_metrics_bounded() {
        let mut replay = Replay::default();
        for step in 1..=3 {
            replay.push(&Event::Stage {
                stage: Stage::Ppo,
                state: StageState::Running,
                step,
                total: 10,
            });
            replay.push(&Event::Note("n".into()));
        }
        let kept: Vec<&Event> = replay.events().collect();
        assert_eq!(kept.len(), 1);
        assert!(matches!(kept[0], Event::Stage { step: 3, .. }));
        for step in 1..=MAX_METRICS + 1 {
            replay.push(&metrics(step));
        }
        let steps: Vec<usize> = replay
            .events()
            .filter_map(|e| match e {
                Event::Metrics { step, .. } => Some(*step),
                _ => None,
            })
            .collect();
        // 20,001 metrics: of the older 10,000 every other one went.
        assert_eq!(steps.len(), MAX_METRICS + 1 - MAX_METRICS / 4);
        assert_eq!(&steps[..3], &[2, 4, 6]);
        assert_eq!(*steps.last().unwrap(), MAX_METRICS + 1);
        assert!(steps.windows(2).all(|w| w[0] < w[1]));
    }
}
