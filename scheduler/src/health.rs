//! The scheduler's HTTPS endpoint: `/healthz`, `/livez`, `/readyz` for
//! anyone (upstream's always-allowed paths) and `/metrics`, which needs a
//! client certificate when a client CA is configured.

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// A caller identified by its verified client certificate.
#[derive(Clone, Debug)]
pub struct Authenticated;

/// The routes, for the component-base HTTPS listener.
pub fn router(metrics: Metrics, metrics_need_auth: bool) -> Router {
    let health = || async { "ok" };
    Router::new()
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/metrics", get(serve_metrics))
        .with_state((metrics, metrics_need_auth))
}

async fn serve_metrics(
    State((metrics, need_auth)): State<(Metrics, bool)>,
    who: Option<Extension<Authenticated>>,
) -> impl IntoResponse {
    if need_auth && who.is_none() {
        return (StatusCode::UNAUTHORIZED, "Unauthorized".to_string()).into_response();
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

/// Any verified certificate authenticates (the CA vouches for it).
pub fn identify(_der: &[u8]) -> Option<Authenticated> {
    Some(Authenticated)
}
