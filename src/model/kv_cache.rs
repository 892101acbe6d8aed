//! The key/value cache for incremental decoding: each layer keeps the keys
//! and values of every position already seen, so a decoding step computes
//! attention for one new position instead of re-running the whole prefix.

use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

use crate::kernels::attention::{Heads, masked_attention};

/// One layer's cached keys and values, `[b, h, k, hd]` each.
#[derive(Debug, Default)]
pub struct LayerCache {
    kv: Option<(Tensor<4>, Tensor<4>)>,
}

impl LayerCache {
    /// Appends the new positions' keys and values and returns all of them.
    pub fn append(&mut self, key: Tensor<4>, value: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let (key, value) = match self.kv.take() {
            Some((k, v)) => (Tensor::cat(vec![k, key], 2), Tensor::cat(vec![v, value], 2)),
            None => (key, value),
        };
        self.kv = Some((key.clone(), value.clone()));
        (key, value)
    }

    /// Attention of the new positions' packed projection `qkv` (`[b, q,
    /// (h + 2g)·hd]`: query heads, then key heads, then value heads) over
    /// the cached keys and values and its own, which are appended to the
    /// cache; `mask`: `[b, 1, q, k]`, true where a key is hidden. Query
    /// heads concatenated: `[b, q, h·hd]`. The cache keeps the g key/value
    /// heads; each serves h/g consecutive query heads.
    pub fn attend(&mut self, qkv: Tensor<3>, mask: Tensor<4, Bool>, heads: Heads) -> Tensor<3> {
        let [b, q, w] = qkv.dims();
        let Heads { query: h, kv: g } = heads;
        let hd = w / (h + 2 * g);
        let split = |first: usize, n: usize| {
            qkv.clone()
                .narrow(2, first * hd, n * hd)
                .reshape([b, q, n, hd])
                .swap_dims(1, 2) // [b, n, q, hd]
        };
        let (key, value) = self.append(split(h, g), split(h + g, g));
        let k = key.dims()[2];
        let share = |t: Tensor<4>| match g == h {
            true => t,
            false => t
                .reshape([b, g, 1, k, hd])
                .expand([b, g, h / g, k, hd])
                .reshape([b, h, k, hd]),
        };
        // Backends' attention kernels differ in how they broadcast a mask;
        // a full-size one works on all of them. Scale 1/√hd is the default;
        // the mask already encodes causality and padding, so the kernel's
        // own causal flag stays off.
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: false,
        };
        let mask = mask.expand([b, h, q, k]);
        let y = masked_attention(split(0, h), share(key), share(value), mask, options);
        y.swap_dims(1, 2).reshape([b, q, h * hd])
    }
}

/// The cache of a whole model.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
}

impl KvCache {
    pub fn new(n_layer: usize) -> Self {
        Self {
            layers: (0..n_layer).map(|_| LayerCache::default()).collect(),
        }
    }

    pub fn layer(&mut self, i: usize) -> &mut LayerCache {
        &mut self.layers[i]
    }

    /// Positions cached so far (0 before the first forward).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.kv.as_ref())
            .map_or(0, |(k, _)| k.dims()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
