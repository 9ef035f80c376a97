//! The HTTPS listener every Capstan server uses: rustls with optional
//! client certificates, handshake and header timeouts, one hyper
//! connection (HTTP/1.1 or HTTP/2) per TLS session, and the caller's
//! identity (from its verified client certificate) attached to every
//! request it sends.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::tls;

/// Builds the TLS configuration: the serving certificate, and client
/// certificates verified against `client_ca` when given (optional at the
/// handshake, so that an unauthenticated request gets a 401 Status rather
/// than a TLS alert).
pub fn tls_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>> {
    server_config(
        tls::load_certs(cert)?,
        tls::load_private_key(key)?,
        client_ca,
    )
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let roots = Arc::new(tls::load_root_store(ca)?);
            let verifier = WebPkiClientVerifier::builder(roots)
                .allow_unauthenticated()
                .build()
                .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("loading the serving certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS configuration with a fresh self-signed certificate for `hosts`,
/// for servers started without `--tls-cert-file` (upstream components do
/// the same for their secure ports).
pub fn self_signed_config(hosts: &[String], client_ca: Option<&Path>) -> Result<Arc<ServerConfig>> {
    let cert = rcgen::generate_simple_self_signed(hosts.to_vec())
        .context("generating a self-signed serving certificate")?;
    let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    server_config(vec![cert.cert.der().clone()], key, client_ca)
}

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 streams one connection may hold open: each watch is one, and a
/// client (an informer-based controller) multiplexes many (upstream
/// allows 1000 too).
const MAX_STREAMS_PER_CONNECTION: u32 = 1000;
/// Pause after a failed accept (e.g. no file descriptors left).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections until `shutdown` resolves. `identify` turns the
/// verified client certificate (DER) of a connection into a value every
/// request on that connection carries as an extension (the caller's
/// identity), or `None` for anonymous.
pub async fn serve<T: Clone + Send + Sync + 'static>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
    identify: fn(&[u8]) -> Option<T>,
) {
    let acceptor = TlsAcceptor::from(config);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off
                    // instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move { serve_connection(stream, peer, acceptor, app, identify).await });
    }
}

async fn serve_connection<T: Clone + Send + Sync + 'static>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    identify: fn(&[u8]) -> Option<T>,
) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(t)) => t,
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
    };
    let user = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| identify(c.as_ref()));
    let service = app.map_request(move |mut req: axum::extract::Request| {
        if let Some(u) = &user {
            req.extensions_mut().insert(u.clone());
        }
        req
    });
    let service =
        TowerToHyperService::new(service.map_request(
            |req: http::Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
        ));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
