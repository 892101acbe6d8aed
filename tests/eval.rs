//! `rlhf-tui eval` end to end: two models answer the built-in world's
//! held-out prompts and the world's judge decides, blind; the JSON line's
//! win rate and interval are what the hand-checked formula gives.

use std::process::Command;

use rlhf_tui::rlhf::win_rate::{Z_95, wilson};

fn eval(a: &str, b: &str, n: usize) -> serde_json::Value {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_rlhf-tui"))
        .current_dir(root)
        .args([
            "eval", "--a", a, "--b", b, "--judge", "world", "--json", "--device", "cpu", "--n",
        ])
        .arg(n.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A model against itself, same seeds: every comparison ties, so the win
/// rate is exactly one half, inside Wilson's interval for 6 of 12.
#[test]
fn a_model_against_itself_ties_every_time() {
    let line = eval("assets/base", "assets/base", 12);
    assert_eq!(line["n"], 12);
    assert_eq!(line["ties"], 12);
    assert_eq!(line["win_rate_a"], 0.5);
    let (low, high) = wilson(6.0, 12.0, Z_95);
    assert_eq!(
        (line["ci_low"].as_f64().unwrap(), line["ci_high"].as_f64().unwrap()),
        (low, high)
    );
    assert_eq!(line["judge"], "judge");
}

/// The world's base model against a random model of another vocabulary:
/// the judge prefers the base model's answers, and the interval excludes
/// a coin toss.
#[test]
fn the_judge_prefers_the_model_that_speaks_the_world() {
    let line = eval("assets/base", "tests/fixtures/tiny-gpt2", 24);
    let (rate, low) = (line["win_rate_a"].as_f64().unwrap(), line["ci_low"].as_f64().unwrap());
    assert!(rate > 0.5 && low > 0.5, "{line}");
    let wins = line["wins_a"].as_f64().unwrap() + line["ties"].as_f64().unwrap() / 2.0;
    assert_eq!(rate, wins / 24.0);
}
