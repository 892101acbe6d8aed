//! Drawing batches from a fixed training set in shuffled passes: every pass
//! visits each item once, in a new seeded order. Shared by pretraining,
//! SFT and the reward model.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub struct Epochs<T> {
    items: Vec<T>,
    cursor: usize,
    rng: ChaCha8Rng,
}

impl<T> Epochs<T> {
    pub fn new(items: Vec<T>, seed: u64) -> Self {
        Self {
            items,
            cursor: usize::MAX,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The next `n` items (all of them when there are fewer). When the pass
    /// has fewer than `n` left, they are skipped and a new pass starts, so a
    /// batch never mixes two orders.
    pub fn next(&mut self, n: usize) -> &[T] {
        let n = n.min(self.items.len());
        if self.cursor.saturating_add(n) > self.items.len() {
            self.items.shuffle(&mut self.rng);
            self.cursor = 0;
        }
        let batch = &self.items[self.cursor..self.cursor + n];
        self.cursor += n;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pass_visits_every_item_once_and_passes_differ() {
        let mut epochs = Epochs::new((0..6).collect::<Vec<u32>>(), 1);
        let mut pass = || {
            let mut items = epochs.next(3).to_vec();
            items.extend_from_slice(epochs.next(3));
            items
        };
        let mut first = pass();
        let second = pass();
        assert_ne!(first, second);
        first.sort();
        assert_eq!(first, (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn a_batch_larger_than_the_set_is_the_whole_set() {
        let mut epochs = Epochs::new(vec![1, 2], 0);
        assert_eq!(epochs.next(5).len(), 2);
        assert_eq!(epochs.next(5).len(), 2);
    }
}
