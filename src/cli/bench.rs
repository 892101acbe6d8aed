//! `rlhf-tui bench <workload>`: DESIGN.md's fixed workloads, one JSON line each.

use crate::bench;
use crate::bench::shape::Shape;
use crate::device::{self, DeviceChoice};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Workload {
    /// Batched sampling with the KV cache: generated tokens per second.
    Gen,
    /// Square 1024³ f32 matrix products: the device's matmul rate in GFLOP/s.
    Matmul,
    /// SFT training steps, 16 × 128 tokens: tokens/s and model FLOPs utilisation.
    Sft,
    /// PPO iterations: 32 prompts × 48 sampled tokens, 4 epochs of 4 minibatches: episodes/s.
    Ppo,
    /// GRPO iterations: 8 prompts × 4 responses of 48 tokens, one optimizer step: responses/s.
    Grpo,
    /// DPO steps: 16 pairs, prompts of 16 tokens, responses of 49: pairs/s.
    Dpo,
    /// Reward-model training steps, 16 pairs of 96 tokens a side: pairs/s.
    Rm,
    /// The workbench: frame time at 200×50 with 100,000-point histories and
    /// memory as they grow (one line); key-to-frame latency of a β change
    /// the trainer confirms, in one process and attached over the run's
    /// socket (two lines); then key-to-frame latency while PPO trains (a
    /// last line; `--repeats` × 10 key presses each).
    Ui,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub workload: Workload,
    /// Timed repetitions after one warm-up; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// The models' shape for gen, sft, rm, ppo, grpo and dpo (random weights).
    #[arg(long, value_enum, default_value_t = Shape::default())]
    pub shape: Shape,
}

pub fn run(args: BenchArgs, choice: DeviceChoice) -> anyhow::Result<()> {
    anyhow::ensure!(args.repeats >= 1, "--repeats must be at least 1");
    let selected = device::select(choice)?;
    let report = match args.workload {
        Workload::Gen => bench::generation::run(&selected, args.shape, args.repeats),
        Workload::Matmul => bench::matmul::run(&selected, args.repeats),
        Workload::Sft => bench::training::sft(&selected, args.shape, args.repeats),
        Workload::Rm => bench::training::rm(&selected, args.shape, args.repeats),
        Workload::Ppo => bench::ppo::run(&selected, args.shape, args.repeats),
        Workload::Grpo => bench::grouped::run(&selected, args.shape, args.repeats),
        Workload::Dpo => bench::dpo::run(&selected, args.shape, args.repeats),
        Workload::Ui => {
            println!("{}", bench::ui::draw(args.repeats));
            for attached in [false, true] {
                println!("{}", bench::ui::steer_latency(&selected, args.repeats * 10, attached)?);
            }
            bench::ui::latency(&selected, args.repeats * 10)?
        }
    };
    println!("{report}");
    Ok(())
}
