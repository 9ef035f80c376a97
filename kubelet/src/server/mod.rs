//! The kubelet's HTTPS port (`--port`, 10250), which the apiserver calls
//! for `kubectl logs`, `exec`, `attach` and `port-forward`: upstream's
//! paths, client certificates verified against `--client-ca-file` (a
//! request without one gets 401), and a self-signed serving certificate
//! unless `--tls-cert-file` is given, as upstream.
//!
//! - [`logs`]: reading CRI log files as `kubectl logs` shows them.
//! - [`lookup`]: which container a request is about, upstream's refusals.
//! - [`streaming`]: exec/attach/port-forward through the runtime's
//!   streaming server.

pub mod logs;
pub mod lookup;
pub mod streaming;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::cri::Cri;
use lookup::Refusal;

/// What the server needs from the rest of the kubelet.
pub struct ServerContext {
    /// API client (pods are looked up by name).
    pub client: kube::Client,
    /// The runtime.
    pub cri: Cri,
    /// This node's name: only pods bound here are served.
    pub node_name: String,
}

/// TLS and listening settings, from the kubelet's flags.
pub struct ServerSettings {
    /// Address to listen on.
    pub address: String,
    /// Port to listen on.
    pub port: u16,
    /// Serving certificate and key; self-signed when absent.
    pub tls_cert: Option<(PathBuf, PathBuf)>,
    /// CA of client certificates; without it every request is anonymous.
    pub client_ca: Option<PathBuf>,
    /// Names and addresses the self-signed certificate is for.
    pub hosts: Vec<String>,
}

/// A caller whose client certificate the cluster CA signed.
#[derive(Debug, Clone)]
struct Authenticated;

fn authenticated(_der: &[u8]) -> Option<Authenticated> {
    // The TLS layer has verified the certificate against the CA.
    Some(Authenticated)
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            code,
            [("content-type", "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}

/// Serves the kubelet's port until `shutdown` resolves.
pub async fn serve(
    ctx: Arc<ServerContext>,
    settings: ServerSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let tls = match &settings.tls_cert {
        Some((cert, key)) => {
            capstan_component_base::https::tls_config(cert, key, settings.client_ca.as_deref())?
        }
        None => capstan_component_base::https::self_signed_config(
            &settings.hosts,
            settings.client_ca.as_deref(),
        )?,
    };
    let addr = format!("{}:{}", settings.address, settings.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    tracing::info!(address = %addr, "serving the kubelet API over HTTPS");
    capstan_component_base::https::serve(listener, tls, router(ctx), shutdown, authenticated).await;
    Ok(())
}

fn router(ctx: Arc<ServerContext>) -> Router {
    let authenticated_routes = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route("/exec/{namespace}/{pod}/{container}", any(exec))
        .route(
            "/exec/{namespace}/{pod}/{uid}/{container}",
            any(exec_with_uid),
        )
        .route("/attach/{namespace}/{pod}/{container}", any(attach))
        .route(
            "/attach/{namespace}/{pod}/{uid}/{container}",
            any(attach_with_uid),
        )
        .route("/portForward/{namespace}/{pod}", any(port_forward))
        .route(
            "/portForward/{namespace}/{pod}/{uid}",
            any(port_forward_with_uid),
        )
        .layer(axum::middleware::from_fn(require_authentication))
        .with_state(ctx);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(authenticated_routes)
}

async fn require_authentication(req: Request, next: axum::middleware::Next) -> Response {
    if req.extensions().get::<Authenticated>().is_none() {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    next.run(req).await
}

/// The query's pairs, repeated keys kept (`command` is one per argument).
fn query_pairs(req: &Request) -> Vec<(String, String)> {
    serde_urlencoded::from_str(req.uri().query().unwrap_or_default()).unwrap_or_default()
}

fn flag(pairs: &[(String, String)], key: &str) -> bool {
    pairs
        .iter()
        .any(|(k, v)| k == key && matches!(v.as_str(), "1" | "true" | "True"))
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn pod(ctx: &ServerContext, namespace: &str, name: &str) -> Result<Pod, Refusal> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let found = api.get_opt(name).await.map_err(|e| Refusal {
        code: 500,
        message: format!("looking up pod {name:?}: {e}"),
    })?;
    lookup::bound_pod(found, name, &ctx.node_name)
}

fn bad_request(message: impl Into<String>) -> Refusal {
    Refusal {
        code: 400,
        message: message.into(),
    }
}

fn log_options(pairs: &[(String, String)]) -> Result<(logs::LogOptions, bool), Refusal> {
    let number = |key: &str| -> Result<Option<u64>, Refusal> {
        value(pairs, key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad_request(format!("invalid {key}: {v:?}")))
            })
            .transpose()
    };
    let since = match (number("sinceSeconds")?, value(pairs, "sinceTime")) {
        (Some(s), _) => Some(
            jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_secs(s as i64))
                .map_err(|e| bad_request(format!("invalid sinceSeconds: {e}")))?,
        ),
        (None, Some(t)) => Some(
            t.parse::<jiff::Timestamp>()
                .map_err(|e| bad_request(format!("invalid sinceTime {t:?}: {e}")))?,
        ),
        (None, None) => None,
    };
    Ok((
        logs::LogOptions {
            follow: flag(pairs, "follow"),
            timestamps: flag(pairs, "timestamps"),
            tail_lines: number("tailLines")?,
            limit_bytes: number("limitBytes")?,
            since,
        },
        flag(pairs, "previous"),
    ))
}

async fn container_logs(
    State(ctx): State<Arc<ServerContext>>,
    Path((namespace, name, container)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, Refusal> {
    let (opts, previous) = log_options(&query_pairs(&req))?;
    let pod = pod(&ctx, &namespace, &name).await?;
    lookup::in_spec(&pod, &name, &container)?;
    let id = lookup::log_container(&pod, &name, &container, previous)?;
    let status = ctx
        .cri
        .container_status(&id)
        .await
        .map_err(|e| Refusal {
            code: 500,
            message: format!("{e:#}"),
        })?
        .ok_or_else(|| {
            bad_request(format!(
                "container {container:?} in pod {name:?} is not available"
            ))
        })?;
    let (tx, rx) = mpsc::channel(16);
    let cri = ctx.cri.clone();
    let running = move || {
        let cri = cri.clone();
        let id = id.clone();
        async move {
            matches!(
                cri.container_status(&id).await,
                Ok(Some(s)) if s.state == k8s_cri::v1::ContainerState::ContainerRunning as i32
            )
        }
    };
    tokio::spawn(logs::stream(
        PathBuf::from(status.log_path),
        opts,
        tx,
        running,
    ));
    Ok((
        [("content-type", "text/plain")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

async fn exec(
    State(ctx): State<Arc<ServerContext>>,
    Path((namespace, name, container)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, Refusal> {
    streaming::exec(&ctx, &namespace, &name, None, &container, req).await
}

async fn exec_with_uid(
    State(ctx): State<Arc<ServerContext>>,
    Path((namespace, name, uid, container)): Path<(String, String, String, String)>,
    req: Request,
) -> Result<Response, Refusal> {
    streaming::exec(&ctx, &namespace, &name, Some(&uid), &container, req).await
}

async fn attach(
    State(ctx): State<Arc<ServerContext>>,
    Path((namespace, name, container)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, Refusal> {
    streaming::attach(&ctx, &namespace, &name, None, &container, req).await
}

async fn attach_with_uid(
    State(ctx): State<Arc<ServerContext>>,
    Path((namespace, name, uid, container)): Path<(String, String, String, String)>,
    req: Request,
) -> Result<Response, Refusal> {
    streaming::attach(&ctx, &namespace, &name, Some(&uid), &container, req).await
}

async fn port_forward(
    State(ctx): State<Arc<ServerContext>>,
    Path((namespace, name)): Path<(String, String)>,
    req: Request,
) -> Result<Response, Refusal> {
    streaming::port_forward(&ctx, &namespace, &name, None, req).await
}

async fn port_forward_with_uid(
    State(ctx): State<Arc<ServerContext>>,
    Path((namespace, name, uid)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, Refusal> {
    streaming::port_forward(&ctx, &namespace, &name, Some(&uid), req).await
}

/// The stream flags of an exec or attach request (`stdin`, `stdout`,
/// `stderr`, `tty`), checked as upstream's `NewOptions` checks them.
pub struct StreamFlags {
    /// Attach the client's stdin.
    pub stdin: bool,
    /// Send the container's stdout.
    pub stdout: bool,
    /// Send the container's stderr.
    pub stderr: bool,
    /// Allocate a terminal.
    pub tty: bool,
}

fn stream_flags(pairs: &[(String, String)]) -> Result<StreamFlags, Refusal> {
    let flags = StreamFlags {
        stdin: flag(pairs, "stdin"),
        stdout: flag(pairs, "stdout"),
        stderr: flag(pairs, "stderr"),
        tty: flag(pairs, "tty"),
    };
    if !(flags.stdin || flags.stdout || flags.stderr) {
        return Err(bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    Ok(flags)
}
