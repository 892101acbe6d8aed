//! The causal language-modelling loss with a per-token weight: all ones for
//! pretraining, zero on prompt tokens for SFT (InstructGPT's prompt
//! masking). Weighted mean of −log p(next token).

use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};

use crate::model::CausalLm;
use crate::model::batch::{PaddedBatch, length_groups, pick};
use crate::model::logprobs::target_stats;
use crate::model::window::select_rows;
use crate::rlhf::shards;

/// Inputs, targets and loss weights for one batch of next-token prediction.
pub struct LmBatch {
    /// Right-padded inputs (each row's tokens but the last).
    pub inputs: PaddedBatch,
    /// `[b · t]` the token each input position should predict.
    pub targets: Vec<i64>,
    /// `[b · t]` 1 where the prediction counts, 0 for padding (and prompts).
    pub weights: Vec<f32>,
}

impl LmBatch {
    /// Rows of tokens; `counts[i][j]` says whether token j of row i is a
    /// target (its prediction from the tokens before it is trained).
    pub fn new(rows: &[Vec<u32>], counts: &[Vec<bool>], pad_id: u32) -> Self {
        let inputs: Vec<Vec<u32>> = rows.iter().map(|r| r[..r.len().saturating_sub(1)].to_vec()).collect();
        let inputs = PaddedBatch::right_padded(&inputs, pad_id);
        let t = inputs.cols;
        let mut targets = Vec::with_capacity(rows.len() * t);
        let mut weights = Vec::with_capacity(rows.len() * t);
        for (row, count) in rows.iter().zip(counts) {
            for j in 0..t {
                let k = j + 1; // the token predicted at position j
                targets.push(row.get(k).copied().unwrap_or(pad_id) as i64);
                weights.push(if k < row.len() && count[k] { 1.0 } else { 0.0 });
            }
        }
        Self {
            inputs,
            targets,
            weights,
        }
    }

    pub fn weighted_tokens(&self) -> f32 {
        self.weights.iter().sum()
    }
}

/// The loss and what is reported beside it.
pub struct LmOutput {
    /// Weighted mean −log p(target), a scalar `[1]` with gradient.
    pub loss: Tensor<1>,
    /// Weighted fraction of positions where the most likely token is the target.
    pub accuracy: f32,
    /// Weighted mean entropy of the predicted distribution, in nats.
    pub entropy: f32,
}

/// Runs the model over the batch: loss with gradient, statistics without.
pub fn lm_forward(model: &CausalLm, batch: &LmBatch) -> LmOutput {
    let device = model.device();
    let (b, t) = (batch.inputs.rows, batch.inputs.cols);
    let inputs = &batch.inputs;
    let hidden = model.forward(
        inputs.ids_tensor(&device),
        inputs.positions_tensor(&device),
        inputs.mask_tensor(&device),
        None,
    );
    // Only counted positions go through the LM head: its V-wide product
    // and softmax are the largest costs of a small model, and SFT's prompt
    // and padding positions carry no loss.
    let counted: Vec<usize> = (0..b * t).filter(|&i| batch.weights[i] > 0.0).collect();
    let (hidden, targets, weights) = if counted.len() == b * t || counted.is_empty() {
        (hidden, batch.targets.clone(), batch.weights.clone())
    } else {
        let d = hidden.dims()[2];
        (
            select_rows(hidden.reshape([b * t, d]), &counted).reshape([1, counted.len(), d]),
            pick(&batch.targets, &counted),
            pick(&batch.weights, &counted),
        )
    };
    let [rows, cols, _] = hidden.dims();
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [rows, cols]), &device);
    let weights = Tensor::<2>::from_data(TensorData::new(weights, [rows, cols]), &device);
    let logits = model.lm_logits(hidden); // [rows, cols, V]
    let stats = target_stats(logits, targets.clone());
    let total = batch.weighted_tokens().max(1.0);
    let loss = (stats.logp * weights.clone()).sum().neg() / total;

    let weights = weights.detach();
    let correct = stats.predicted.equal(targets).float();
    LmOutput {
        loss,
        accuracy: (correct * weights.clone()).sum().into_scalar::<f32>() / total,
        entropy: (stats.entropy * weights).sum().into_scalar::<f32>() / total,
    }
}

/// A training step's figures, each over the whole batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LmStep {
    pub loss: f32,
    pub accuracy: f32,
    pub entropy: f32,
    /// The number of positions trained on (the weights' sum).
    pub tokens: f32,
}

/// The loss's gradient on `rows` (targets as in `LmBatch::new`), with the
/// step's figures. The rows are split into shards that run in parallel on
/// the CPU (see `shards`), and a shard's rows into groups of similar
/// length (`length_groups`), each padded only to its own longest; each
/// group's loss is its share of the whole batch's weighted mean.
pub fn lm_gradients(
    model: &CausalLm,
    rows: &[Vec<u32>],
    counts: &[Vec<bool>],
    pad_id: u32,
) -> (LmStep, GradientsParams) {
    let n = shards::count(&model.device(), rows.len());
    let batches: Vec<Vec<LmBatch>> = shards::ranges(rows.len(), n)
        .into_iter()
        .map(|r| {
            let (rows, counts) = (&rows[r.clone()], &counts[r]);
            let lens: Vec<usize> = rows.iter().map(Vec::len).collect();
            length_groups(&lens)
                .iter()
                .map(|group| LmBatch::new(&pick(rows, group), &pick(counts, group), pad_id))
                .collect()
        })
        .collect();
    let tokens: f32 = batches.iter().flatten().map(LmBatch::weighted_tokens).sum();
    let (grads, parts) = shards::gradients(model, n, |model, i| {
        let mut figures = LmStep::default();
        let mut losses = Vec::new();
        for batch in &batches[i] {
            let out = lm_forward(model, batch);
            let share = batch.weighted_tokens() / tokens.max(1.0);
            let loss = out.loss * share;
            figures.loss += loss.clone().into_scalar::<f32>();
            figures.accuracy += out.accuracy * share;
            figures.entropy += out.entropy * share;
            figures.tokens += batch.weighted_tokens();
            losses.push(loss);
        }
        (Tensor::cat(losses, 0).sum(), figures)
    });
    let step = parts.iter().fold(LmStep::default(), |a, b| LmStep {
        loss: a.loss + b.loss,
        accuracy: a.accuracy + b.accuracy,
        entropy: a.entropy + b.entropy,
        tokens: a.tokens + b.tokens,
    });
    (step, grads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_shifted_and_weights_follow_the_counted_tokens() {
        // Row [a b c d] with only c, d counted (a, b are the prompt).
        let batch = LmBatch::new(
            &[vec![10, 11, 12, 13], vec![20, 21]],
            &[vec![false, false, true, true], vec![false, true]],
            0,
        );
        assert_eq!(batch.inputs.ids, vec![10, 11, 12, 20, 0, 0]);
        assert_eq!(batch.targets, vec![11, 12, 13, 21, 0, 0]);
        assert_eq!(batch.weights, vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(batch.weighted_tokens(), 3.0);
    }

    /// The LM head over the counted positions alone gives the loss, the
    /// figures and the gradient of every position's logits weighted.
    #[test]
    fn counted_positions_alone_give_the_loss_of_all_positions() {
        use crate::model::weights::SeededInit;
        use crate::model::{Gpt2, Gpt2Config};
        use crate::testutil::assert_close;
        let device = burn::tensor::Device::flex().autodiff();
        // The GPT-2 body beside the interface, to read its parameters.
        let gpt2 = Gpt2::build(&Gpt2Config::new(32, 16, 16, 2, 2), &mut SeededInit::new(4), &device).unwrap();
        let model = CausalLm::from(gpt2.clone());
        let rows: Vec<Vec<u32>> = (0..3u32)
            .map(|r| (0..5 + 2 * r).map(|j| (r * 5 + j * 7) % 32).collect())
            .collect();
        let counts: Vec<Vec<bool>> = rows.iter().map(|row| (0..row.len()).map(|j| j > 2).collect()).collect();
        let batch = LmBatch::new(&rows, &counts, 0);
        assert!(batch.weighted_tokens() < (batch.inputs.rows * batch.inputs.cols) as f32);

        let out = lm_forward(&model, &batch);
        let (b, t) = (batch.inputs.rows, batch.inputs.cols);
        let hidden = model.forward(
            batch.inputs.ids_tensor(&device),
            batch.inputs.positions_tensor(&device),
            batch.inputs.mask_tensor(&device),
            None,
        );
        let targets = Tensor::<2, Int>::from_data(TensorData::new(batch.targets.clone(), [b, t]), &device);
        let weights = Tensor::<2>::from_data(TensorData::new(batch.weights.clone(), [b, t]), &device);
        let stats = target_stats(model.lm_logits(hidden), targets.clone());
        let total = batch.weighted_tokens();
        let loss = (stats.logp * weights.clone()).sum().neg() / total;
        let accuracy = (stats.predicted.equal(targets).float() * weights.clone())
            .sum()
            .into_scalar::<f32>()
            / total;
        let entropy = (stats.entropy * weights).sum().into_scalar::<f32>() / total;

        let scalar = |t: &Tensor<1>| t.clone().into_scalar::<f32>();
        assert!((scalar(&out.loss) - scalar(&loss)).abs() < 1e-6);
        assert!((out.accuracy - accuracy).abs() < 1e-6 && (out.entropy - entropy).abs() < 1e-5);
        let (mine, all) = (out.loss.backward(), loss.backward());
        let grad = |g, w: Tensor<2>| w.grad(g).unwrap().into_data().try_to_vec::<f32>().unwrap();
        for w in [gpt2.wte.val(), gpt2.h[1].mlp.c_fc.weight.val()] {
            assert_close("gradient", &grad(&mine, w.clone()), &grad(&all, w), 1e-6);
        }
    }

    /// Shards of different sizes and different numbers of counted tokens
    /// give the loss, the figures and the gradient of the whole batch.
    #[test]
    fn sharded_gradients_equal_the_whole_batch() {
        use crate::model::weights::SeededInit;
        use crate::model::{Gpt2, Gpt2Config};
        let device = burn::tensor::Device::flex().autodiff();
        let config = Gpt2Config::new(32, 32, 16, 2, 2);
        let gpt2 = Gpt2::build(&config, &mut SeededInit::new(3), &device).unwrap();
        let model = CausalLm::from(gpt2.clone());
        // Five rows in shards of 2, 2 and 1 on three threads; and twenty of
        // 6 to 25 tokens on one, which go through the model as two groups
        // of ten (`length_groups`).
        for (count, threads) in [(5u32, 3), (20, 1)] {
            same_as_whole_batch(&gpt2, &model, count, threads);
        }
    }

    fn same_as_whole_batch(gpt2: &crate::model::Gpt2, model: &CausalLm, count: u32, threads: usize) {
        let rows: Vec<Vec<u32>> = (0..count)
            .map(|r| (0..6 + r).map(|j| (r * 7 + j * 3) % 32).collect())
            .collect();
        let counts: Vec<Vec<bool>> = rows
            .iter()
            .enumerate()
            .map(|(r, row)| (0..row.len()).map(|j| j > r % 5).collect())
            .collect();
        let lens: Vec<usize> = rows.iter().map(Vec::len).collect();
        assert_eq!(length_groups(&lens).len(), if count == 20 { 2 } else { 1 });

        let whole = lm_forward(model, &LmBatch::new(&rows, &counts, 0));
        let loss = whole.loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(whole.loss.backward(), model);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (step, sharded) = pool.install(|| lm_gradients(model, &rows, &counts, 0));

        assert!((step.loss - loss).abs() < 1e-5, "{} vs {loss}", step.loss);
        assert!((step.accuracy - whole.accuracy).abs() < 1e-6);
        assert!((step.entropy - whole.entropy).abs() < 1e-4);
        assert_eq!(step.tokens, LmBatch::new(&rows, &counts, 0).weighted_tokens());
        let values = |g: &GradientsParams, id| g.get::<2>(id).unwrap().into_data().try_to_vec::<f32>().unwrap();
        for id in [gpt2.wte.id, gpt2.h[1].attn.c_attn.weight.id] {
            let (a, b) = (values(&grads, id), values(&sharded, id));
            let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(scale > 0.0);
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5 * scale.max(1.0), "{x} vs {y}");
            }
        }
    }
}
