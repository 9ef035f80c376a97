//! The HTTP surface: one dispatcher that classifies each request (see
//! [`crate::request_info`]) and hands it to discovery, OpenAPI, health or
//! the generic resource handlers. No kind has a handler of its own.

mod resource;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;

use crate::discovery::AGGREGATED_CONTENT_TYPE;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::negotiation::{preferred, wants_aggregated_discovery};
use crate::openapi::v2::{self, OpenApiV2};
use crate::registry::store::Backend;
use crate::request_info::{RequestInfo, resolve};
use crate::served::ServedCell;

/// Subresource names that may appear as metric labels.
const KNOWN_SUBRESOURCES: &[&str] = &[
    "status",
    "binding",
    "eviction",
    "finalize",
    "scale",
    "log",
    "exec",
    "attach",
    "portforward",
];

/// Largest request body accepted, as upstream (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The authenticated caller, from its client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Certificate CN.
    pub name: String,
    /// Certificate O values.
    pub groups: Vec<String>,
}

/// Everything a request may need, shared by all requests.
pub struct AppState {
    /// Served kinds and their documents (changing with CRDs).
    pub served: ServedCell,
    /// Storage and watch caches.
    pub backend: Backend,
    /// Request metrics.
    pub metrics: Metrics,
    /// How pod logs, exec, attach and port-forward reach kubelets.
    pub kubelet: crate::kubeletproxy::KubeletClient,
}

/// Paths anyone may read without credentials, as upstream's
/// `system:public-info-viewer` role allows.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

fn bytes_response(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    bytes_response(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

/// Parses the query string into a map (the last value of a repeated key wins).
fn parse_query(query: Option<&str>) -> ApiResult<HashMap<String, String>> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
}

/// Bytes of an oversized body still read (and dropped) before answering
/// 413, so the client receives the answer instead of a reset stream.
const MAX_DRAINED_BYTES: usize = 64 * 1024 * 1024;

/// Reads the body, refusing more than [`MAX_BODY_BYTES`] with 413.
async fn read_body(mut body: Body) -> ApiResult<bytes::Bytes> {
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("reading the request body failed: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= MAX_BODY_BYTES {
                buf.extend_from_slice(&data);
            } else if total > MAX_DRAINED_BYTES {
                break;
            }
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    Ok(buf.freeze())
}

/// The one entry point for every request.
pub async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let watch_param = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=1" || kv == "watch=true"));
    let info = resolve(&method, &path, watch_param);
    let authenticated = req.extensions().get::<UserInfo>().is_some();
    let response = if !authenticated && !is_public(&path) {
        ApiError::unauthorized().into_response()
    } else {
        match &info {
            RequestInfo::Resource(r) => match parse_query(query.as_deref()) {
                Ok(q) => resource::handle(&state, r, &q, req)
                    .await
                    .unwrap_or_else(IntoResponse::into_response),
                Err(e) => e.into_response(),
            },
            RequestInfo::NonResource { .. } => non_resource(&state, &path, req)
                .await
                .unwrap_or_else(IntoResponse::into_response),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let code = response.status().as_u16();
    // Labels come only from served resources, so no request can mint new
    // series (unbounded memory) by inventing paths.
    match &info {
        RequestInfo::Resource(r)
            if authenticated
                && state
                    .served
                    .get()
                    .registry
                    .lookup(&r.group, &r.version, &r.resource)
                    .is_some()
                && (r.subresource.is_empty()
                    || KNOWN_SUBRESOURCES.contains(&r.subresource.as_str())) =>
        {
            state
                .metrics
                .observe(r.verb, &r.group, &r.resource, &r.subresource, code, seconds)
        }
        RequestInfo::Resource(r) => state.metrics.observe(r.verb, "", "", "", code, seconds),
        RequestInfo::NonResource { verb, .. } => {
            state.metrics.observe(verb, "", "", "", code, seconds)
        }
    }
    response
}

/// `/openapi/v2` as upstream's kube-openapi handler serves it: the encoding
/// `Accept` prefers, `Vary: Accept`, an `ETag` that kubectl's HTTP cache
/// revalidates with `If-None-Match` (304, no body), and 406 for anything
/// but JSON or gnostic protobuf.
fn openapi_v2(doc: &OpenApiV2, headers: &http::HeaderMap) -> ApiResult<Response> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let media_type = preferred(accept, v2::OFFERS)
        .ok_or_else(|| ApiError::not_acceptable_of(accept.unwrap_or_default(), v2::OFFERS))?;
    let (content_type, representation) = doc.representation(media_type);
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == representation.etag);
    let mut resp = if unchanged {
        // The length of what the client holds, not of this empty answer:
        // caches copy a 304's headers onto the stored response.
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        resp.headers_mut().insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(representation.body.len()),
        );
        resp
    } else {
        let mut resp = (StatusCode::OK, Body::from(representation.body.clone())).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        resp
    };
    let headers = resp.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    if let Ok(etag) = HeaderValue::from_str(&representation.etag) {
        headers.insert(header::ETAG, etag);
    }
    Ok(resp)
}

async fn non_resource(state: &AppState, path: &str, req: Request) -> ApiResult<Response> {
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return Err(ApiError::method_not_allowed(req.method().as_str(), path));
    }
    let served = state.served.get();
    match path {
        "/healthz" | "/livez" => {
            return Ok(bytes_response(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                b"ok".to_vec(),
            ));
        }
        "/readyz" => {
            return match state.backend.storage.current_revision().await {
                Ok(_) => Ok(bytes_response(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    b"ok".to_vec(),
                )),
                Err(e) => {
                    tracing::warn!(error = %e, "readyz: storage not reachable");
                    Ok(bytes_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain; charset=utf-8",
                        b"[-]etcd failed: reason withheld\nreadyz check failed".to_vec(),
                    ))
                }
            };
        }
        "/version" => return Ok(json_response(StatusCode::OK, &crate::version::info())),
        "/metrics" => {
            return Ok(bytes_response(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                state.metrics.render(),
            ));
        }
        "/openapi/v2" => return openapi_v2(&served.openapi_v2, req.headers()),
        "/openapi/v3" | "/openapi/v3/" => {
            return Ok(bytes_response(
                StatusCode::OK,
                "application/json",
                served.openapi.index.clone(),
            ));
        }
        _ => {}
    }
    if let Some(doc) = path.strip_prefix("/openapi/v3/") {
        return match served.openapi.documents.get(doc) {
            Some(b) => Ok(bytes_response(
                StatusCode::OK,
                "application/json",
                b.clone(),
            )),
            None => Err(ApiError::path_not_found()),
        };
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    match served
        .discovery
        .lookup(path, wants_aggregated_discovery(accept))
    {
        Some((body, true)) => Ok(bytes_response(
            StatusCode::OK,
            AGGREGATED_CONTENT_TYPE,
            body.to_vec(),
        )),
        Some((body, false)) => Ok(bytes_response(
            StatusCode::OK,
            "application/json",
            body.to_vec(),
        )),
        None => Err(ApiError::path_not_found()),
    }
}
