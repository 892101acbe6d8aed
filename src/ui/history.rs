//! A metric's history in bounded memory: the newest points as they came,
//! and the whole run averaged into at most `WHOLE_POINTS` buckets whose
//! width doubles whenever they fill. A run of a million steps holds the
//! same few kilobytes as one of a thousand, and drawing it costs the same.

use std::collections::VecDeque;

/// Points kept at full resolution for the recent-window chart.
pub const RECENT_POINTS: usize = 400;
/// Buckets the whole-run chart is drawn from (even, so pairs merge).
pub const WHOLE_POINTS: usize = 1000;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    recent: VecDeque<(f64, f64)>,
    /// Mean (step, value) of each full bucket of `width` points.
    whole: Vec<(f64, f64)>,
    width: usize,
    /// Sums and count of the bucket being filled.
    partial: (f64, f64, usize),
    pub last: Option<(f64, f64)>,
}

impl History {
    pub fn push(&mut self, step: f64, value: f64) {
        if !value.is_finite() {
            // A chart cannot place it; the status bar reports the value itself.
            return;
        }
        self.last = Some((step, value));
        if self.recent.len() == RECENT_POINTS {
            self.recent.pop_front();
        }
        self.recent.push_back((step, value));
        let width = self.width.max(1);
        self.partial = (self.partial.0 + step, self.partial.1 + value, self.partial.2 + 1);
        if self.partial.2 == width {
            let (x, y, n) = self.partial;
            self.whole.push((x / n as f64, y / n as f64));
            self.partial = (0.0, 0.0, 0);
            if self.whole.len() == WHOLE_POINTS {
                self.whole = self
                    .whole
                    .chunks(2)
                    .map(|p| ((p[0].0 + p[1].0) / 2.0, (p[0].1 + p[1].1) / 2.0))
                    .collect();
                self.width = width * 2;
            }
        }
    }

    /// The whole run, downsampled; the bucket being filled comes last.
    pub fn whole(&self) -> Vec<(f64, f64)> {
        let mut points = self.whole.clone();
        let (x, y, n) = self.partial;
        if n > 0 {
            points.push((x / n as f64, y / n as f64));
        }
        points
    }

    /// The newest points at full resolution.
    pub fn recent(&self) -> Vec<(f64, f64)> {
        self.recent.iter().copied().collect()
    }

    /// Points held, to show memory stays flat.
    pub fn points_held(&self) -> usize {
        self.recent.len() + self.whole.len() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_histories_are_exact() {
        let mut h = History::default();
        for i in 0..5 {
            h.push(i as f64, (i * i) as f64);
        }
        let expected: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, (i * i) as f64)).collect();
        assert_eq!(h.whole(), expected);
        assert_eq!(h.recent(), expected);
        assert_eq!(h.last, Some((4.0, 16.0)));
    }

    #[test]
    fn long_histories_are_bucket_means_in_bounded_memory() {
        let mut h = History::default();
        for i in 0..100_000 {
            h.push(i as f64, i as f64 * 2.0);
        }
        // 100,000 points: buckets of 128 after 7 halvings (1000·128 > 100,000 > 500·128).
        let whole = h.whole();
        assert!(whole.len() <= WHOLE_POINTS, "{}", whole.len());
        assert!(whole.len() >= WHOLE_POINTS / 2);
        // The first bucket is the mean of steps 0..128: 63.5, value 127.
        assert_eq!(whole[0], (63.5, 127.0));
        let recent = h.recent();
        assert_eq!(recent.len(), RECENT_POINTS);
        assert_eq!(recent[0], (99_600.0, 199_200.0));
        assert!(h.points_held() <= RECENT_POINTS + WHOLE_POINTS + 1);
    }

    #[test]
    fn values_a_chart_cannot_place_are_left_out() {
        let mut h = History::default();
        h.push(1.0, f64::NAN);
        h.push(2.0, f64::INFINITY);
        assert_eq!(h.last, None);
        assert!(h.whole().is_empty() && h.recent().is_empty());
    }
}
