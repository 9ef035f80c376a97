//! Forwarding one HTTP request to a backend over a connection the caller
//! opened (TLS to a kubelet, plain TCP to a runtime's streaming server),
//! as upstream's upgrade-aware proxy does: a plain answer streams back; an
//! upgrade the backend accepts (SPDY or WebSocket: `exec`, `attach`,
//! `port-forward`) becomes a byte relay between the two connections, so
//! every client's streaming protocol passes through unchanged. Used by the
//! apiserver (to kubelets) and the kubelet (to the runtime).

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest error body read back from a backend.
const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus
/// the caller's credentials for this server, as upstream's authentication
/// filter removes them.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    header::AUTHORIZATION,
    header::HOST,
];

/// What the backend did with a forwarded request.
pub enum Answer {
    /// It switched protocols (the relay runs in the background) or
    /// answered with success (the body streams): send this on.
    Forward(Response),
    /// It answered with an error: its status and (at most 64 KiB of) body.
    Refused(StatusCode, Bytes),
}

/// Whether the client asks to switch protocols (SPDY or WebSocket).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Sends `req` (its method and end-to-end headers; none of the forwarded
/// requests has a body) over `io` as `path_and_query` on `authority`, and
/// returns what the backend answered.
pub async fn forward<IO>(
    io: IO,
    mut req: Request,
    authority: &str,
    path_and_query: &str,
) -> anyhow::Result<Answer>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let upgrade = wants_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "backend connection ended");
        }
    });
    let mut resp = sender
        .send_request(backend_request(&req, authority, path_and_query, upgrade)?)
        .await?;
    let status = resp.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            anyhow::bail!("the backend switched protocols unasked");
        };
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match tokio::join!(client_upgrade, backend_upgrade) {
                (Ok(client), Ok(backend)) => {
                    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                        tracing::debug!(error = %e, "relayed stream ended");
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "upgrading a relayed stream failed");
                }
            }
        });
        let mut out = Response::new(Body::empty());
        *out.status_mut() = status;
        *out.headers_mut() = resp.headers().clone();
        return Ok(Answer::Forward(out));
    }
    if !status.is_success() {
        let body = http_body_util::Limited::new(resp.into_body(), MAX_REFUSAL_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Ok(Answer::Refused(status, body));
    }
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = status;
    copy_end_to_end(&parts.headers, out.headers_mut());
    Ok(Answer::Forward(out))
}

fn copy_end_to_end(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

fn backend_request(
    req: &Request,
    authority: &str,
    path_and_query: &str,
    upgrade: bool,
) -> http::Result<http::Request<Empty<Bytes>>> {
    let mut builder = http::Request::builder()
        .method(req.method().clone())
        .uri(path_and_query)
        .header(header::HOST, authority);
    if let Some(headers) = builder.headers_mut() {
        copy_end_to_end(req.headers(), headers);
        if upgrade {
            for name in [header::CONNECTION, header::UPGRADE] {
                for value in req.headers().get_all(&name) {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
    }
    builder.body(Empty::new())
}
