//! Command-line flags, named as upstream's kubelet names them.

use std::path::PathBuf;

use clap::Parser;

/// `capstan-kubelet` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "capstan-kubelet",
    version,
    about = "The Capstan node agent: registers the Node and runs its pods on containerd through CRI",
    // A flag given twice takes its last value, as upstream's flags do.
    args_override_self = true
)]
pub struct Options {
    /// Kubeconfig with the apiserver's address and this node's credentials.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The Node's name instead of the machine's hostname.
    #[arg(long = "hostname-override")]
    pub hostname_override: Option<String>,
    /// The node's InternalIP (detected from the default route when absent).
    #[arg(long = "node-ip")]
    pub node_ip: Option<String>,
    /// The CRI socket: a path or a `unix://` URL.
    #[arg(
        long = "container-runtime-endpoint",
        default_value = "unix:///run/containerd/containerd.sock"
    )]
    pub container_runtime_endpoint: String,
    /// Where the kubelet keeps its files (pod volumes, state).
    #[arg(long = "root-dir", default_value = "/var/lib/kubelet")]
    pub root_dir: PathBuf,
    /// Where pod log directories are created (upstream: /var/log/pods).
    #[arg(long = "pod-log-dir", default_value = "/var/log/pods")]
    pub pod_log_dir: PathBuf,
    /// Directory of static pod manifests.
    #[arg(long = "pod-manifest-path")]
    pub pod_manifest_path: Option<PathBuf>,
    /// How often `--pod-manifest-path` is re-read.
    #[arg(long = "file-check-frequency", default_value = "20s", value_parser = capstan_component_base::duration::parse_duration)]
    pub file_check_frequency: std::time::Duration,
    /// The most pods this node runs (its `pods` capacity).
    #[arg(long = "max-pods", default_value_t = 110)]
    pub max_pods: u32,
    /// Labels to add when registering the Node (`k=v,k2=v2`).
    #[arg(long = "node-labels", value_delimiter = ',')]
    pub node_labels: Vec<String>,
    /// Taints to register the Node with (`key=value:Effect,...`).
    #[arg(long = "register-with-taints", value_delimiter = ',')]
    pub register_with_taints: Vec<String>,
    /// DNS server IPs for pods with dnsPolicy ClusterFirst.
    #[arg(long = "cluster-dns", value_delimiter = ',')]
    pub cluster_dns: Vec<String>,
    /// The cluster's DNS domain, searched by pods.
    #[arg(long = "cluster-domain", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The resolver config pods' DNS is based on (upstream's default;
    /// `""` disables it: host-DNS pods then use the node's loopback).
    #[arg(long = "resolv-conf", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// The kubelet's port, published in the Node's daemonEndpoints.
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// How often pods' configMap, secret, downwardAPI and projected
    /// volumes are rewritten from the API (upstream's default, 1m).
    #[arg(long = "sync-frequency", default_value = "1m", value_parser = capstan_component_base::duration::parse_duration)]
    pub sync_frequency: std::time::Duration,
    /// Image filesystem usage (percent) at which unused images are
    /// removed (upstream's default, 85; 100 never collects).
    #[arg(long = "image-gc-high-threshold", default_value_t = 85, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_high_threshold: u8,
    /// Usage (percent) image garbage collection brings the filesystem
    /// under (upstream's default, 80).
    #[arg(long = "image-gc-low-threshold", default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_low_threshold: u8,
    /// Address the kubelet's HTTPS port listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub address: String,
    /// Serving certificate of the kubelet's port (self-signed when absent,
    /// as upstream).
    #[arg(long = "tls-cert-file", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Key of `--tls-cert-file`.
    #[arg(long = "tls-private-key-file", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA that signs the client certificates (the apiserver's) allowed on
    /// the kubelet's port; without it every request there is refused.
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,
    /// The pod CIDR used when the Node has no `spec.podCIDR`.
    #[arg(long = "pod-cidr")]
    pub pod_cidr: Option<String>,
    /// The sandbox image (informational: containerd's config chooses it).
    #[arg(long = "pod-infra-container-image")]
    pub pod_infra_container_image: Option<String>,
    /// cgroup parent of pod sandboxes (runtime default when absent).
    #[arg(long = "cgroup-root")]
    pub cgroup_root: Option<String>,
    /// How often node status is checked (and written when changed).
    #[arg(long = "node-status-update-frequency", default_value = "10s", value_parser = capstan_component_base::duration::parse_duration)]
    pub node_status_update_frequency: std::time::Duration,
    /// Longest time between node status writes even when nothing changed.
    #[arg(long = "node-status-report-frequency", default_value = "5m", value_parser = capstan_component_base::duration::parse_duration)]
    pub node_status_report_frequency: std::time::Duration,
}
