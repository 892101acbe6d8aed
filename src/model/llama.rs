//! The Llama decoder (LlamaForCausalLM, which covers SmolLM2 and
//! TinyLlama, and Qwen2ForCausalLM, which adds query/key/value biases) in
//! one readable file: token embeddings, pre-RMSNorm blocks of rotary
//! grouped-query attention and a SwiGLU MLP, a final RMSNorm, and the LM
//! head (its own weight, or tied to the embedding).
//!
//! Shapes use `b` = batch, `q` = positions, `d` = hidden size, `h` query
//! heads, `g` key/value heads (each serves h/g query heads), `hd` = head
//! dimension, `f` = the MLP's width, `V` = vocabulary. Weights keep
//! transformers' `[out, in]` layout, so import and export copy them as
//! they are. Every operation with a fused CPU version (`kernels`) runs
//! through it: the `[out, in]` products, RMSNorm, the rotary embeddings,
//! grouped-query attention and SwiGLU.

use burn::module::{Module, Param};
use burn::tensor::module::embedding;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::kv_cache::{KvCache, LayerCache};
use super::llama_config::LlamaConfig;
use super::weights::{Init, WeightSource};
use super::window::Window;
use crate::kernels::attention::{Heads, self_attention};
use crate::kernels::linear::linear_transposed;
use crate::kernels::rms_norm::rms_norm;
use crate::kernels::rotary::rotary;
use crate::kernels::swiglu::swiglu;
use crate::model::hf::ImportError;

/// `x · weightᵀ + bias` over every position: `[b, q, in]` → `[b, q, out]`,
/// as one product over the rows (the tied LM head's operation, fused on
/// the CPU, for transformers' `[out, in]` weights).
fn project(x: Tensor<3>, weight: &Param<Tensor<2>>, bias: Option<&Param<Tensor<1>>>) -> Tensor<3> {
    let y = project_with(x, weight.val());
    match bias {
        Some(bias) => y + bias.val().reshape([1, 1, -1]),
        None => y,
    }
}

/// `x · weightᵀ` over every position.
fn project_with(x: Tensor<3>, weight: Tensor<2>) -> Tensor<3> {
    let [b, q, d] = x.dims();
    let out = weight.dims()[0];
    linear_transposed(x.reshape([b * q, d]), weight).reshape([b, q, out])
}

fn norm(x: Tensor<3>, weight: &Param<Tensor<1>>, eps: f64) -> Tensor<3> {
    rms_norm(x, weight.val(), eps)
}

/// The rotary tables at `positions` (`[b, q]`): the cosines and sines of
/// each position's angles, `[b, q, hd/2]`.
pub fn rotary_tables(config: &LlamaConfig, positions: Tensor<2, Int>) -> (Tensor<3>, Tensor<3>) {
    let device = positions.device();
    let [b, q] = positions.dims();
    let inv_freq: Vec<f32> = config.inv_freq().into_iter().map(|f| f as f32).collect();
    let half = inv_freq.len();
    let inv_freq = Tensor::<2>::from_data(TensorData::new(inv_freq, [1, half]), &device);
    let angles = positions
        .float()
        .reshape([b * q, 1])
        .matmul(inv_freq)
        .reshape([b, q, half]);
    (angles.clone().cos(), angles.sin())
}

#[derive(Module, Debug)]
pub struct LlamaAttention {
    pub q_proj: Param<Tensor<2>>,
    pub q_bias: Option<Param<Tensor<1>>>,
    pub k_proj: Param<Tensor<2>>,
    pub k_bias: Option<Param<Tensor<1>>>,
    pub v_proj: Param<Tensor<2>>,
    pub v_bias: Option<Param<Tensor<1>>>,
    pub o_proj: Param<Tensor<2>>,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl LlamaAttention {
    fn heads(&self) -> Heads {
        Heads {
            query: self.heads,
            kv: self.kv_heads,
        }
    }

    /// The queries, keys and values of `x` (`[b, q, d]`) side by side,
    /// `[b, q, (h + 2g)·hd]`, the queries and keys turned by the rotary
    /// tables: the packed layout attention reads.
    fn packed(&self, x: Tensor<3>, (cos, sin): (&Tensor<3>, &Tensor<3>)) -> Tensor<3> {
        let [b, q, d] = x.dims();
        let weights = [&self.q_proj, &self.k_proj, &self.v_proj];
        // One product against the three weights stacked copies the weights
        // (`d` columns of them); three products joined copy their outputs
        // (`b·q` rows). Take the smaller: training's many rows stack the
        // weights, decoding's few join the outputs.
        let qkv = if b * q >= d {
            let stacked = Tensor::cat(weights.iter().map(|w| w.val()).collect(), 0);
            let biases: Option<Vec<Tensor<1>>> = [&self.q_bias, &self.k_bias, &self.v_bias]
                .iter()
                .map(|b| b.as_ref().map(Param::val))
                .collect();
            let y = project_with(x, stacked);
            match biases {
                Some(biases) => y + Tensor::cat(biases, 0).reshape([1, 1, -1]),
                None => y,
            }
        } else {
            let parts = [
                project(x.clone(), &self.q_proj, self.q_bias.as_ref()),
                project(x.clone(), &self.k_proj, self.k_bias.as_ref()),
                project(x, &self.v_proj, self.v_bias.as_ref()),
            ];
            Tensor::cat(parts.to_vec(), 2)
        };
        rotary(qkv, cos.clone(), sin.clone(), self.heads + self.kv_heads)
    }

    /// `x`: `[b, q, d]`; `mask`: `[b, 1, q, k]`, true where a key is
    /// hidden. With a cache, `k` counts the cached positions too, and the
    /// new (rotated) keys and values are appended to it. With a window,
    /// only its columns are queries: `[b, len, d]`.
    fn forward(
        &self,
        x: Tensor<3>,
        mask: Tensor<4, Bool>,
        tables: (&Tensor<3>, &Tensor<3>),
        cache: Option<&mut LayerCache>,
        window: Option<&Window>,
    ) -> Tensor<3> {
        let qkv = self.packed(x, tables);
        let y = match cache {
            Some(cache) => cache.attend(qkv, mask, self.heads()),
            None => self_attention(qkv, mask, self.heads(), window),
        };
        project(y, &self.o_proj, None)
    }
}

#[derive(Module, Debug)]
pub struct LlamaMlp {
    pub gate_proj: Param<Tensor<2>>,
    pub up_proj: Param<Tensor<2>>,
    pub down_proj: Param<Tensor<2>>,
}

impl LlamaMlp {
    /// SwiGLU: `down(silu(gate(x)) · up(x))`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gated = swiglu(
            project(x.clone(), &self.gate_proj, None),
            project(x, &self.up_proj, None),
        );
        project(gated, &self.down_proj, None)
    }
}

impl LlamaBlock {
    /// The block at every column, or at `window`'s only (`[b, len, d]`).
    fn forward(
        &self,
        x: Tensor<3>,
        mask: Tensor<4, Bool>,
        tables: (&Tensor<3>, &Tensor<3>),
        cache: Option<&mut LayerCache>,
        window: Option<&Window>,
        eps: f64,
    ) -> Tensor<3> {
        let attended = self
            .self_attn
            .forward(norm(x.clone(), &self.input_layernorm, eps), mask, tables, cache, window);
        let x = window.map_or(x.clone(), |w| w.take(x)) + attended;
        x.clone() + self.mlp.forward(norm(x, &self.post_attention_layernorm, eps))
    }
}

#[derive(Module, Debug)]
pub struct LlamaBlock {
    pub input_layernorm: Param<Tensor<1>>,
    pub self_attn: LlamaAttention,
    pub post_attention_layernorm: Param<Tensor<1>>,
    pub mlp: LlamaMlp,
}

#[derive(Module, Debug)]
pub struct Llama {
    pub embed_tokens: Param<Tensor<2>>,
    pub layers: Vec<LlamaBlock>,
    pub norm: Param<Tensor<1>>,
    /// `None` when tied to the embedding.
    pub lm_head: Option<Param<Tensor<2>>>,
    #[module(skip)]
    pub config: LlamaConfig,
}

fn param2(
    src: &mut dyn WeightSource,
    name: &str,
    shape: [usize; 2],
    device: &Device,
) -> Result<Param<Tensor<2>>, ImportError> {
    Ok(Param::from_tensor(src.tensor2(
        name,
        shape,
        Init::Normal(0.02),
        device,
    )?))
}

fn param1(
    src: &mut dyn WeightSource,
    name: &str,
    len: usize,
    init: Init,
    device: &Device,
) -> Result<Param<Tensor<1>>, ImportError> {
    Ok(Param::from_tensor(src.tensor1(name, [len], init, device)?))
}

impl Llama {
    /// Builds the model from tensors under transformers' names (`model.…`
    /// and, for a language model with its own head, `lm_head.weight`).
    /// `lm_head` false builds the body alone (under a scalar head).
    pub fn build(
        config: &LlamaConfig,
        src: &mut dyn WeightSource,
        device: &Device,
        lm_head: bool,
    ) -> Result<Self, ImportError> {
        let (d, f, v) = (config.hidden_size, config.intermediate_size, config.vocab_size);
        let (h, g, hd) = (config.heads, config.kv_heads, config.head_dim);
        let embed_tokens = param2(src, "model.embed_tokens.weight", [v, d], device)?;
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let p = format!("model.layers.{i}.");
            let bias = |src: &mut dyn WeightSource, name: &str, len| -> Result<_, ImportError> {
                match config.qkv_bias {
                    true => Ok(Some(param1(
                        src,
                        &format!("{p}self_attn.{name}.bias"),
                        len,
                        Init::Zeros,
                        device,
                    )?)),
                    false => Ok(None),
                }
            };
            layers.push(LlamaBlock {
                input_layernorm: param1(src, &format!("{p}input_layernorm.weight"), d, Init::Ones, device)?,
                self_attn: LlamaAttention {
                    q_proj: param2(src, &format!("{p}self_attn.q_proj.weight"), [h * hd, d], device)?,
                    q_bias: bias(src, "q_proj", h * hd)?,
                    k_proj: param2(src, &format!("{p}self_attn.k_proj.weight"), [g * hd, d], device)?,
                    k_bias: bias(src, "k_proj", g * hd)?,
                    v_proj: param2(src, &format!("{p}self_attn.v_proj.weight"), [g * hd, d], device)?,
                    v_bias: bias(src, "v_proj", g * hd)?,
                    o_proj: param2(src, &format!("{p}self_attn.o_proj.weight"), [d, h * hd], device)?,
                    heads: h,
                    kv_heads: g,
                    head_dim: hd,
                },
                post_attention_layernorm: param1(
                    src,
                    &format!("{p}post_attention_layernorm.weight"),
                    d,
                    Init::Ones,
                    device,
                )?,
                mlp: LlamaMlp {
                    gate_proj: param2(src, &format!("{p}mlp.gate_proj.weight"), [f, d], device)?,
                    up_proj: param2(src, &format!("{p}mlp.up_proj.weight"), [f, d], device)?,
                    down_proj: param2(src, &format!("{p}mlp.down_proj.weight"), [d, f], device)?,
                },
            });
        }
        let norm = param1(src, "model.norm.weight", d, Init::Ones, device)?;
        let lm_head = match lm_head && !config.tie_word_embeddings {
            true => Some(param2(src, "lm_head.weight", [v, d], device)?),
            false => None,
        };
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            config: config.clone(),
        })
    }

    /// The final hidden states `[b, q, d]` of `q` new positions;
    /// `tokens`, `positions`: `[b, q]`; `mask`: `[b, 1, q, k]`, true where
    /// query i may not see key j. With a cache, `k` counts the cached
    /// positions too and the new keys and values are appended.
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        self.run(tokens, positions, mask, cache, None)
    }

    /// `forward` without a cache, at `window`'s columns only: `[b, len, d]`.
    /// Only those columns run through the last block's attention output
    /// and MLP.
    pub fn forward_window(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
        window: &Window,
    ) -> Tensor<3> {
        self.run(tokens, positions, mask, None, Some(window))
    }

    /// The blocks and the final norm, the last block at `window`'s
    /// columns when there is one.
    fn run(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
        mut cache: Option<&mut KvCache>,
        window: Option<&Window>,
    ) -> Tensor<3> {
        let eps = self.config.rms_norm_eps;
        let (cos, sin) = rotary_tables(&self.config, positions);
        let mut x = embedding(self.embed_tokens.val(), tokens);
        let last = self.layers.len().saturating_sub(1);
        for (i, block) in self.layers.iter().enumerate() {
            let cache = cache.as_deref_mut().map(|c| c.layer(i));
            let window = window.filter(|_| i == last);
            x = block.forward(x, mask.clone(), (&cos, &sin), cache, window, eps);
        }
        if let (true, Some(window)) = (self.layers.is_empty(), window) {
            x = window.take(x);
        }
        norm(x, &self.norm, eps)
    }

    /// Every parameter under its transformers name, in the order `build`
    /// reads them.
    pub fn named_tensors(&self) -> Vec<(String, TensorData)> {
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            self.embed_tokens.val().into_data(),
        )];
        for (i, block) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}.");
            let a = &block.self_attn;
            out.push((
                format!("{p}input_layernorm.weight"),
                block.input_layernorm.val().into_data(),
            ));
            for (name, weight, bias) in [
                ("q_proj", &a.q_proj, &a.q_bias),
                ("k_proj", &a.k_proj, &a.k_bias),
                ("v_proj", &a.v_proj, &a.v_bias),
            ] {
                out.push((format!("{p}self_attn.{name}.weight"), weight.val().into_data()));
                if let Some(bias) = bias {
                    out.push((format!("{p}self_attn.{name}.bias"), bias.val().into_data()));
                }
            }
            out.push((format!("{p}self_attn.o_proj.weight"), a.o_proj.val().into_data()));
            out.push((
                format!("{p}post_attention_layernorm.weight"),
                block.post_attention_layernorm.val().into_data(),
            ));
            for (name, weight) in [
                ("gate_proj", &block.mlp.gate_proj),
                ("up_proj", &block.mlp.up_proj),
                ("down_proj", &block.mlp.down_proj),
            ] {
                out.push((format!("{p}mlp.{name}.weight"), weight.val().into_data()));
            }
        }
        out.push(("model.norm.weight".to_string(), self.norm.val().into_data()));
        if let Some(head) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), head.val().into_data()));
        }
        out
    }

    /// Next-token logits: `[b, q, d]` → `[b, q, V]`.
    pub fn lm_logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        project(hidden, self.lm_head.as_ref().unwrap_or(&self.embed_tokens), None)
    }
}
