//! How GRPO and RLOO turn a per-token loss `[b, t]` into one number, as
//! TRL's `loss_type` does. The choice matters: averaging per sequence
//! first (`grpo`) weighs a short response's tokens more than a long one's,
//! which biases a policy towards length; the others weigh every token
//! alike.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LossAggregation {
    /// Each sequence's mean over its tokens, then the mean over sequences.
    Grpo,
    /// The sum over tokens / (sequences × the longest response allowed):
    /// Dr. GRPO's constant normaliser.
    DrGrpo,
    /// The sum over tokens / the tokens of the whole generation batch, so
    /// minibatches add up to the batch's token mean (TRL's default).
    #[default]
    Dapo,
    /// The sum over tokens / the tokens of this minibatch.
    Bnpo,
}

/// Sizes the normalisers need beyond the minibatch itself.
#[derive(Clone, Copy, Debug)]
pub struct Normalisers {
    /// The longest response allowed (`max_new_tokens`), for `dr_grpo`.
    pub max_response_tokens: usize,
    /// Response tokens in the whole generation batch, for `dapo`.
    pub batch_tokens: usize,
}

/// The loss of `per_token` over the tokens `mask` marks (1 on response
/// tokens), aggregated as `how` says.
pub fn aggregate(per_token: Tensor<2>, mask: Tensor<2>, how: LossAggregation, sizes: Normalisers) -> Tensor<1> {
    let [rows, _] = per_token.dims();
    let masked = per_token * mask.clone();
    match how {
        LossAggregation::Grpo => {
            let per_row = masked.sum_dim(1) / mask.sum_dim(1).clamp_min(1.0);
            per_row.mean().reshape([1])
        }
        LossAggregation::DrGrpo => masked.sum().reshape([1]) / (rows * sizes.max_response_tokens) as f32,
        LossAggregation::Dapo => masked.sum().reshape([1]) / sizes.batch_tokens.max(1) as f32,
        LossAggregation::Bnpo => masked.sum().reshape([1]) / mask.sum().clamp_min(1.0).reshape([1]),
    }
}

/// The weight of one shard's `aggregate` (over its own rows) in the
/// minibatch's: the shards of a minibatch run apart (see `shards`), and
/// their weighted losses must add up to the minibatch's loss.
pub fn shard_weight(
    how: LossAggregation,
    (rows, all_rows): (usize, usize),
    (tokens, all_tokens): (usize, usize),
) -> f32 {
    match how {
        // Per-row means and a per-row normaliser: the shard's share of rows.
        LossAggregation::Grpo | LossAggregation::DrGrpo => rows as f32 / all_rows.max(1) as f32,
        // A normaliser fixed for the whole batch: the shard's sum as it is.
        LossAggregation::Dapo => 1.0,
        LossAggregation::Bnpo => tokens as f32 / all_tokens.max(1) as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// A hand-made batch: row 1 has 1 response token of loss 4, row 2 has
    /// 3 of losses 1, 2, 3 (the fourth column is padding, loss 100).
    #[test]
    fn each_aggregation_on_a_hand_made_batch() {
        let device = Device::flex();
        let t = |v: [f32; 8]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [2, 4]), &device);
        let loss = t([4.0, 100.0, 100.0, 100.0, 1.0, 2.0, 3.0, 100.0]);
        let mask = t([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]);
        let sizes = Normalisers {
            max_response_tokens: 4,
            batch_tokens: 8,
        };
        let value = |how| aggregate(loss.clone(), mask.clone(), how, sizes).into_scalar::<f32>();
        // grpo: (4/1 + 6/3) / 2 = 3.
        assert!((value(LossAggregation::Grpo) - 3.0).abs() < 1e-6);
        // bnpo: (4 + 6) / 4 tokens = 2.5.
        assert!((value(LossAggregation::Bnpo) - 2.5).abs() < 1e-6);
        // dr_grpo: 10 / (2 rows × 4) = 1.25.
        assert!((value(LossAggregation::DrGrpo) - 1.25).abs() < 1e-6);
        // dapo: 10 / the batch's 8 tokens (this minibatch is half of it) = 1.25.
        assert!((value(LossAggregation::Dapo) - 1.25).abs() < 1e-6);
        // Each row alone, weighted, adds up to the pair's loss.
        let row = |i: usize| {
            (
                loss.clone().slice([i..i + 1, 0..4]),
                mask.clone().slice([i..i + 1, 0..4]),
            )
        };
        for how in [
            LossAggregation::Grpo,
            LossAggregation::DrGrpo,
            LossAggregation::Dapo,
            LossAggregation::Bnpo,
        ] {
            let parts: f32 = [(0, 1), (1, 3)]
                .into_iter()
                .map(|(i, tokens)| {
                    let (l, m) = row(i);
                    aggregate(l, m, how, sizes).into_scalar::<f32>() * shard_weight(how, (1, 2), (tokens, 4))
                })
                .sum();
            assert!((parts - value(how)).abs() < 1e-6, "{how:?}: {parts} vs {}", value(how));
        }
    }
}
