//! Keeping an operation's matrix products on the calling thread while it
//! runs a shard of data-parallel work (`rlhf::shards`) and every thread of
//! the pool runs one.
//!
//! Split over the pool, such a product's parts have no free thread to go
//! to and mostly run one after another on the calling thread, in the gemm
//! crate's parallel mode, which costs more than its serial one: a PPO
//! minibatch's gradients at SmolLM2-135M's shape on 2 cores took 7–8%
//! longer with the products split than with each shard's on its own core.

use std::cell::Cell;

thread_local! {
    static OWN: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with its products on the calling thread when `own`.
pub fn keep<T>(own: bool, f: impl FnOnce() -> T) -> T {
    /// Restores the flag, also when `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            OWN.set(self.0);
        }
    }
    let _restore = Restore(OWN.replace(own || OWN.get()));
    f()
}

/// Whether the calling thread keeps its products to itself.
pub fn kept() -> bool {
    OWN.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flag holds inside `keep(true, …)` (and in calls nested in it),
    /// not outside, and is restored after a panic.
    #[test]
    fn the_flag_holds_inside_and_is_restored() {
        assert!(!kept());
        keep(true, || {
            assert!(kept());
            keep(false, || assert!(kept()));
        });
        assert!(!kept());
        keep(false, || assert!(!kept()));
        let caught = std::panic::catch_unwind(|| keep(true, || panic!("inside")));
        assert!(caught.is_err());
        assert!(!kept());
    }
}
