//! Which version of each operation the CPU runs: the fused one (the
//! default) or the composed one every other backend runs, chosen by
//! `RLHF_TUI_KERNELS=composed` or, in tests, by `force`.

use std::sync::atomic::{AtomicU8, Ordering};

const UNREAD: u8 = 0;
const FUSED: u8 = 1;
const COMPOSED: u8 = 2;

static PATH: AtomicU8 = AtomicU8::new(UNREAD);

/// The variable that chooses the path: `fused` (default) or `composed`.
pub const VARIABLE: &str = "RLHF_TUI_KERNELS";

/// Whether the CPU runs the composed versions.
pub fn composed() -> bool {
    match PATH.load(Ordering::Relaxed) {
        UNREAD => {
            let composed = std::env::var(VARIABLE).is_ok_and(|v| v.eq_ignore_ascii_case("composed"));
            PATH.store(if composed { COMPOSED } else { FUSED }, Ordering::Relaxed);
            composed
        }
        path => path == COMPOSED,
    }
}

/// Sets the path for the rest of the process (every thread).
pub fn force(composed: bool) {
    PATH.store(if composed { COMPOSED } else { FUSED }, Ordering::Relaxed);
}
