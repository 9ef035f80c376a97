//! Command-line flags, named as upstream kube-apiserver's.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use capstan_component_base::duration::parse_duration;

/// `capstan-apiserver` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "capstan-apiserver",
    version,
    about = "Kubernetes-compatible API server over etcd"
)]
pub struct Options {
    /// etcd endpoints, comma-separated (http://host:port).
    #[arg(long = "etcd-servers", value_delimiter = ',', required = true)]
    pub etcd_servers: Vec<String>,
    /// Key prefix of every object in etcd.
    #[arg(long = "etcd-prefix", default_value = "/registry")]
    pub etcd_prefix: String,
    /// How often old revisions are compacted away (0 disables).
    #[arg(long = "etcd-compaction-interval", default_value = "5m", value_parser = parse_duration)]
    pub etcd_compaction_interval: Duration,
    /// Address to listen on.
    #[arg(long = "bind-address", default_value = "0.0.0.0")]
    pub bind_address: String,
    /// HTTPS port.
    #[arg(long = "secure-port", default_value_t = 6443)]
    pub secure_port: u16,
    /// Serving certificate (PEM).
    #[arg(long = "tls-cert-file")]
    pub tls_cert_file: PathBuf,
    /// Serving key (PEM).
    #[arg(long = "tls-private-key-file")]
    pub tls_private_key_file: PathBuf,
    /// CA bundle that signs client certificates; without it every
    /// non-public request is unauthorized.
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,
    /// Range Service cluster IPs are allocated from (IPv4; the first
    /// address is kept for the `kubernetes` Service, as upstream).
    #[arg(long = "service-cluster-ip-range", default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    /// Range Service NodePorts are allocated from, `low-high`.
    #[arg(long = "service-node-port-range", default_value = "30000-32767")]
    pub service_node_port_range: String,
}
