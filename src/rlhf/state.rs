//! What a checkpoint holds beyond the weights so training continues
//! exactly where it stopped: a random generator's position, and the
//! identity of each parameter, which the optimizer's saved moments are
//! keyed by (a model read back from its files gets new identities, so
//! the saved ones are put back before the optimizer state is loaded).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A ChaCha8 generator's seed, stream and position in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    /// As a string: JSON numbers cannot hold a u128.
    pub word_pos: String,
}

impl RngState {
    pub fn of(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    pub fn restore(&self) -> anyhow::Result<ChaCha8Rng> {
        use rand::SeedableRng;
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(
            self.word_pos
                .parse()
                .map_err(|e| anyhow::anyhow!("rng word_pos: {e}"))?,
        );
        Ok(rng)
    }
}

/// The optimizer's file in an SFT or reward-model checkpoint.
pub const OPTIMIZER: &str = "optimizer.bpk";

/// An SFT or reward-model trainer's place: optimizer steps taken (the
/// data order is replayed to them), and its parameters' identities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    pub step: usize,
    pub ids: Vec<u64>,
    /// SFT: response tokens trained on.
    pub tokens_seen: usize,
}

struct Ids(Vec<u64>);

impl ModuleVisitor for Ids {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id.val());
    }
}

/// The identities of a module's float parameters, in visiting order.
pub fn param_ids<M: Module>(module: &M) -> Vec<u64> {
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

struct Assign<'a> {
    ids: std::slice::Iter<'a, u64>,
    missing: bool,
}

impl ModuleMapper for Assign<'_> {
    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.ids.next() {
            Some(&id) => param.id = ParamId::from(id),
            None => self.missing = true,
        }
        param
    }
}

/// The module with its float parameters given `ids`, in visiting order.
pub fn with_param_ids<M: Module>(module: M, ids: &[u64]) -> anyhow::Result<M> {
    let mut assign = Assign {
        ids: ids.iter(),
        missing: false,
    };
    let module = module.map(&mut assign);
    anyhow::ensure!(
        !assign.missing && assign.ids.next().is_none(),
        "the saved parameter list ({} entries) does not fit the model",
        ids.len()
    );
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn a_generator_continues_where_it_was_saved() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..37 {
            rng.random::<u32>();
        }
        let state = RngState::of(&rng);
        let json = serde_json::to_string(&state).unwrap();
        let mut back = serde_json::from_str::<RngState>(&json).unwrap().restore().unwrap();
        let ahead: Vec<u64> = (0..5).map(|_| rng.random()).collect();
        let again: Vec<u64> = (0..5).map(|_| back.random()).collect();
        assert_eq!(ahead, again);
    }
}
