//! Command-line flags, named as upstream's kube-proxy names them.

use std::path::PathBuf;
use std::time::Duration;

use capstan_component_base::duration::parse_duration;
use clap::Parser;

/// `capstan-proxy` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "capstan-proxy",
    version,
    about = "The Capstan node proxy: Services and EndpointSlices become nftables rules",
    args_override_self = true
)]
pub struct Options {
    /// Kubeconfig with the apiserver's address and credentials.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// This node's name instead of the machine's hostname (matches
    /// EndpointSlice `nodeName` for the Local traffic policies).
    #[arg(long = "hostname-override")]
    pub hostname_override: Option<String>,
    /// Pod CIDRs of the cluster (comma-separated): traffic to a cluster IP
    /// from outside them is masqueraded.
    #[arg(long = "cluster-cidr", value_delimiter = ',')]
    pub cluster_cidr: Vec<String>,
    /// CIDRs (comma-separated) of the node addresses NodePorts answer on;
    /// empty: every local address but loopback.
    #[arg(long = "nodeport-addresses", value_delimiter = ',')]
    pub nodeport_addresses: Vec<String>,
    /// Masquerade all traffic to cluster IPs.
    #[arg(long = "masquerade-all", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub masquerade_all: bool,
    /// The longest time between syncs of the rules.
    #[arg(long = "sync-period", default_value = "30s", value_parser = parse_duration)]
    pub sync_period: Duration,
    /// The shortest time between syncs: changes within it are batched.
    #[arg(long = "min-sync-period", default_value = "1s", value_parser = parse_duration)]
    pub min_sync_period: Duration,
    /// `ip:port` of the plain-HTTP `/healthz` and `/livez` server; empty
    /// disables it.
    #[arg(long = "healthz-bind-address", default_value = "0.0.0.0:10256")]
    pub healthz_bind_address: String,
    /// `ip:port` of the plain-HTTP `/metrics` server; empty disables it.
    #[arg(long = "metrics-bind-address", default_value = "127.0.0.1:10249")]
    pub metrics_bind_address: String,
    /// Remove the proxy's nftables table and exit.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub cleanup: bool,
    /// The dataplane; only `nftables` exists in Capstan.
    #[arg(long = "proxy-mode", default_value = "nftables")]
    pub proxy_mode: String,
}
