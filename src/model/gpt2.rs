//! The GPT-2 decoder in one readable file: learned token and position
//! embeddings, pre-LayerNorm blocks of causal self-attention and a tanh-GELU
//! MLP, a final LayerNorm, and the language-model head tied to the token
//! embedding.
//!
//! Shapes use `b` = batch, `q` = new positions in this call, `k` = all key
//! positions (cached + new), `d` = `n_embd`, `h` = heads, `hd` = d / h,
//! `V` = vocabulary. Parameters are laid out exactly as GPT-2's Conv1D
//! (`[in, out]`), which is also burn's row-major `Linear`, so import and
//! export copy tensors without transposing.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::module::embedding;
use burn::tensor::{Bool, Device, Int, Tensor};

use super::config::Gpt2Config;
use super::kv_cache::{KvCache, LayerCache};
use super::weights::{Init, WeightSource};
use super::window::Window;
use crate::kernels::attention::{Heads, self_attention};
use crate::kernels::gelu::gelu_new;
use crate::kernels::layer_norm::layer_norm as norm;
use crate::kernels::linear::{linear, linear_transposed};
use crate::model::hf::ImportError;

/// Causal self-attention with all heads computed by one fused projection.
#[derive(Module, Debug)]
pub struct Attention {
    /// Query, key and value projections side by side: `[d, 3d]`.
    pub c_attn: Linear,
    /// Output projection back into the residual stream: `[d, d]`.
    pub c_proj: Linear,
    pub n_head: usize,
}

impl Attention {
    /// `x`: `[b, q, d]`; `mask`: `[b, 1, q, k]`, true where a key is hidden.
    fn forward(&self, x: Tensor<3>, mask: Tensor<4, Bool>, cache: Option<&mut LayerCache>) -> Tensor<3> {
        let qkv = dense_rows(&self.c_attn, x); // [b, q, 3d]
        let y = match cache {
            Some(cache) => cache.attend(qkv, mask, Heads::each(self.n_head)),
            // Without a cache every key is a new position.
            None => self_attention(qkv, mask, Heads::each(self.n_head), None),
        };
        dense_rows(&self.c_proj, y)
    }

    /// `forward` without a cache at `window`'s columns only: `[b, len, d]`.
    fn forward_window(&self, x: Tensor<3>, mask: Tensor<4, Bool>, window: &Window) -> Tensor<3> {
        let qkv = dense_rows(&self.c_attn, x);
        dense_rows(
            &self.c_proj,
            self_attention(qkv, mask, Heads::each(self.n_head), Some(window)),
        )
    }
}

/// `x · weight + bias` over every position at once: `[b, q, in]` →
/// `[b, q, out]`. Folding batch and positions into the rows makes one
/// matrix product per weight; a `[b, q, in]` input would otherwise run as
/// `b` products that each repack the weight, which took two fifths of a
/// training step on the CPU.
fn rows_linear(x: Tensor<3>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<3> {
    let [b, q, d] = x.dims();
    let out = weight.dims()[1];
    linear(x.reshape([b * q, d]), weight, bias).reshape([b, q, out])
}

fn dense_rows(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    rows_linear(x, layer.weight.val(), layer.bias.as_ref().map(Param::val))
}

/// The position-wise feed-forward network.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[d, d_mlp]`
    pub c_fc: Linear,
    /// `[d_mlp, d]`
    pub c_proj: Linear,
}

impl Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        dense_rows(&self.c_proj, gelu_new(dense_rows(&self.c_fc, x)))
    }
}

/// One pre-LayerNorm transformer block.
#[derive(Module, Debug)]
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: Attention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
}

impl Block {
    fn forward(&self, x: Tensor<3>, mask: Tensor<4, Bool>, cache: Option<&mut LayerCache>, eps: f64) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(norm(&self.ln_1, x, eps), mask, cache);
        self.mlp_residual(x, eps)
    }

    /// `forward` without a cache, at `window`'s columns only.
    fn forward_window(&self, x: Tensor<3>, mask: Tensor<4, Bool>, window: &Window, eps: f64) -> Tensor<3> {
        let y = self.attn.forward_window(norm(&self.ln_1, x.clone(), eps), mask, window);
        self.mlp_residual(window.take(x) + y, eps)
    }

    fn mlp_residual(&self, x: Tensor<3>, eps: f64) -> Tensor<3> {
        x.clone() + self.mlp.forward(norm(&self.ln_2, x, eps))
    }
}

/// The transformer body (`GPT2Model`): embeddings, blocks and the final norm.
#[derive(Module, Debug)]
pub struct Gpt2 {
    /// Token embedding, also the LM head's weight: `[V, d]`.
    pub wte: Param<Tensor<2>>,
    /// Learned position embedding: `[n_positions, d]`.
    pub wpe: Param<Tensor<2>>,
    pub h: Vec<Block>,
    pub ln_f: LayerNorm,
    #[module(skip)]
    pub config: Gpt2Config,
}

impl Gpt2 {
    /// Builds the body from a source of named tensors: a Hugging Face file
    /// when importing, a seeded initializer for a fresh model. Names are
    /// GPT-2's, without the `transformer.` prefix.
    pub fn build(config: &Gpt2Config, src: &mut dyn WeightSource, device: &Device) -> Result<Self, ImportError> {
        let (d, v, layers) = (config.n_embd, config.vocab_size, config.n_layer);
        // GPT-2 scales the residual projections by 1/sqrt(2·n_layer) so the
        // residual stream's variance does not grow with depth.
        let proj_std = 0.02 / ((2 * layers) as f64).sqrt();
        let wte = src.tensor2("wte.weight", [v, d], Init::Normal(0.02), device)?;
        let wpe = src.tensor2("wpe.weight", [config.n_positions, d], Init::Normal(0.02), device)?;
        let mut h = Vec::with_capacity(layers);
        for i in 0..layers {
            let p = format!("h.{i}.");
            h.push(Block {
                ln_1: layer_norm(src, &format!("{p}ln_1"), config, device)?,
                attn: Attention {
                    c_attn: dense(src, &format!("{p}attn.c_attn"), [d, 3 * d], 0.02, device)?,
                    c_proj: dense(src, &format!("{p}attn.c_proj"), [d, d], proj_std, device)?,
                    n_head: config.n_head,
                },
                ln_2: layer_norm(src, &format!("{p}ln_2"), config, device)?,
                mlp: Mlp {
                    c_fc: dense(src, &format!("{p}mlp.c_fc"), [d, config.d_mlp()], 0.02, device)?,
                    c_proj: dense(src, &format!("{p}mlp.c_proj"), [config.d_mlp(), d], proj_std, device)?,
                },
            });
        }
        let ln_f = layer_norm(src, "ln_f", config, device)?;
        Ok(Self {
            wte: Param::from_tensor(wte),
            wpe: Param::from_tensor(wpe),
            h,
            ln_f,
            config: config.clone(),
        })
    }

    /// Every parameter under its GPT-2 name, in the order `build` reads them.
    pub fn named_tensors(&self) -> Vec<(String, burn::tensor::TensorData)> {
        let mut out = vec![
            ("wte.weight".to_string(), self.wte.val().into_data()),
            ("wpe.weight".to_string(), self.wpe.val().into_data()),
        ];
        for (i, block) in self.h.iter().enumerate() {
            let p = format!("h.{i}.");
            push_layer_norm(&mut out, &format!("{p}ln_1"), &block.ln_1);
            push_dense(&mut out, &format!("{p}attn.c_attn"), &block.attn.c_attn);
            push_dense(&mut out, &format!("{p}attn.c_proj"), &block.attn.c_proj);
            push_layer_norm(&mut out, &format!("{p}ln_2"), &block.ln_2);
            push_dense(&mut out, &format!("{p}mlp.c_fc"), &block.mlp.c_fc);
            push_dense(&mut out, &format!("{p}mlp.c_proj"), &block.mlp.c_proj);
        }
        push_layer_norm(&mut out, "ln_f", &self.ln_f);
        out
    }

    /// Runs the body over `q` new positions.
    ///
    /// `tokens`, `positions`: `[b, q]`; `mask`: `[b, 1, q, k]`, true where
    /// query i may not see key j (see `batch::attention_mask`). With a cache,
    /// `k` counts the cached positions too and the new keys are appended.
    /// Returns the final hidden states `[b, q, d]`.
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let mut x = self.embed(tokens, positions);
        for (i, block) in self.h.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| c.layer(i));
            x = block.forward(x, mask.clone(), layer_cache, self.config.layer_norm_epsilon);
        }
        norm(&self.ln_f, x, self.config.layer_norm_epsilon)
    }

    /// `forward` without a cache, returning the final hidden states at
    /// `window`'s columns only (`[b, len, d]`). The last block computes
    /// its attention output, projection and MLP only there (see `window`).
    pub fn forward_window(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
        window: &Window,
    ) -> Tensor<3> {
        let eps = self.config.layer_norm_epsilon;
        let mut x = self.embed(tokens, positions);
        let x = match self.h.split_last() {
            Some((last, body)) => {
                for block in body {
                    x = block.forward(x, mask.clone(), None, eps);
                }
                last.forward_window(x, mask, window, eps)
            }
            None => window.take(x),
        };
        norm(&self.ln_f, x, eps)
    }

    /// Token plus position embeddings: `[b, q]` → `[b, q, d]`.
    fn embed(&self, tokens: Tensor<2, Int>, positions: Tensor<2, Int>) -> Tensor<3> {
        embedding(self.wte.val(), tokens) + embedding(self.wpe.val(), positions)
    }

    /// Next-token logits through the tied embedding: `[b, q, d]` → `[b, q, V]`.
    pub fn lm_logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, q, d] = hidden.dims();
        let wte = self.wte.val();
        let vocab = wte.dims()[0];
        linear_transposed(hidden.reshape([b * q, d]), wte).reshape([b, q, vocab])
    }
}

fn layer_norm(
    src: &mut dyn WeightSource,
    name: &str,
    config: &Gpt2Config,
    device: &Device,
) -> Result<LayerNorm, ImportError> {
    let d = config.n_embd;
    let mut ln = LayerNormConfig::new(d)
        .with_epsilon(config.layer_norm_epsilon)
        .init(device);
    ln.gamma = Param::from_tensor(src.tensor1(&format!("{name}.weight"), [d], Init::Ones, device)?);
    ln.beta = Some(Param::from_tensor(src.tensor1(
        &format!("{name}.bias"),
        [d],
        Init::Zeros,
        device,
    )?));
    Ok(ln)
}

fn dense(
    src: &mut dyn WeightSource,
    name: &str,
    shape: [usize; 2],
    std: f64,
    device: &Device,
) -> Result<Linear, ImportError> {
    let weight = src.tensor2(&format!("{name}.weight"), shape, Init::Normal(std), device)?;
    let bias = src.tensor1(&format!("{name}.bias"), [shape[1]], Init::Zeros, device)?;
    Ok(Linear {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
    })
}

fn push_layer_norm(out: &mut Vec<(String, burn::tensor::TensorData)>, name: &str, ln: &LayerNorm) {
    out.push((format!("{name}.weight"), ln.gamma.val().into_data()));
    let beta = ln.beta.as_ref().expect("GPT-2 LayerNorms have a bias");
    out.push((format!("{name}.bias"), beta.val().into_data()));
}

fn push_dense(out: &mut Vec<(String, burn::tensor::TensorData)>, name: &str, layer: &Linear) {
    out.push((format!("{name}.weight"), layer.weight.val().into_data()));
    let bias = layer.bias.as_ref().expect("GPT-2 projections have a bias");
    out.push((format!("{name}.bias"), bias.val().into_data()));
}
