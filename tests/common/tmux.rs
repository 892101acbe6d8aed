//! A real terminal for the binary: a tmux session the tests type into
//! and read the screen of.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A shell line for the pane: the workbench from the repository on the
/// CPU with the test config and `args`, `prefix` before it (variables, or
/// `exec` to make it the pane's process); then its exit status is printed
/// and the pane stays open to be read.
pub fn workbench(prefix: &str, runs_dir: &Path, args: &str) -> String {
    format!(
        "cd {} && {prefix} {} --device cpu --runs-dir {} --config tests/fixtures/workbench.ron {args}; echo EXIT=$?; sleep 600",
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_BIN_EXE_rlhf-tui"),
        runs_dir.display()
    )
}

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A detached 120×40 session running `script`, on a socket of its own
    /// (named by `name` and the process) so parallel tests never meet.
    pub fn start(name: &str, script: &str) -> Self {
        let tmux = Tmux {
            socket: format!("rlhf-tui-{name}-{}", std::process::id()),
        };
        tmux.run(&["new-session", "-d", "-s", "wb", "-x", "120", "-y", "40", script]);
        tmux
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "wb"])
    }

    pub fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "wb", key]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Whether the pane is on the alternate screen (the workbench's).
    pub fn alternate_screen(&self) -> bool {
        self.run(&["display", "-p", "-t", "wb", "#{alternate_on}"]).trim() == "1"
    }

    /// Waits until the screen shows `text`; fails with the screen if not.
    pub fn wait_for(&self, text: &str, seconds: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} on screen after {seconds}s:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}
