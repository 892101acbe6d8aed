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
        assert_eq!(mask.dims()[3], self.len, "the mask covers every cached position");
        cached_attention(qkv, kv, mask, heads)
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

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Int, TensorData};

    use super::*;
    use crate::model::batch::{PaddedBatch, attention_mask};
    use crate::testutil::{assert_close, megabyte_llama};

    /// A Llama model whose MLP weights and tied LM head are a megabyte
    /// each, so that a decoding step's few rows take `gemm_rows` and its
    /// attention `cached_attention`, while the whole batch at once (40
    /// rows) takes the blocked kernels and self-attention: decoding
    /// position by position after a 4-token prompt gives the whole
    /// sequence's logits, the cache growing past its first room on the way.
    #[test]
    fn decoding_with_the_cache_gives_the_whole_sequences_logits() {
        let (config, model) = megabyte_llama(3);
        let device = Device::flex();
        let (b, t, prompt) = (5, 70, 4);
        let rows: Vec<Vec<u32>> = (0..b)
            .map(|r| (0..t).map(|i| ((r * 977 + i * 131) % 4096) as u32).collect())
            .collect();
        let logits = |hidden: Tensor<3>| model.lm_logits(hidden).into_data().try_to_vec::<f32>().unwrap();
        let whole = PaddedBatch::left_padded(&rows, 0);
        let all = logits(model.forward(
            whole.ids_tensor(&device),
            whole.positions_tensor(&device),
            whole.mask_tensor(&device),
            None,
        ));
        let mut cache = KvCache::new(config.layers);
        let prompts: Vec<Vec<u32>> = rows.iter().map(|r| r[..prompt].to_vec()).collect();
        let first = PaddedBatch::left_padded(&prompts, 0);
        let mut stepped = vec![logits(model.forward(
            first.ids_tensor(&device),
            first.positions_tensor(&device),
            first.mask_tensor(&device),
            Some(&mut cache),
        ))];
        for pos in prompt..t {
            let ids: Vec<i64> = rows.iter().map(|r| r[pos] as i64).collect();
            let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, 1]), &device);
            let positions = Tensor::<2, Int>::from_data(TensorData::new(vec![pos as i64; b], [b, 1]), &device);
            let mask = attention_mask(&vec![true; b * (pos + 1)], b, 1, pos + 1);
            let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, 1, pos + 1]), &device);
            stepped.push(logits(model.forward(tokens, positions, mask, Some(&mut cache))));
        }
        assert_eq!(cache.len(), t);
        let v = config.vocab_size;
        for r in 0..b {
            let row_of = |pos: usize| -> Vec<f32> {
                match pos < prompt {
                    true => stepped[0][(r * prompt + pos) * v..][..v].to_vec(),
                    false => stepped[pos - prompt + 1][r * v..][..v].to_vec(),
                }
            };
            for pos in 0..t {
                assert_close(
                    &format!("row {r} position {pos}"),
                    &row_of(pos),
                    &all[(r * t + pos) * v..][..v],
                    1e-4,
                );
            }
        }
    }
}
