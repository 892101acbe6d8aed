//! Agreement between annotators on nominal labels (left, right, tie, both
//! bad): Cohen's κ for two annotators and Krippendorff's α for any number,
//! missing labels allowed. Both are "how much better than chance": 1 is
//! perfect agreement, 0 what chance gives, below 0 systematic disagreement.
//! Neither is defined when chance alone would agree perfectly (every label
//! the same); they return `None` then.

use std::collections::BTreeMap;
use std::hash::Hash;

/// Cohen's κ = (p_o − p_e) / (1 − p_e) over items both annotators labelled,
/// given as (first's label, second's label): p_o the share they agree on,
/// p_e = Σ_c p₁(c)·p₂(c) the agreement expected from their label rates.
pub fn cohen_kappa<L: Ord + Clone>(pairs: &[(L, L)]) -> Option<f64> {
    let n = pairs.len() as f64;
    if pairs.is_empty() {
        return None;
    }
    let observed = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
    let mut rates: BTreeMap<L, (f64, f64)> = BTreeMap::new();
    for (a, b) in pairs {
        rates.entry(a.clone()).or_default().0 += 1.0 / n;
        rates.entry(b.clone()).or_default().1 += 1.0 / n;
    }
    let expected: f64 = rates.values().map(|(p1, p2)| p1 * p2).sum();
    (expected < 1.0 - 1e-12).then(|| (observed - expected) / (1.0 - expected))
}

/// Krippendorff's α for nominal data: each unit's labels from whoever
/// labelled it (units with fewer than two labels cannot be compared and
/// are left out).
///
/// With the coincidence counts o_ck = Σ_units (pairs of labels c, k in
/// the unit, ordered, from different annotators) / (m_u − 1), n_c = Σ_k o_ck
/// and n = Σ_c n_c: α = 1 − (n − 1) · Σ_{c≠k} o_ck / Σ_{c≠k} n_c·n_k.
pub fn krippendorff_alpha<L: Ord + Clone + Hash>(units: &[Vec<L>]) -> Option<f64> {
    let mut o: BTreeMap<(L, L), f64> = BTreeMap::new();
    for labels in units.iter().filter(|u| u.len() >= 2) {
        let weight = 1.0 / (labels.len() - 1) as f64;
        for (i, a) in labels.iter().enumerate() {
            for (j, b) in labels.iter().enumerate() {
                if i != j {
                    *o.entry((a.clone(), b.clone())).or_default() += weight;
                }
            }
        }
    }
    let mut n_c: BTreeMap<L, f64> = BTreeMap::new();
    for ((c, _), count) in &o {
        *n_c.entry(c.clone()).or_default() += count;
    }
    let n: f64 = n_c.values().sum();
    let disagree: f64 = o.iter().filter(|((c, k), _)| c != k).map(|(_, v)| v).sum();
    let total: f64 = n_c.values().sum::<f64>().powi(2) - n_c.values().map(|v| v * v).sum::<f64>();
    (total > 1e-12).then(|| 1.0 - (n - 1.0) * disagree / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kappa_by_hand() {
        // Three items: (L, L), (L, R), (R, R). p_o = 2/3; rates: first
        // L 2/3, R 1/3; second L 1/3, R 2/3; p_e = 2/9 + 2/9 = 4/9;
        // κ = (2/3 − 4/9) / (1 − 4/9) = (2/9) / (5/9) = 0.4.
        let k = cohen_kappa(&[("L", "L"), ("L", "R"), ("R", "R")]).unwrap();
        assert!((k - 0.4).abs() < 1e-12, "{k}");
        // Perfect agreement over two labels is 1; one label everywhere is undefined.
        assert_eq!(cohen_kappa(&[(1, 1), (2, 2)]), Some(1.0));
        assert_eq!(cohen_kappa(&[(1, 1), (1, 1)]), None);
        assert_eq!(cohen_kappa::<u8>(&[]), None);
        // Always disagreeing, with balanced rates: p_o = 0, p_e = 1/2, κ = −1.
        assert_eq!(cohen_kappa(&[(1, 2), (2, 1)]), Some(-1.0));
    }

    #[test]
    fn kappa_textbook_example() {
        // Cohen's κ's standard worked example: 50 proposals read by two
        // readers; both yes 20, A yes B no 5, A no B yes 10, both no 15.
        // p_o = 35/50 = 0.7; p_e = 0.5·0.6 + 0.5·0.4 = 0.5; κ = 0.4.
        let mut pairs = Vec::new();
        for (a, b, n) in [
            ("yes", "yes", 20),
            ("yes", "no", 5),
            ("no", "yes", 10),
            ("no", "no", 15),
        ] {
            pairs.extend(std::iter::repeat_n((a, b), n));
        }
        let k = cohen_kappa(&pairs).unwrap();
        assert!((k - 0.4).abs() < 1e-12, "{k}");
    }

    #[test]
    fn alpha_by_hand() {
        // The same three items as κ: units (L, L), (L, R), (R, R).
        // o_LL = 2, o_LR = o_RL = 1, o_RR = 2; n_L = n_R = 3, n = 6.
        // α = 1 − 5 · 2 / (2 · 3 · 3) = 1 − 10/18 = 4/9.
        let a = krippendorff_alpha(&[vec!["L", "L"], vec!["L", "R"], vec!["R", "R"]]).unwrap();
        assert!((a - 4.0 / 9.0).abs() < 1e-12, "{a}");
        // A unit with one label is left out; all labels equal is undefined.
        let same = krippendorff_alpha(&[vec!["L", "R"], vec!["R", "L"], vec!["L"]]).unwrap();
        assert!((same - krippendorff_alpha(&[vec!["L", "R"], vec!["R", "L"]]).unwrap()).abs() < 1e-12);
        assert_eq!(krippendorff_alpha(&[vec![1, 1], vec![1, 1, 1]]), None);
    }

    #[test]
    fn alpha_textbook_example_with_missing_data() {
        // Krippendorff's own example (Computing Krippendorff's Alpha-
        // Reliability, 2011): 4 observers, 12 units, some labels missing;
        // nominal α = 0.743.
        let table: [[Option<u8>; 12]; 4] = {
            let n = None;
            let s = Some;
            [
                [s(1), s(2), s(3), s(3), s(2), s(1), s(4), s(1), s(2), n, n, n],
                [s(1), s(2), s(3), s(3), s(2), s(2), s(4), s(1), s(2), s(5), n, s(3)],
                [n, s(3), s(3), s(3), s(2), s(3), s(4), s(2), s(2), s(5), s(1), n],
                [s(1), s(2), s(3), s(3), s(2), s(4), s(4), s(1), s(2), s(5), s(1), n],
            ]
        };
        let units: Vec<Vec<u8>> = (0..12)
            .map(|u| table.iter().filter_map(|row| row[u]).collect())
            .collect();
        let a = krippendorff_alpha(&units).unwrap();
        assert!((a - 0.743421052631579).abs() < 1e-12, "{a}");
        assert_eq!(format!("{a:.3}"), "0.743");
    }
}
