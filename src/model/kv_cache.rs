//! The key/value cache for incremental decoding: each layer keeps the keys
//! and values of every position already seen, so a decoding step computes
//! attention for one new position instead of re-running the whole prefix.

use burn::tensor::{Bool, Tensor};

use crate::kernels::attention::Heads;
use crate::kernels::cached_attention::cached_attention;

/// Positions a layer's cache first makes room for.
const FIRST_CAPACITY: usize = 64;

/// One layer's cached keys and values, `[b, capacity, 2g·hd]` (a position's
/// g key heads, then its g value heads), filled up to `len`. The room grows
/// by doubling, so a step writes its own position in place (a tensor held
/// once is written where it is) instead of copying the whole cache.
#[derive(Debug, Default)]
pub struct LayerCache {
    kv: Option<Tensor<3>>,
    len: usize,
}

impl LayerCache {
    /// Writes the new positions' keys and values (`[b, q, 2g·hd]`) after
    /// the cached ones, and returns the whole buffer.
    fn append(&mut self, new: Tensor<3>) -> Tensor<3> {
        let [b, q, width] = new.dims();
        let end = self.len + q;
        let kv = match self.kv.take() {
            Some(kv) if kv.dims()[1] >= end => kv,
            old => {
                let room = end.next_power_of_two().max(FIRST_CAPACITY);
                let grown = Tensor::zeros([b, room, width], &new.device());
                match old {
                    Some(old) => grown.slice_assign([0..b, 0..self.len, 0..width], old.narrow(1, 0, self.len)),
                    None => grown,
                }
            }
        };
        let kv = kv.slice_assign([0..b, self.len..end, 0..width], new);
        self.len = end;
        self.kv = Some(kv.clone());
        kv
    }

    /// Attention of the new positions' packed projection `qkv` (`[b, q,
    /// (h + 2g)·hd]`: query heads, then key heads, then value heads) over
    /// the cached keys and values and its own, which are appended to the
    /// cache; `mask`: `[b, 1, q, k]`, true where a key is hidden. Query
    /// heads concatenated: `[b, q, h·hd]`. Each key/value head serves h/g
    /// consecutive query heads.
    pub fn attend(&mut self, qkv: Tensor<3>, mask: Tensor<4, Bool>, heads: Heads) -> Tensor<3> {
        let w = qkv.dims()[2];
        let hd = w / (heads.query + 2 * heads.kv);
        let kv = self.append(qkv.clone().narrow(2, heads.query * hd, 2 * heads.kv * hd));
        cached_attention(qkv, kv, self.len, mask, heads)
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
        self.layers.first().map_or(0, |l| l.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
