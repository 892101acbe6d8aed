//! The `rlhf-tui` binary: everything lives in the library; this only hands
//! over the command line and turns an error into a message and exit code.

fn main() -> std::process::ExitCode {
    rlhf_tui::memory::keep_freed_memory();
    rlhf_tui::cli::main()
}
