//! Plain-HTTP `/healthz`, `/readyz` and `/metrics`, as CoreDNS's `health`
//! (`:8080/health`), `ready` and `prometheus` plugins serve them: a
//! readiness probe must not need TLS material inside the pod.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use crate::server::Metrics;

/// The routes: `/healthz` always ok, `/readyz` ok once `ready` is set
/// (the caches synced and the zone built), `/metrics` the exposition.
pub fn router(ready: Arc<AtomicBool>, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Acquire) {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        )
}

/// Binds `addr` (so a busy port fails start-up) and serves the routes in
/// the background.
pub async fn serve(addr: SocketAddr, ready: Arc<AtomicBool>, metrics: Metrics) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    let app = router(ready, metrics);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    Ok(())
}
