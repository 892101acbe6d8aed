//! The `rlhf-tui` binary: everything lives in the library; this only hands
//! over the command line and turns an error into a message and exit code.

// Training allocates and frees many tensors of a few megabytes each step;
// glibc's allocator hands those to mmap and back, and the page faults and
// zeroing cost a tenth of a step. mimalloc keeps them in its own pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_t`.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

fn main() -> std::process::ExitCode {
    // mimalloc hands pages that stayed free for a second back to the
    // kernel, which zeroes them again on the next touch: thousands of page
    // faults a training step. A minute keeps a running stage's memory
    // through the longest step (a PPO iteration at 135M parameters takes
    // 15 s here, and with 10 s its faults zeroed pages for a quarter of
    // the time) and still returns it when a stage ends.
    // SAFETY: sets a plain integer option; no allocation is in flight.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 60_000) };
    rlhf_tui::cli::main()
}
