//! What every Capstan binary needs and nothing component-specific: TLS
//! material loading, the one rustls crypto provider, the HTTPS listener,
//! logging set-up, leader election, the health/metrics endpoint, Event
//! recording and the shutdown signal. Upstream calls
//! this layer `component-base`.

pub mod client;
pub mod duration;
pub mod events;
pub mod flags;
pub mod health;
pub mod https;
pub mod leader;
pub mod logging;
pub mod relay;
pub mod tls;

/// Resolves when the process is asked to stop (SIGINT or SIGTERM), so every
/// binary shuts down the same way.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
