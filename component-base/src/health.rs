//! The HTTPS endpoint of every component other than the apiserver:
//! `/healthz`, `/livez` and `/readyz` for anyone (upstream's
//! always-allowed paths) and `/metrics`, which needs a client certificate
//! when a client CA is configured. Shared so that the scheduler and the
//! controller-manager answer probes and scrapes the same way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::https;

/// Renders the Prometheus text exposition of a component's metrics.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Where and how a component serves its health and metrics endpoints
/// (upstream's `--bind-address`, `--secure-port`, `--tls-*` and
/// `--client-ca-file` flags).
#[derive(Clone, Debug, Default)]
pub struct ServingConfig {
    /// Address to listen on.
    pub bind_address: String,
    /// HTTPS port; 0 disables serving.
    pub secure_port: u16,
    /// Serving certificate; a self-signed one is generated when absent.
    pub tls_cert_file: Option<PathBuf>,
    /// Key of `tls_cert_file`.
    pub tls_private_key_file: Option<PathBuf>,
    /// When given, `/metrics` requires a client certificate signed by it.
    pub client_ca_file: Option<PathBuf>,
}

/// A caller identified by its verified client certificate.
#[derive(Clone, Debug)]
pub struct Authenticated;

/// The routes, for the component-base HTTPS listener.
pub fn router(render: RenderMetrics, metrics_need_auth: bool) -> Router {
    let health = || async { "ok" };
    Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/metrics", get(serve_metrics))
        .with_state((render, metrics_need_auth))
}

async fn serve_metrics(
    State((render, need_auth)): State<(RenderMetrics, bool)>,
    who: Option<Extension<Authenticated>>,
) -> impl IntoResponse {
    if need_auth && who.is_none() {
        return (StatusCode::UNAUTHORIZED, "Unauthorized".to_string()).into_response();
    }
    ([("content-type", "text/plain; version=0.0.4")], render()).into_response()
}

/// Any verified certificate authenticates (the CA vouches for it).
pub fn identify(_der: &[u8]) -> Option<Authenticated> {
    Some(Authenticated)
}

/// Binds the port (so a busy port fails start-up) and serves the health
/// and metrics routes in the background; does nothing when the port is 0.
pub async fn serve(cfg: &ServingConfig, render: RenderMetrics) -> Result<()> {
    if cfg.secure_port == 0 {
        return Ok(());
    }
    let tls = match (&cfg.tls_cert_file, &cfg.tls_private_key_file) {
        (Some(cert), Some(key)) => https::tls_config(cert, key, cfg.client_ca_file.as_deref())?,
        _ => https::self_signed_config(
            &["localhost".to_string(), "127.0.0.1".to_string()],
            cfg.client_ca_file.as_deref(),
        )?,
    };
    let addr: SocketAddr = format!("{}:{}", cfg.bind_address, cfg.secure_port)
        .parse()
        .with_context(|| format!("bad --bind-address {}", cfg.bind_address))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    tracing::info!(%addr, "serving /healthz and /metrics");
    let app = router(render, cfg.client_ca_file.is_some());
    tokio::spawn(https::serve(
        listener,
        tls,
        app,
        std::future::pending::<()>(),
        identify,
    ));
    Ok(())
}
