//! The `rlhf-tui` binary: everything lives in the library; this only hands
//! over the command line and turns an error into a message and exit code.

// Training allocates and frees many tensors of a few megabytes each step;
// glibc's allocator hands those to mmap and back, and the page faults and
// zeroing cost a tenth of a step. mimalloc keeps them in its own pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rlhf_tui::cli::main()
}
