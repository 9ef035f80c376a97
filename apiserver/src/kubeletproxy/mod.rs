//! The pod subresources a node's kubelet serves — `log`, `exec`, `attach`
//! and `portforward` — answered by forwarding to that kubelet over HTTPS,
//! as upstream's apiserver does: look up the pod and its node, pick the
//! kubelet's address, and relay (see [`client`]).

pub mod client;
mod location;

use std::collections::HashMap;

use axum::extract::Request;
use axum::response::Response;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::error::{ApiError, ApiResult, Subject};
use crate::handlers::AppState;
use crate::request_info::ResourceRequest;

pub use client::{KubeletClient, KubeletTls};

/// The pod subresources proxied to kubelets.
pub const SUBRESOURCES: &[&str] = &["log", "exec", "attach", "portforward"];

/// Characters escaped in a path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'<')
    .add(b'>');

fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Answers a `pods/{log,exec,attach,portforward}` request.
pub async fn serve(
    state: &AppState,
    r: &ResourceRequest,
    q: &HashMap<String, String>,
    req: Request,
) -> ApiResult<Response> {
    let sub = r.subresource.as_str();
    let allowed = match sub {
        "log" => r.verb == "get",
        _ => matches!(r.verb, "get" | "create"),
    };
    if !allowed {
        return Err(ApiError::method_not_allowed(r.verb, &format!("pods/{sub}")));
    }
    let streaming = sub != "log";
    if streaming && !capstan_component_base::relay::wants_upgrade(req.headers()) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let served = state.served.get();
    let lookup = |resource: &str| {
        served
            .registry
            .lookup("", "v1", resource)
            .ok_or_else(ApiError::path_not_found)
    };
    let (pods, nodes) = (lookup("pods")?, lookup("nodes")?);
    let (ns, name) = (r.namespace.as_str(), r.name.as_str());
    let pod = state.backend.store(pods)?.get(ns, name).await?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let path = match sub {
        "portforward" => format!("/portForward/{}/{}", segment(ns), segment(name)),
        _ => {
            let container =
                location::container(&pod, name, q.get("container").map(String::as_str))?;
            let action = match sub {
                "log" => "containerLogs",
                other => other,
            };
            format!(
                "/{action}/{}/{}/{}",
                segment(ns),
                segment(name),
                segment(&container)
            )
        }
    };
    let query = match sub {
        "log" => location::log_query(q, name)?,
        _ => req.uri().query().unwrap_or_default().to_string(),
    };
    if node_name.is_empty() {
        if sub == "log" {
            // Upstream answers an unscheduled pod's log with nothing.
            return Ok(Response::new(axum::body::Body::empty()));
        }
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let node = state.backend.store(nodes)?.get("", node_name).await?;
    let kubelet = &state.kubelet;
    let (host, port) = location::kubelet_address(
        &node,
        &kubelet.preferred_address_types,
        kubelet.default_port,
    )
    .ok_or_else(|| {
        ApiError::bad_request(format!(
            "no preferred addresses found; known addresses: {}",
            node.pointer("/status/addresses")
                .map(|a| a.to_string())
                .unwrap_or_else(|| "[]".to_string())
        ))
    })?;
    let path_and_query = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    kubelet
        .forward(
            (&host, port),
            &path_and_query,
            req,
            Subject::new("", &format!("pods/{sub}"), name),
        )
        .await
}
