//! kube-proxy's own health and metrics servers: plain HTTP, as upstream
//! (`pkg/proxy/healthcheck/proxier_health.go`). component-base's
//! `health.rs` serves HTTPS with a constant "ok", which neither matches
//! kube-proxy's ports nor its answer, so the proxy serves these itself.
//!
//! `/healthz` and `/livez` answer 200 unless a change has been queued for
//! longer than the timeout (upstream: twice `--sync-period`) without a
//! successful sync since; `/healthz` also answers 503 when the Node is
//! being deleted or carries `ToBeDeletedByClusterAutoscaler`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;

use crate::metrics::Metrics;

/// The taint the cluster autoscaler puts on a Node it is removing.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

#[derive(Default)]
struct Times {
    last_updated: Option<Timestamp>,
    oldest_pending: Option<Timestamp>,
}

/// What `/healthz` and `/livez` judge by.
pub struct Health {
    times: Mutex<Times>,
    node_eligible: AtomicBool,
    timeout: Duration,
}

impl Health {
    /// Healthy until a queued change waits longer than `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Health {
            times: Mutex::new(Times::default()),
            node_eligible: AtomicBool::new(true),
            timeout,
        }
    }

    fn times(&self) -> std::sync::MutexGuard<'_, Times> {
        self.times.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A change arrived that the rules do not reflect yet.
    pub fn queued_update(&self) {
        let mut t = self.times();
        if t.oldest_pending.is_none() {
            t.oldest_pending = Some(Timestamp::now());
        }
    }

    /// The rules reflect every change queued so far.
    pub fn updated(&self) {
        let mut t = self.times();
        t.oldest_pending = None;
        t.last_updated = Some(Timestamp::now());
    }

    /// Follows the Node: not eligible while being deleted or tainted for
    /// deletion.
    pub fn sync_node(&self, node: &Node) {
        let deleting = node.metadata.deletion_timestamp.is_some();
        let tainted = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.key == TO_BE_DELETED_TAINT));
        self.node_eligible
            .store(!deleting && !tainted, Ordering::Relaxed);
    }

    /// (healthy, lastUpdated, currentTime) as upstream computes them.
    pub fn state(&self) -> (bool, Option<Timestamp>, Timestamp) {
        let t = self.times();
        let now = Timestamp::now();
        let healthy = match t.oldest_pending {
            None => true,
            Some(since) => now.duration_since(since).unsigned_abs().lt(&self.timeout),
        };
        (healthy, t.last_updated, now)
    }

    /// Whether the Node may take traffic.
    pub fn node_eligible(&self) -> bool {
        self.node_eligible.load(Ordering::Relaxed)
    }
}

fn stamp(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}

type HealthState = (Arc<Health>, Metrics);

async fn healthz(State((h, m)): State<HealthState>) -> impl IntoResponse {
    let eligible = h.node_eligible();
    let (ok, last, now) = h.state();
    let ok = ok && eligible;
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    m.healthz.with_label_values(&[code.as_str()]).inc();
    // Upstream reports lastUpdated as now while healthy.
    let last = if ok { Some(now) } else { last };
    let body = format!(
        "{{\"lastUpdated\": \"{}\",\"currentTime\": \"{}\", \"nodeEligible\": {eligible}}}",
        stamp(last),
        stamp(Some(now))
    );
    json(code, body)
}

async fn livez(State((h, m)): State<HealthState>) -> impl IntoResponse {
    let (ok, last, now) = h.state();
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    m.livez.with_label_values(&[code.as_str()]).inc();
    let last = if ok { Some(now) } else { last };
    let body = format!(
        "{{\"lastUpdated\": \"{}\",\"currentTime\": \"{}\"}}",
        stamp(last),
        stamp(Some(now))
    );
    json(code, body)
}

fn json(code: StatusCode, body: String) -> axum::response::Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn metrics(State(m): State<Metrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener> {
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("bad bind address {addr:?} (want ip:port)"))?;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))
}

/// Binds (so a busy port fails start-up) and serves `/healthz` and
/// `/livez` in the background; an empty address disables it.
pub async fn serve_health(addr: &str, health: Arc<Health>, metrics: Metrics) -> Result<()> {
    if addr.is_empty() {
        return Ok(());
    }
    let listener = bind(addr).await?;
    tracing::info!(%addr, "serving /healthz and /livez");
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .with_state((health, metrics));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

/// Binds and serves `/metrics` (and `/healthz` with a constant answer,
/// as upstream's metrics server does) in the background; an empty
/// address disables it.
pub async fn serve_metrics(addr: &str, metrics: Metrics) -> Result<()> {
    if addr.is_empty() {
        return Ok(());
    }
    let listener = bind(addr).await?;
    tracing::info!(%addr, "serving /metrics");
    let app = Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(metrics);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_queued_change_is_unhealthy_until_a_sync() {
        let h = Health::new(Duration::ZERO);
        assert!(h.state().0, "healthy while starting up");
        h.queued_update();
        assert!(!h.state().0, "a change older than the timeout");
        h.updated();
        assert!(h.state().0);
        let h = Health::new(Duration::from_secs(3600));
        h.queued_update();
        assert!(h.state().0, "a queued change within the timeout");
    }

    #[test]
    fn node_tainted_for_deletion_is_not_eligible() {
        let h = Health::new(Duration::from_secs(60));
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": [{"key": TO_BE_DELETED_TAINT, "effect": "NoSchedule"}]}
        }))
        .unwrap();
        h.sync_node(&node);
        assert!(!h.node_eligible());
        h.sync_node(&Node::default());
        assert!(h.node_eligible());
    }
}
