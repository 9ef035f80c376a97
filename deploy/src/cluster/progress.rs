//! Progress lines as kind prints them on stderr: ` • Starting etcd ...`
//! while a step runs (on a terminal), then ` ✓ Starting etcd` or
//! ` ✗ Starting etcd`. When stderr is not a terminal only the final line
//! is printed, so logs stay one line per step.

use std::future::Future;
use std::io::{IsTerminal as _, Write as _};

/// Prints step lines to stderr.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    tty: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// A printer that animates only when stderr is a terminal.
    pub fn new() -> Self {
        Progress {
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// A free-standing status line.
    pub fn say(&self, line: &str) {
        eprintln!("{line}");
    }

    /// Runs `work` as a step titled `title`, then marks it done or failed.
    pub async fn step<T, F>(&self, title: &str, work: F) -> anyhow::Result<T>
    where
        F: Future<Output = anyhow::Result<T>>,
    {
        if self.tty {
            eprint!(" • {title} ...");
            let _ = std::io::stderr().flush();
        }
        let result = work.await;
        let mark = if result.is_ok() { '✓' } else { '✗' };
        if self.tty {
            // Back to the line's start and clear it before the final form.
            eprintln!("\r\x1b[2K {mark} {title}");
        } else {
            eprintln!(" {mark} {title}");
        }
        result
    }
}
