//! The optimizer every stage uses: AdamW with gradient clipping by global
//! norm.

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer};

pub fn adamw(weight_decay: f32, max_grad_norm: f32) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(weight_decay)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(max_grad_norm)))
        .init()
}
