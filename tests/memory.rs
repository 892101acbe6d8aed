//! The allocator's settings (`rlhf_tui::memory`), on the process's real
//! heap: memory a step frees is handed out again without a page fault,
//! and goes back to the system when a stage ends. A binary of its own with
//! its own `main` (no test harness): the settings are made on the main
//! thread before any other starts, as the `rlhf-tui` binary makes them,
//! and no other test's allocations move the counts.

use rlhf_tui::memory::{keep_freed_memory, release_freed_memory, resident_bytes};

const BLOCK: usize = 256 << 20;
const PAGE: usize = 4096;

/// Allocates `BLOCK` bytes, writes every page, and frees them.
fn touch_a_block() {
    let mut block = Vec::<u8>::with_capacity(BLOCK);
    let start = block.as_mut_ptr();
    for offset in (0..BLOCK).step_by(PAGE) {
        // SAFETY: within the capacity just allocated.
        unsafe { start.add(offset).write_volatile(1) };
    }
}

/// The process's minor page faults so far.
fn faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command's closing parenthesis; minflt is 10th.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[7].parse().unwrap()
}

fn main() {
    keep_freed_memory();
    touch_a_block();
    let kept = resident_bytes().unwrap() as usize;
    let before = faults();
    touch_a_block();
    // Unmapped on free (glibc's default for a block this size), the block
    // would fault in all of its 65,536 pages again.
    let faulted = faults() - before;
    assert!(faulted < 1000, "{faulted} page faults reusing a freed block");
    assert!(
        kept >= BLOCK,
        "{kept} bytes resident after freeing the block: it was not kept"
    );

    release_freed_memory();
    let released = resident_bytes().unwrap() as usize;
    assert!(
        released + BLOCK / 2 < kept,
        "{released} bytes resident after the release, {kept} before"
    );
    println!("test freed_memory_is_reused_until_a_stage_releases_it ... ok");
}
