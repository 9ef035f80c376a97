//! The apiserver's HTTPS client to kubelets: one TLS configuration (the
//! apiserver's kubelet client certificate; the kubelet's serving
//! certificate checked against `--kubelet-certificate-authority`, or not
//! at all without one, as upstream); requests go through component-base's
//! [`relay`], which streams answers and relays upgraded connections.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::Request;
use axum::response::Response;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use capstan_component_base::relay::{self, Answer};
use capstan_component_base::tls::{load_certs, load_private_key, load_root_store};

use crate::error::{ApiError, ApiResult, Subject};

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
    /// what the kubelet answers (see [`relay`]); an error it answers
    /// becomes a `Status` with its code and text, as upstream relays it
    /// (`subject` names the pod).
    pub async fn forward(
        &self,
        (host, port): (&str, u16),
        path_and_query: &str,
        req: Request,
        subject: Subject,
    ) -> ApiResult<Response> {
        let authority = authority(host, port);
        let url = format!("https://{authority}{path_and_query}");
        let method = req.method().clone();
        let failed = |e: &dyn std::fmt::Display| {
            ApiError::internal_visible(format!("{} {url:?}: {e}", method_name(&method)))
        };
        let tcp = tokio::time::timeout(self.dial_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| failed(&"dial tcp: i/o timeout"))?
            .map_err(|e| failed(&e))?;
        let server_name = ServerName::try_from(host.to_string()).map_err(|e| failed(&e))?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| failed(&e))?;
        match relay::forward(tls, req, &authority, path_and_query)
            .await
            .map_err(|e| failed(&format!("{e:#}")))?
        {
            Answer::Forward(resp) => Ok(resp),
            Answer::Refused(status, body) => Err(ApiError::from_backend(
                status,
                String::from_utf8_lossy(&body),
                subject,
            )),
        }
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
