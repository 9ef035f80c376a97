//! `exec`, `attach` and `portForward` as upstream's kubelet serves them:
//! find the running container (or the pod's ready sandbox), ask the
//! runtime (CRI `Exec`/`Attach`/`PortForward`) for a one-time URL on its
//! streaming server, and relay the client's upgraded connection there —
//! the runtime speaks the SPDY and WebSocket protocols kubectl uses.

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use k8s_cri::v1 as cri;
use tokio::net::TcpStream;

use capstan_component_base::relay::{self, Answer};

use super::lookup::Refusal;
use super::{ServerContext, bad_request, pod, query_pairs, stream_flags};
use crate::cri::labels;

fn internal(e: impl std::fmt::Display) -> Refusal {
    Refusal {
        code: 500,
        message: e.to_string(),
    }
}

/// The pod, checked against the uid in the path when there is one.
async fn pod_uid(
    ctx: &ServerContext,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
) -> Result<String, Refusal> {
    let pod = pod(ctx, namespace, name).await?;
    let actual = pod.metadata.uid.clone().unwrap_or_default();
    if uid.is_some_and(|u| u != actual) {
        return Err(Refusal {
            code: 404,
            message: format!("pod {name:?} does not exist"),
        });
    }
    Ok(actual)
}

/// The runtime id of the pod's running container called `container`.
async fn running_container(
    ctx: &ServerContext,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    container: &str,
) -> Result<String, Refusal> {
    let uid = pod_uid(ctx, namespace, name, uid).await?;
    let mut selector = labels::of_pod(&uid);
    selector.insert(labels::CONTAINER_NAME.into(), container.into());
    ctx.cri
        .list_containers(selector)
        .await
        .map_err(|e| internal(format!("{e:#}")))?
        .into_iter()
        .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
        .max_by_key(|c| c.created_at)
        .map(|c| c.id)
        .ok_or_else(|| internal(format!("container not found ({container:?})")))
}

/// Relays `req` to the runtime's streaming `url`.
async fn relay_to(url: &str, req: Request) -> Result<Response, Refusal> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| internal(format!("the runtime's streaming URL {url:?}: {e}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| internal(format!("the runtime's streaming URL {url:?} has no host")))?
        .to_string();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let tcp = TcpStream::connect(&authority).await.map_err(|e| {
        internal(format!(
            "dialing the runtime's streaming server {authority}: {e}"
        ))
    })?;
    match relay::forward(tcp, req, &authority, &path)
        .await
        .map_err(|e| internal(format!("{e:#}")))?
    {
        Answer::Forward(resp) => Ok(resp),
        Answer::Refused(status, body) => Ok((status, Body::from(body)).into_response()),
    }
}

/// `/exec/{namespace}/{pod}[/{uid}]/{container}?command=...`.
pub async fn exec(
    ctx: &ServerContext,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    container: &str,
    req: Request,
) -> Result<Response, Refusal> {
    let pairs = query_pairs(&req);
    let cmd: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if cmd.is_empty() {
        return Err(bad_request("you must specify at least 1 command"));
    }
    let flags = stream_flags(&pairs)?;
    let id = running_container(ctx, namespace, name, uid, container).await?;
    let url = ctx
        .cri
        .exec_url(cri::ExecRequest {
            container_id: id,
            cmd,
            tty: flags.tty,
            stdin: flags.stdin,
            stdout: flags.stdout,
            stderr: flags.stderr && !flags.tty,
        })
        .await
        .map_err(|e| internal(format!("{e:#}")))?;
    relay_to(&url, req).await
}

/// `/attach/{namespace}/{pod}[/{uid}]/{container}`.
pub async fn attach(
    ctx: &ServerContext,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    container: &str,
    req: Request,
) -> Result<Response, Refusal> {
    let flags = stream_flags(&query_pairs(&req))?;
    let id = running_container(ctx, namespace, name, uid, container).await?;
    let url = ctx
        .cri
        .attach_url(cri::AttachRequest {
            container_id: id,
            tty: flags.tty,
            stdin: flags.stdin,
            stdout: flags.stdout,
            stderr: flags.stderr && !flags.tty,
        })
        .await
        .map_err(|e| internal(format!("{e:#}")))?;
    relay_to(&url, req).await
}

/// `/portForward/{namespace}/{pod}[/{uid}]`: the ports travel in the
/// streams' headers, so the runtime is asked for the pod's sandbox only.
pub async fn port_forward(
    ctx: &ServerContext,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    req: Request,
) -> Result<Response, Refusal> {
    let uid = pod_uid(ctx, namespace, name, uid).await?;
    let sandbox = ctx
        .cri
        .list_pod_sandboxes(labels::of_pod(&uid))
        .await
        .map_err(|e| internal(format!("{e:#}")))?
        .into_iter()
        .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
        .max_by_key(|s| s.created_at)
        .ok_or_else(|| internal(format!("pod {name:?} has no running sandbox")))?;
    let url = ctx
        .cri
        .port_forward_url(&sandbox.id)
        .await
        .map_err(|e| internal(format!("{e:#}")))?;
    relay_to(&url, req).await
}
