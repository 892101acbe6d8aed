//! The KL coefficient β: fixed, or adapted towards a target KL with the
//! proportional controller of Ziegler et al. (2019).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum KlControl {
    Fixed {
        beta: f64,
    },
    /// β ← β · (1 + clip(KL/target − 1, −0.2, 0.2) · n / horizon) after
    /// each batch of n episodes.
    Adaptive {
        beta: f64,
        target: f64,
        horizon: f64,
    },
}

impl KlControl {
    pub fn beta(&self) -> f64 {
        match self {
            KlControl::Fixed { beta } | KlControl::Adaptive { beta, .. } => *beta,
        }
    }

    /// Sets β by hand (the workbench's β editor); an adaptive controller
    /// continues from the new value.
    pub fn set_beta(&mut self, value: f64) {
        match self {
            KlControl::Fixed { beta } | KlControl::Adaptive { beta, .. } => *beta = value,
        }
    }

    /// Feeds the batch's mean KL (summed over a response) and its size.
    pub fn update(&mut self, kl: f64, episodes: usize) {
        if let KlControl::Adaptive { beta, target, horizon } = self {
            let error = (kl / *target - 1.0).clamp(-0.2, 0.2);
            *beta *= 1.0 + error * episodes as f64 / *horizon;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_update_by_hand() {
        // KL 12 against target 6: error clipped to 0.2; 32 episodes over a
        // horizon of 10000: β · (1 + 0.2 · 0.0032) = 0.1 · 1.00064.
        let mut c = KlControl::Adaptive {
            beta: 0.1,
            target: 6.0,
            horizon: 10_000.0,
        };
        c.update(12.0, 32);
        assert!((c.beta() - 0.100_064).abs() < 1e-12, "{}", c.beta());
        // KL 5.4: error −0.1, β · (1 − 0.1 · 0.5) with n/horizon = 0.5.
        let mut c = KlControl::Adaptive {
            beta: 0.2,
            target: 6.0,
            horizon: 64.0,
        };
        c.update(5.4, 32);
        assert!((c.beta() - 0.19).abs() < 1e-12, "{}", c.beta());
    }

    #[test]
    fn fixed_stays_put_and_both_take_a_manual_beta() {
        let mut c = KlControl::Fixed { beta: 0.05 };
        c.update(100.0, 32);
        assert_eq!(c.beta(), 0.05);
        c.set_beta(0.1);
        assert_eq!(c.beta(), 0.1);
    }
}
