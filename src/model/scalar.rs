//! A scalar per position on top of any model body: the reward or value
//! head (`score.weight`, `[1, d]`), as `<Arch>ForSequenceClassification`
//! with one label, and how a reward model pools it into one score per
//! sequence.

use burn::module::{Module, Param};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::causal_lm::CausalLm;
use super::hf::ImportError;
use super::weights::{Init, WeightSource};
use super::window::Window;
use crate::kernels::linear::linear_transposed;

/// Where a reward model reads its score of a sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pooling {
    /// At the last token, as transformers' `…ForSequenceClassification`
    /// pools (and as InstructGPT's reward model reads a response).
    #[default]
    Last,
    /// The mean over the response's tokens: every token of the answer
    /// speaks, not only where it stops. transformers pools at the last
    /// token, so a directory records this in its `config.json`
    /// (`POOLING_KEY`) for this tool to read back.
    Mean,
}

/// The `config.json` key a mean-pooled reward model is marked with.
pub const POOLING_KEY: &str = "rlhf_tui_pooling";

#[derive(Module, Debug)]
pub struct ScalarModel {
    pub transformer: CausalLm,
    pub score: Param<Tensor<2>>,
    #[module(skip)]
    pub pooling: Pooling,
}

impl ScalarModel {
    /// A scalar head on a body; with a fresh head drawn from `src` when it
    /// has none (a reward model initialised from an SFT model).
    pub fn build(transformer: CausalLm, src: &mut dyn WeightSource, device: &Device) -> Result<Self, ImportError> {
        let d = transformer.hidden_size();
        // A small init keeps the initial rewards near zero.
        let score = src.tensor2(
            "score.weight",
            [1, d],
            Init::Normal(1.0 / (d as f64 + 1.0).sqrt()),
            device,
        )?;
        Ok(Self {
            transformer,
            score: Param::from_tensor(score),
            pooling: Pooling::Last,
        })
    }

    /// The head applied at every position: `[b, q, d]` → `[b, q]`. The
    /// weight is stored `[out, in]`, as the tied LM head's is.
    pub fn values(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [b, q, d] = hidden.dims();
        linear_transposed(hidden.reshape([b * q, d]), self.score.val()).reshape([b, q])
    }

    /// One score per row, `[b]`, from row i's response, its columns
    /// `spans[i].0..=spans[i].1` (the last its last real token): at that
    /// last token (only those columns run through the last block), or the
    /// mean over the span.
    pub fn pooled(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
        spans: &[(usize, usize)],
    ) -> Tensor<1> {
        let b = spans.len();
        match self.pooling {
            Pooling::Last => {
                let last = spans.iter().map(|&(_, last)| last).collect();
                let hidden = self
                    .transformer
                    .forward_window(tokens, positions, mask, &Window::columns(last));
                self.values(hidden).reshape([b])
            }
            Pooling::Mean => {
                let device = tokens.device();
                let values = self.values(self.transformer.forward(tokens, positions, mask, None));
                let q = values.dims()[1];
                let weights = mean_weights(spans, q);
                let weights = Tensor::<2>::from_data(TensorData::new(weights, [b, q]), &device);
                (values * weights).sum_dim(1).reshape([b])
            }
        }
    }
}

/// `[b, q]` row-major: 1/len over each row's span (its first column
/// clamped to its last), 0 elsewhere.
fn mean_weights(spans: &[(usize, usize)], q: usize) -> Vec<f32> {
    spans
        .iter()
        .flat_map(|&(first, last)| {
            let first = first.min(last);
            let share = 1.0 / (last - first + 1) as f32;
            (0..q).map(move |j| if (first..=last).contains(&j) { share } else { 0.0 })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Gpt2Config;
    use crate::model::batch::PaddedBatch;
    use crate::model::weights::SeededInit;

    #[test]
    fn mean_weights_cover_each_span() {
        // Spans 1..=2 and 0..=3 of 4 columns; an empty response (first past
        // last) reads its last token alone.
        assert_eq!(
            mean_weights(&[(1, 2), (0, 3), (5, 2)], 4),
            [[0.0, 0.5, 0.5, 0.0], [0.25; 4], [0.0, 0.0, 1.0, 0.0]].concat()
        );
    }

    /// Mean pooling is the mean of the head's values over the span, and
    /// last-token pooling the value at the span's end, on a real model.
    #[test]
    fn pooling_reads_the_values_it_says() {
        let device = Device::flex();
        let body = CausalLm::seeded(&Gpt2Config::new(64, 16, 16, 1, 2), 0, &device);
        let mut model = ScalarModel::build(body, &mut SeededInit::new(1), &device).unwrap();
        let seqs = vec![vec![3, 4, 5, 6, 7], vec![8, 9, 10]];
        let batch = PaddedBatch::right_padded(&seqs, 0);
        let spans = [(2, 4), (1, 2)];
        let run = |model: &ScalarModel| -> Vec<f32> {
            let tensors = (
                batch.ids_tensor(&device),
                batch.positions_tensor(&device),
                batch.mask_tensor(&device),
            );
            model
                .pooled(tensors.0, tensors.1, tensors.2, &spans)
                .into_data()
                .try_to_vec()
                .unwrap()
        };
        let hidden = model.transformer.forward(
            batch.ids_tensor(&device),
            batch.positions_tensor(&device),
            batch.mask_tensor(&device),
            None,
        );
        let values: Vec<f32> = model.values(hidden).into_data().try_to_vec().unwrap(); // [2, 5]
        let last = run(&model);
        assert!((last[0] - values[4]).abs() < 1e-5 && (last[1] - values[5 + 2]).abs() < 1e-5);
        model.pooling = Pooling::Mean;
        let mean = run(&model);
        let want = [(values[2] + values[3] + values[4]) / 3.0, (values[6] + values[7]) / 2.0];
        assert!(
            (mean[0] - want[0]).abs() < 1e-5 && (mean[1] - want[1]).abs() < 1e-5,
            "{mean:?} {want:?}"
        );
    }
}
