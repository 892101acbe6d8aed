//! `rlhf-tui world`: print the built-in world's data and judge texts.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::world::corpus::{demonstrations, pretrain_documents, world_prompts};
use crate::world::generator::{Style, dialogue, respond};
use crate::world::judge;

#[derive(Debug, clap::Subcommand)]
pub enum WorldCommand {
    /// Print generated data, one JSON object a line.
    Sample {
        #[arg(value_enum)]
        set: DataSet,
        #[arg(long, default_value_t = 5)]
        n: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// With the claims a run's `world: (claims: true)` adds (SFT and
        /// held-out sets; pretraining has none).
        #[arg(long)]
        claims: bool,
    },
    /// Judge a response to a prompt and print the score and its reasons.
    Judge {
        /// The question, bare ("What is rain?") or in dialogue form.
        #[arg(long)]
        prompt: String,
        #[arg(long)]
        response: String,
        /// Print the judgment as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DataSet {
    /// Pretraining documents: every style, good and bad.
    Pretrain,
    /// SFT demonstrations: mostly good responses to training prompts, with the demonstrators' slips.
    Sft,
    /// Held-out prompts with a good response each.
    HeldOut,
}

pub fn run(command: WorldCommand) -> anyhow::Result<()> {
    match command {
        WorldCommand::Sample { set, n, seed, claims } => {
            let lines: Vec<serde_json::Value> = match set {
                DataSet::Pretrain => pretrain_documents(seed, n)
                    .into_iter()
                    .map(|d| serde_json::json!({ "text": d }))
                    .collect(),
                DataSet::Sft => demonstrations(&world_prompts(false, claims), seed, n)
                    .into_iter()
                    .map(|(p, r)| serde_json::json!({ "prompt": p, "response": r }))
                    .collect(),
                DataSet::HeldOut => {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    world_prompts(true, claims)
                        .into_iter()
                        .take(n)
                        .map(|p| serde_json::json!({ "prompt": p.text, "text": dialogue(&p.text, &respond(p, Style::GOOD, &mut rng)) }))
                        .collect()
                }
            };
            for line in lines {
                println!("{line}");
            }
        }
        WorldCommand::Judge { prompt, response, json } => {
            let j = judge(&prompt, &response);
            if json {
                println!("{}", serde_json::to_string(&j)?);
            } else {
                println!(
                    "score {:.3}{}",
                    j.score,
                    if j.parsed {
                        ""
                    } else {
                        " (has sentences the world does not know)"
                    }
                );
                for c in &j.criteria {
                    println!("  {:<9} {:.2}  {}", c.name, c.score, c.reason);
                }
            }
        }
    }
    Ok(())
}
