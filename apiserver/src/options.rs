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
    /// The address this apiserver is reached at from inside the cluster:
    /// the endpoint of the `default/kubernetes` Service. Defaults to
    /// `--bind-address` unless that is 0.0.0.0, else the machine's
    /// primary IPv4 address, else 127.0.0.1.
    #[arg(long = "advertise-address")]
    pub advertise_address: Option<String>,
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
    /// Certificate the apiserver presents to kubelets when it proxies
    /// logs, exec, attach and port-forward; kubelets trust the cluster CA.
    #[arg(long = "kubelet-client-certificate", requires = "kubelet_client_key")]
    pub kubelet_client_certificate: Option<PathBuf>,
    /// Key of `--kubelet-client-certificate`.
    #[arg(long = "kubelet-client-key", requires = "kubelet_client_certificate")]
    pub kubelet_client_key: Option<PathBuf>,
    /// CA that signed kubelets' serving certificates. Without it their
    /// certificates are not verified, as upstream (kubelets serve
    /// self-signed certificates by default).
    #[arg(long = "kubelet-certificate-authority")]
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// Node address types to reach a kubelet at, in order of preference.
    /// kubeadm's order: an IP first, since node host names need not
    /// resolve on the apiserver's machine.
    #[arg(
        long = "kubelet-preferred-address-types",
        value_delimiter = ',',
        default_value = "InternalIP,ExternalIP,Hostname,InternalDNS,ExternalDNS"
    )]
    pub kubelet_preferred_address_types: Vec<String>,
    /// Kubelet port used when a Node does not report its own
    /// (`status.daemonEndpoints.kubeletEndpoint.Port`).
    #[arg(long = "kubelet-port", default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Time allowed to connect to a kubelet.
    #[arg(long = "kubelet-timeout", default_value = "5s", value_parser = parse_duration)]
    pub kubelet_timeout: Duration,
}
