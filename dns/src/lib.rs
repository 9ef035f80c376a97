//! `capstan-dns`: the cluster DNS add-on. It watches Services and
//! EndpointSlices through the apiserver, keeps the cluster zone as an
//! index of records ([`zone`]), answers the Kubernetes DNS specification
//! for `--cluster-domain` over UDP and TCP ([`server`]), forwards every
//! other name to the nameservers of `--resolv-conf` ([`forward`]), and
//! serves `/healthz`, `/readyz` and `/metrics` over plain HTTP
//! ([`health`]), as CoreDNS does in a kubeadm cluster.

pub mod forward;
pub mod health;
pub mod server;
pub mod watch;
pub mod zone;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

/// Command-line flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "capstan-dns", about = "Kubernetes cluster DNS")]
pub struct Options {
    /// Kubeconfig to reach the apiserver; in-cluster configuration (or
    /// `KUBECONFIG`) when absent.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The cluster domain answered authoritatively.
    #[arg(long = "cluster-domain", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// TTL of every answer (seconds).
    #[arg(long, default_value_t = 30)]
    pub ttl: u32,
    /// resolv.conf whose nameservers get every other name (`ip` or
    /// `ip:port` per `nameserver` line).
    #[arg(long = "resolv-conf", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// UDP and TCP address the DNS server listens on.
    #[arg(long, default_value = "0.0.0.0:53")]
    pub listen: SocketAddr,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(long = "health-address", default_value = "0.0.0.0:8080")]
    pub health_address: SocketAddr,
}

/// How long a TCP client may stay idle between queries.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the DNS server until SIGTERM/SIGINT.
pub async fn run(opts: Options) -> Result<()> {
    let upstreams = forward::read_resolv_conf(&opts.resolv_conf)?;
    let forwarder = forward::Forwarder::new(upstreams);
    let metrics = server::Metrics::new().context("registering metrics")?;
    let zone: server::SharedZone = Arc::new(RwLock::new(None));
    let ready = Arc::new(AtomicBool::new(false));

    health::serve(opts.health_address, ready.clone(), metrics.clone()).await?;

    let udp = tokio::net::UdpSocket::bind(opts.listen)
        .await
        .with_context(|| format!("listening on udp {}", opts.listen))?;
    let tcp = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("listening on tcp {}", opts.listen))?;
    let listen = udp.local_addr()?;
    tracing::info!(%listen, upstreams = ?forwarder.upstreams(), domain = %opts.cluster_domain, "serving DNS");
    let handler = server::Handler::new(
        zone.clone(),
        forwarder,
        metrics,
        listen,
        &opts.cluster_domain,
    );
    let mut dns = hickory_server::Server::new(handler);
    dns.register_socket(udp);
    dns.register_listener(tcp, TCP_TIMEOUT, 64);

    let client = capstan_component_base::client::client(opts.kubeconfig.as_deref()).await?;
    let cfg = zone::ZoneConfig {
        domain: opts.cluster_domain.clone(),
        ttl: opts.ttl,
    };
    let watching = watch::run(client, cfg, zone, ready);

    tokio::select! {
        r = watching => r.context("watching the cluster")?,
        r = dns.block_until_done() => r.context("DNS server stopped")?,
        _ = capstan_component_base::shutdown_signal() => {
            tracing::info!("shutting down");
        }
    }
    Ok(())
}
