//! The key/value cache for incremental decoding: each layer keeps the keys
//! and values of every position already seen, so a decoding step computes
//! attention for one new position instead of re-running the whole prefix.

use burn::tensor::Tensor;

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
