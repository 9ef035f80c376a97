//! The apiserver's HTTPS client to kubelets: one TLS configuration (the
//! apiserver's kubelet client certificate; the kubelet's serving
//! certificate checked against `--kubelet-certificate-authority`, or not
//! at all without one, as upstream), and one way to forward a request —
//! streaming the answer back, or, when the client upgrades the connection
//! (SPDY or WebSocket), relaying bytes both ways once the kubelet has
//! switched protocols, so every kubectl's streaming protocol passes
//! through unchanged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use capstan_component_base::tls::{load_certs, load_private_key, load_root_store};

use crate::error::{ApiError, ApiResult, Subject};

/// Largest error body read back from a kubelet.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus
/// the caller's credentials for the apiserver, as upstream's
/// authentication filter removes them.
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

/// How the apiserver reaches kubelets.
pub struct KubeletClient {
    tls: Arc<ClientConfig>,
    /// Node address types, most preferred first.
    pub preferred_address_types: Vec<String>,
    /// Port when a Node reports none.
    pub default_port: u16,
    dial_timeout: Duration,
}

/// The kubelet TLS settings, from the apiserver's flags.
pub struct KubeletTls<'a> {
    /// Client certificate and key presented to kubelets.
    pub client_cert: Option<(&'a Path, &'a Path)>,
    /// CA of kubelets' serving certificates; `None` skips verification.
    pub certificate_authority: Option<&'a Path>,
}

impl KubeletClient {
    /// Builds the client once at start-up; bad certificate files fail it.
    pub fn new(
        tls: KubeletTls<'_>,
        preferred_address_types: Vec<String>,
        default_port: u16,
        dial_timeout: Duration,
    ) -> Result<Self> {
        let builder = ClientConfig::builder();
        let builder = match tls.certificate_authority {
            Some(ca) => builder.with_root_certificates(load_root_store(ca)?),
            None => {
                let provider = CryptoProvider::get_default()
                    .cloned()
                    .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(UnverifiedServer(provider)))
            }
        };
        let mut config = match tls.client_cert {
            Some((cert, key)) => builder
                .with_client_auth_cert(load_certs(cert)?, load_private_key(key)?)
                .context("kubelet client certificate")?,
            None => builder.with_no_client_auth(),
        };
        // Upgrades (exec, attach, port-forward) exist only in HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient {
            tls: Arc::new(config),
            preferred_address_types,
            default_port,
            dial_timeout,
        })
    }

    /// Sends `req` to `https://host:port{path_and_query}` and answers with
    /// what the kubelet answers. An upgrade the kubelet accepts becomes a
    /// byte relay; an error it answers becomes a `Status` with its code
    /// and text, as upstream relays it (`subject` names the pod).
    pub async fn forward(
        &self,
        (host, port): (&str, u16),
        path_and_query: &str,
        mut req: Request,
        subject: Subject,
    ) -> ApiResult<Response> {
        let url = format!("https://{}{path_and_query}", authority(host, port));
        let method = req.method().clone();
        let failed = |e: &dyn std::fmt::Display| {
            ApiError::internal_visible(format!("{} {url:?}: {e}", method_name(&method)))
        };
        let upgrade = wants_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let tcp = tokio::time::timeout(self.dial_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| failed(&"dial tcp: i/o timeout"))?
            .map_err(|e| failed(&e))?;
        let server_name = ServerName::try_from(host.to_string()).map_err(|e| failed(&e))?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| failed(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| failed(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection ended");
            }
        });
        let backend =
            backend_request(&req, host, port, path_and_query, upgrade).map_err(|e| failed(&e))?;
        let mut resp = sender.send_request(backend).await.map_err(|e| failed(&e))?;
        let status = resp.status();
        if status == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(failed(&"the kubelet switched protocols unasked"));
            };
            let backend_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match tokio::join!(client_upgrade, backend_upgrade) {
                    (Ok(client), Ok(backend)) => {
                        let (mut client, mut backend) =
                            (TokioIo::new(client), TokioIo::new(backend));
                        if let Err(e) =
                            tokio::io::copy_bidirectional(&mut client, &mut backend).await
                        {
                            tracing::debug!(error = %e, "kubelet stream ended");
                        }
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!(error = %e, "upgrading a kubelet stream failed");
                    }
                }
            });
            let mut out = Response::new(Body::empty());
            *out.status_mut() = status;
            *out.headers_mut() = resp.headers().clone();
            return Ok(out);
        }
        if !status.is_success() {
            let body = resp.into_body();
            let bytes = http_body_util::Limited::new(body, MAX_ERROR_BODY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(ApiError::from_backend(
                status,
                String::from_utf8_lossy(&bytes),
                subject,
            ));
        }
        let (parts, body) = resp.into_parts();
        let mut out = Response::new(Body::new(body));
        *out.status_mut() = status;
        copy_end_to_end(&parts.headers, out.headers_mut());
        Ok(out)
    }
}

/// `host:port`, bracketing IPv6 addresses.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Go's method spelling in upstream's dial errors (`Get "https://..."`).
fn method_name(method: &http::Method) -> String {
    let m = method.as_str();
    let mut out = m[..1].to_string();
    out.push_str(&m[1..].to_ascii_lowercase());
    out
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

fn copy_end_to_end(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// The request to the kubelet: the caller's method and end-to-end headers
/// (the upgrade ones too when upgrading), no body (none of these
/// subresources has one).
fn backend_request(
    req: &Request,
    host: &str,
    port: u16,
    path_and_query: &str,
    upgrade: bool,
) -> http::Result<http::Request<Empty<Bytes>>> {
    let mut builder = http::Request::builder()
        .method(req.method().clone())
        .uri(path_and_query)
        .header(header::HOST, authority(host, port));
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

/// Accepts any kubelet serving certificate (still checking the handshake
/// signatures), as upstream does without `--kubelet-certificate-authority`:
/// kubelets serve self-signed certificates by default.
#[derive(Debug)]
struct UnverifiedServer(Arc<CryptoProvider>);

impl ServerCertVerifier for UnverifiedServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
