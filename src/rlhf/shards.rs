//! Data parallelism over the CPU's cores: a batch's rows are split into one
//! shard per thread, each shard runs forward and backward on its own
//! thread, and the shards' gradients are summed before the optimizer step.
//!
//! Splitting each operation across threads (what the CPU backend does on
//! its own) leaves the small ones, the elementwise passes, the attention
//! products and the optimizer, on one core; a shard per core keeps every
//! core busy through all of them.
//!
//! With a shard on every thread, each shard's matrix products stay on its
//! thread (`kernels::own_thread`).
//!
//! Each shard runs on a replica of the model whose parameters are fresh
//! autodiff leaves with the same parameter ids. burn's autodiff keeps
//! graphs that share a node under one lock held for a whole backward pass,
//! so shards sharing the model's own leaves would take turns.

use std::ops::Range;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::kernels::own_thread;

pub use crate::device::shards as count;

/// `rows` split into `n` contiguous ranges whose lengths differ by at most
/// one, the longer ones first.
pub fn ranges(rows: usize, n: usize) -> Vec<Range<usize>> {
    let n = n.max(1);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let len = rows / n + usize::from(i < rows % n);
            start += len;
            start - len..start
        })
        .collect()
}

/// Whether `n` shards put one on every thread of the pool, so that each
/// shard's matrix products stay on its own thread (`own_thread`).
pub fn fills_pool(n: usize) -> bool {
    n >= rayon::current_num_threads()
}

/// The gradient of Σᵢ `loss(model, i)` for i in 0..n, each term computed
/// and differentiated on its own thread, with the value each call returns
/// beside its loss (in order). With one shard the model itself is used.
///
/// Each term must be its shard's share of the batch's loss (a mean over
/// the batch is each shard's sum divided by the whole batch's count), so
/// the sum is the gradient of the batch's loss.
pub fn gradients<M, T, F>(model: &M, n: usize, loss: F) -> (GradientsParams, Vec<T>)
where
    M: Module + Sync,
    T: Send,
    F: Fn(&M, usize) -> (Tensor<1>, T) + Sync,
{
    if n <= 1 {
        let (l, value) = loss(model, 0);
        return (GradientsParams::from_grads(l.backward(), model), vec![value]);
    }
    let own = fills_pool(n);
    let parts: Vec<(GradientsParams, T)> = (0..n)
        .into_par_iter()
        .map(|i| {
            own_thread::keep(own, || {
                let replica = model.clone().map(&mut FreshLeaves);
                let (l, value) = loss(&replica, i);
                (GradientsParams::from_grads(l.backward(), &replica), value)
            })
        })
        .collect();
    let (mut grads, values): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
    let mut total = grads.remove(0);
    for mut part in grads {
        model.visit(&mut AddInto {
            total: &mut total,
            part: &mut part,
        });
    }
    (total, values)
}

/// The gradients of `module`'s parameters, moved out of `grads` (for a
/// loss over several modules, each stepped by its own optimizer).
pub fn take<M: Module>(grads: &mut GradientsParams, module: &M) -> GradientsParams {
    let mut taken = GradientsParams::new();
    module.visit(&mut AddInto {
        total: &mut taken,
        part: grads,
    });
    taken
}

/// Replaces every float parameter's tensor by a new autodiff leaf holding
/// the same values.
struct FreshLeaves;

impl ModuleMapper for FreshLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| t.detach().require_grad())
    }
}

/// Moves each parameter's gradient from `part` into `total`, adding it to
/// what `total` already holds for that parameter.
struct AddInto<'a> {
    total: &'a mut GradientsParams,
    part: &'a mut GradientsParams,
}

impl ModuleVisitor for AddInto<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.part.remove::<D>(param.id) {
            let sum = match self.total.remove::<D>(param.id) {
                Some(t) => t + g,
                None => g,
            };
            self.total.register(param.id, sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_rows_in_near_equal_parts() {
        assert_eq!(ranges(16, 2), vec![0..8, 8..16]);
        assert_eq!(ranges(7, 3), vec![0..3, 3..5, 5..7]);
        assert_eq!(ranges(2, 1), vec![0..2]);
        assert_eq!(ranges(0, 2), vec![0..0, 0..0]);
    }

    /// A model of one parameter, `w`.
    #[derive(burn::module::Module, Debug)]
    struct One {
        w: Param<Tensor<1>>,
    }

    /// In a pool of 3 threads: with a shard on every thread, each shard's
    /// products are kept to its thread, and only there; the gradient of
    /// Σᵢ (i + 1)·w over the shards is 1 + 2 + 3. With 2 shards, which
    /// leave a core for a product's parts, none is kept.
    #[test]
    fn shards_on_every_thread_keep_their_products() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let device = burn::tensor::Device::flex().autodiff();
        let model = One {
            w: Param::from_tensor(Tensor::from_floats([2.0], &device)),
        };
        pool.install(|| {
            let (grads, kept) = gradients(&model, 3, |m, i| (m.w.val() * (i as f32 + 1.0), own_thread::kept()));
            assert_eq!(kept, vec![true; 3]);
            assert!(!own_thread::kept());
            let grad = grads.get::<1>(model.w.id).expect("a gradient");
            assert_eq!(grad.into_data().try_to_vec::<f32>().unwrap(), [6.0]);
            let (_, kept) = gradients(&model, 2, |m, _| (m.w.val(), own_thread::kept()));
            assert_eq!(kept, vec![false; 2]);
        });
    }

    #[test]
    fn at_most_one_shard_per_row() {
        let cpu = burn::tensor::Device::flex().autodiff();
        assert_eq!(count(&cpu, 1), 1);
        assert!(count(&cpu, 64) >= 1 && count(&cpu, 64) <= rayon::current_num_threads());
    }
}
