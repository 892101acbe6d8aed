//! Padding a batch of token sequences on the host: left padding for prompts
//! (so every row's next token lands in the same column), position ids that
//! skip the padding, and the attention mask that hides padding and the
//! future; and length groups, which split a batch of sequences of different
//! lengths into runs of similar length so that each pads less. Pure
//! functions over plain vectors, tensors made from them, and
//! `by_length_groups`, which puts a per-group computation's values back in
//! the batch's order.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

/// A left-padded batch: `b` rows of `t` columns, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct PaddedBatch {
    pub rows: usize,
    pub cols: usize,
    pub ids: Vec<i64>,
    /// True for real tokens, false for padding.
    pub valid: Vec<bool>,
    /// Position of each token counting real tokens only (padding gets 0).
    pub positions: Vec<i64>,
}

impl PaddedBatch {
    /// Pads every sequence on the left to the longest one's length.
    pub fn left_padded(seqs: &[Vec<u32>], pad_id: u32) -> Self {
        Self::query_response(seqs, &vec![Vec::new(); seqs.len()], pad_id).0
    }

    /// Pads every sequence on the right: the layout for scoring whole
    /// (prompt, response) texts where each row's last real token differs.
    pub fn right_padded(seqs: &[Vec<u32>], pad_id: u32) -> Self {
        Self::query_response(&vec![Vec::new(); seqs.len()], seqs, pad_id).0
    }

    /// Queries left-padded and responses right-padded, side by side:
    /// `[pad… query | response | pad…]`, so every response starts in column
    /// `query_cols` (the layout PPO scores rollouts in). Returns the batch
    /// and `query_cols`.
    pub fn query_response(queries: &[Vec<u32>], responses: &[Vec<u32>], pad_id: u32) -> (Self, usize) {
        let q = queries.iter().map(Vec::len).max().unwrap_or(0);
        let r = responses.iter().map(Vec::len).max().unwrap_or(0);
        let mut batch = Self {
            rows: queries.len(),
            cols: q + r,
            ids: vec![],
            valid: vec![],
            positions: vec![],
        };
        for (query, response) in queries.iter().zip(responses) {
            let (left, right) = (q - query.len(), r - response.len());
            let real = query.len() + response.len();
            batch.ids.extend(
                std::iter::repeat_n(pad_id as i64, left)
                    .chain(query.iter().chain(response).map(|&t| t as i64))
                    .chain(std::iter::repeat_n(pad_id as i64, right)),
            );
            batch.valid.extend(
                std::iter::repeat_n(false, left)
                    .chain(std::iter::repeat_n(true, real))
                    .chain(std::iter::repeat_n(false, right)),
            );
            batch.positions.extend(
                std::iter::repeat_n(0, left)
                    .chain(0..real as i64)
                    .chain(std::iter::repeat_n(0, right)),
            );
        }
        (batch, q)
    }

    /// Index of each row's last real token (0 for an empty row).
    pub fn last_real(&self) -> Vec<usize> {
        self.valid
            .chunks(self.cols.max(1))
            .map(|row| row.iter().rposition(|&v| v).unwrap_or(0))
            .collect()
    }

    pub fn ids_tensor(&self, device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(TensorData::new(self.ids.clone(), [self.rows, self.cols]), device)
    }

    pub fn positions_tensor(&self, device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(TensorData::new(self.positions.clone(), [self.rows, self.cols]), device)
    }

    /// The mask for running the whole batch at once, `[b, 1, t, t]`.
    pub fn mask_tensor(&self, device: &Device) -> Tensor<4, Bool> {
        let mask = attention_mask(&self.valid, self.rows, self.cols, self.cols);
        Tensor::from_data(TensorData::new(mask, [self.rows, 1, self.cols, self.cols]), device)
    }
}

/// The attention mask for `q` new positions that come after `k - q` cached
/// ones, `[b, 1, q, k]` row-major, true where query i may not see key j.
///
/// `valid` is `[b, k]`: which key positions are real tokens. A query sees
/// the real keys at or before it. A padding query also sees itself, so its
/// softmax row is never empty (an all-hidden row gives NaN on some
/// backends); its output is never read.
pub fn attention_mask(valid: &[bool], b: usize, q: usize, k: usize) -> Vec<bool> {
    assert_eq!(valid.len(), b * k, "valid must be [b, k]");
    let past = k - q;
    let mut mask = Vec::with_capacity(b * q * k);
    for row in 0..b {
        let keys = &valid[row * k..(row + 1) * k];
        for i in 0..q {
            let me = past + i;
            mask.extend((0..k).map(|j| j > me || (!keys[j] && j != me)));
        }
    }
    mask
}

/// The fewest sequences a length group holds: a group's products have
/// at least this many sequences' rows.
const MIN_GROUP: usize = 8;
/// The most groups a batch is split into.
const MAX_GROUPS: usize = 4;

/// Splits a batch of sequences of lengths `lens` into groups of similar
/// length, each to be padded only to its own longest: the indices of each
/// group, shortest group first. Groups are runs of the lengths in sorted
/// order, at most `MAX_GROUPS` of at least `MIN_GROUP` each, chosen to pad
/// the fewest tokens in all (a group of `n` whose longest is `l` costs
/// `n·l`); a further group only where it pads strictly fewer, and one
/// group keeps the batch's own order. The built-in world's responses run
/// from a dozen tokens to eighty, so a batch padded whole was about half
/// padding.
pub fn length_groups(lens: &[usize]) -> Vec<Vec<usize>> {
    let n = lens.len();
    let mut order: Vec<usize> = (0..n).collect();
    if n < 2 * MIN_GROUP {
        return vec![order];
    }
    order.sort_by_key(|&i| lens[i]);
    let cost = |from: usize, to: usize| (to - from) * lens[order[to - 1]];
    // best[g][i]: the fewest padded tokens covering the first i sorted
    // sequences with g + 1 groups, and where its last group starts.
    let mut best = vec![vec![None::<(usize, usize)>; n + 1]; MAX_GROUPS];
    for (i, one) in best[0].iter_mut().enumerate().skip(MIN_GROUP) {
        *one = Some((cost(0, i), 0));
    }
    for g in 1..MAX_GROUPS {
        for i in (g + 1) * MIN_GROUP..=n {
            best[g][i] = (g * MIN_GROUP..=i - MIN_GROUP)
                .filter_map(|j| best[g - 1][j].map(|(c, _)| (c + cost(j, i), j)))
                .min();
        }
    }
    // The fewest padded tokens, and on a tie the fewest groups.
    let (_, last) = (0..MAX_GROUPS)
        .filter_map(|g| best[g][n].map(|(c, _)| (c, g)))
        .min()
        .expect("one group always fits");
    if last == 0 {
        return vec![(0..n).collect()];
    }
    let mut split = Vec::new();
    let mut end = n;
    for g in (0..=last).rev() {
        let start = best[g][end].map_or(0, |(_, j)| j);
        split.push(order[start..end].to_vec());
        end = start;
    }
    split.reverse();
    split
}

/// `per_group` run on each of `length_groups(lens)` (given the indices of
/// its sequences, it returns one value per sequence, in that order): the
/// values of the whole batch, `[n]`, in the batch's own order.
pub fn by_length_groups(lens: &[usize], per_group: impl Fn(&[usize]) -> Tensor<1>) -> Tensor<1> {
    let groups = length_groups(lens);
    if groups.len() == 1 {
        return per_group(&groups[0]);
    }
    let parts: Vec<Tensor<1>> = groups.iter().map(|group| per_group(group)).collect();
    let device = parts[0].device();
    // Row j of the groups' values is sequence order[j]'s.
    let order = groups.concat();
    let mut place = vec![0i64; order.len()];
    for (j, &i) in order.iter().enumerate() {
        place[i] = j as i64;
    }
    let place = Tensor::<1, Int>::from_data(TensorData::new(place, [order.len()]), &device);
    Tensor::cat(parts, 0).select(0, place)
}

/// The items of `xs` at `indices`, in that order.
pub fn pick<T: Clone>(xs: &[T], indices: &[usize]) -> Vec<T> {
    indices.iter().map(|&i| xs[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_padding_puts_real_tokens_last_and_counts_positions_from_them() {
        let b = PaddedBatch::left_padded(&[vec![5, 6, 7], vec![9]], 0);
        assert_eq!((b.rows, b.cols), (2, 3));
        assert_eq!(b.ids, vec![5, 6, 7, 0, 0, 9]);
        assert_eq!(b.valid, vec![true, true, true, false, false, true]);
        assert_eq!(b.positions, vec![0, 1, 2, 0, 0, 0]);
        assert_eq!(b.last_real(), vec![2, 2]);
    }

    #[test]
    fn right_padding_keeps_each_rows_last_real_token() {
        let b = PaddedBatch::right_padded(&[vec![5, 6, 7], vec![9]], 0);
        assert_eq!(b.ids, vec![5, 6, 7, 9, 0, 0]);
        assert_eq!(b.positions, vec![0, 1, 2, 0, 0, 0]);
        assert_eq!(b.last_real(), vec![2, 0]);
    }

    #[test]
    fn query_response_aligns_every_response_at_one_column() {
        let (b, q) = PaddedBatch::query_response(&[vec![1, 2], vec![3]], &[vec![7], vec![8, 9]], 0);
        assert_eq!((b.rows, b.cols, q), (2, 4, 2));
        assert_eq!(b.ids, vec![1, 2, 7, 0, 0, 3, 8, 9]);
        assert_eq!(b.valid, vec![true, true, true, false, false, true, true, true]);
        assert_eq!(b.positions, vec![0, 1, 2, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn mask_hides_the_future_and_padding_but_never_a_whole_row() {
        // One row: [pad, a, b]. 1 = hidden.
        let m: Vec<u8> = attention_mask(&[false, true, true], 1, 3, 3)
            .into_iter()
            .map(u8::from)
            .collect();
        #[rustfmt::skip]
        let want = vec![
            0, 1, 1, // the pad query sees only itself
            1, 0, 1, // a sees a
            1, 0, 0, // b sees a, b
        ];
        assert_eq!(m, want);
    }

    #[test]
    fn mask_for_one_new_position_after_a_cache() {
        // Keys: [pad, a, b, c], c is the new query: sees a, b, c.
        let m = attention_mask(&[false, true, true, true], 1, 1, 4);
        assert_eq!(m, vec![true, false, false, false]);
    }

    /// Lengths 10 ×8 and 50 ×8: padded whole, 16·50 = 800 tokens; as two
    /// groups, 8·10 + 8·50 = 480, so two. Equal lengths stay one group, as
    /// does a batch too small for two groups of eight.
    #[test]
    fn length_groups_pad_fewest_tokens() {
        let mut lens = vec![50; 8];
        lens.extend([10; 8]);
        let groups = length_groups(&lens);
        assert_eq!(groups, vec![(8..16).collect::<Vec<_>>(), (0..8).collect()]);
        assert_eq!(length_groups(&[30; 32]), vec![(0..32).collect::<Vec<_>>()]);
        assert_eq!(length_groups(&[1, 90, 2, 80]), vec![vec![0, 1, 2, 3]]);
        assert_eq!(length_groups(&[]), vec![Vec::<usize>::new()]);
    }

    /// 32 lengths 1..=32: one group pads 32·32 = 1024; four of eight pad
    /// 8·(8 + 16 + 24 + 32) = 640, the fewest of any split into runs of at
    /// least eight.
    #[test]
    fn length_groups_take_up_to_four() {
        let lens: Vec<usize> = (1..=32).rev().collect();
        let groups = length_groups(&lens);
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![8, 8, 8, 8]);
        let padded: usize = groups
            .iter()
            .map(|g| g.len() * g.iter().map(|&i| lens[i]).max().unwrap())
            .sum();
        assert_eq!(padded, 640);
        let mut all: Vec<usize> = groups.concat();
        all.sort();
        assert_eq!(all, (0..32).collect::<Vec<_>>());
    }
}
