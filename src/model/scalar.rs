//! A scalar per position on top of any model body: the reward or value
//! head (`score.weight`, `[1, d]`), as `<Arch>ForSequenceClassification`
//! with one label.

use burn::module::{Module, Param};
use burn::tensor::{Bool, Device, Int, Tensor};

use super::causal_lm::CausalLm;
use super::hf::ImportError;
use super::weights::{Init, WeightSource};
use super::window::Window;
use crate::kernels::linear::linear_transposed;

#[derive(Module, Debug)]
pub struct ScalarModel {
    pub transformer: CausalLm,
    pub score: Param<Tensor<2>>,
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
        })
    }

    /// The head applied at every position: `[b, q, d]` → `[b, q]`. The
    /// weight is stored `[out, in]`, as the tied LM head's is.
    pub fn values(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [b, q, d] = hidden.dims();
        linear_transposed(hidden.reshape([b * q, d]), self.score.val()).reshape([b, q])
    }

    /// The scalar at each row's last real token (column `last[i]` of row
    /// i), as transformers pools it: `[b]`. Only those columns run through
    /// the last block.
    pub fn pooled(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
        last: Vec<usize>,
    ) -> Tensor<1> {
        let b = last.len();
        let hidden = self
            .transformer
            .forward_window(tokens, positions, mask, &Window::columns(last));
        self.values(hidden).reshape([b])
    }
}
