//! Structured logging through `tracing`, filtered by `RUST_LOG` (default
//! `info`), identical in every binary.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; safe to call more than once (later calls
/// are ignored), which lets tests start several components in one process.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .try_init();
}
