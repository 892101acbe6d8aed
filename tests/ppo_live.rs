//! PPO's live parameters: the steering callback is called before every
//! rollout and every optimizer step; a learning rate set there is the one
//! the next optimizer step uses, and β and the temperature set before a
//! rollout are the ones that rollout reports.

use std::ops::ControlFlow;

use burn::tensor::Device;
use rlhf_tui::model::weights::SeededInit;
use rlhf_tui::model::{ScalarModel, hf};
use rlhf_tui::rlhf::ppo::config::PpoConfig;
use rlhf_tui::rlhf::ppo::live::StepPoint;
use rlhf_tui::rlhf::ppo::trainer::PpoTrainer;
use rlhf_tui::run::RunConfig;
use rlhf_tui::trainer::run_data::RunData;

fn metric(metrics: &[(&str, f64)], key: &str) -> f64 {
    rlhf_tui::run::metric(metrics, key).unwrap_or_else(|| panic!("no {key}"))
}

fn weights(trainer: &PpoTrainer) -> Vec<f32> {
    trainer
        .inference_policy()
        .named_tensors(rlhf_tui::model::HeadKind::LanguageModel)
        .into_iter()
        .flat_map(|(_, t)| t.try_to_vec::<f32>().unwrap())
        .collect()
}

#[test]
fn steering_reaches_every_optimizer_step() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/base");
    let device = Device::flex();
    // A reward model: the base model with a fresh scalar head.
    let (body, tokenizer) = hf::load_language_model(&base, &device).unwrap();
    let rm = ScalarModel::build(body, &mut SeededInit::new(3), &device).unwrap();
    let rm_dir = tmp.path().join("rm");
    hf::save_scalar_model(&rm_dir, &rm, &tokenizer).unwrap();

    let config = PpoConfig {
        batch_size: 4,
        minibatch_size: 2,
        ppo_epochs: 2,
        max_new_tokens: 6,
        lr: 1e-3,
        ..PpoConfig::default()
    };
    let world = RunData::of(&RunConfig::default()).unwrap().parts();
    let mut trainer = PpoTrainer::new(&config, &base, &rm_dir, world, &device).unwrap();

    // Iteration 0: β and temperature changed before the rollout, and the
    // learning rate set to zero before the first optimizer step: the policy
    // must not move although the config's rate is 1e-3.
    let before = weights(&trainer);
    let mut points = Vec::new();
    let metrics = trainer
        .step(&mut |params, point, _| {
            points.push(point);
            match point {
                StepPoint::Rollout { .. } => {
                    params.kl.set_beta(0.25);
                    params.temperature = 0.7;
                }
                StepPoint::Optimizer { .. } => params.lr = 0.0,
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    let expected: Vec<StepPoint> = std::iter::once(StepPoint::Rollout { iteration: 0 })
        .chain((0..4).map(|step| StepPoint::Optimizer { iteration: 0, step }))
        .collect();
    assert_eq!(points, expected, "one rollout, 2 epochs × 2 minibatches");
    assert_eq!(metric(&metrics, "objective/kl_coef"), 0.25);
    assert!((metric(&metrics, "temperature") - 0.7).abs() < 1e-6);
    assert_eq!(metric(&metrics, "lr"), 0.0);
    assert_eq!(weights(&trainer), before, "lr 0 from the first optimizer step");

    // Iteration 1: the rate raised again after the first optimizer step
    // moves the policy; the parameters persist from one iteration to the next.
    let mut seen = Vec::new();
    let metrics = trainer
        .step(&mut |params, point, _| {
            seen.push((point, params.kl.beta()));
            if point == (StepPoint::Optimizer { iteration: 1, step: 5 }) {
                params.lr = 1e-3;
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(seen[0], (StepPoint::Rollout { iteration: 1 }, 0.25));
    assert_eq!(seen.len(), 5);
    assert_eq!(metric(&metrics, "lr"), 1e-3);
    assert_eq!(metric(&metrics, "eps"), 8.0);
    assert_ne!(weights(&trainer), before);

    // Iteration 2, stopped before its third optimizer step: no metrics,
    // two steps taken, the iteration not counted as done.
    let moved = weights(&trainer);
    let mut calls = 0;
    let stopped = trainer.step(&mut |_, point, _| {
        calls += 1;
        if point == (StepPoint::Optimizer { iteration: 2, step: 10 }) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert!(stopped.is_none());
    assert_eq!(calls, 4, "rollout and optimizer steps 8, 9, 10");
    assert_eq!((trainer.iteration, trainer.optimizer_steps), (2, 10));
    assert_ne!(weights(&trainer), moved);
}
