//! Command-line flags, named as upstream kube-scheduler's.

use std::path::PathBuf;
use std::time::Duration;

use capstan_component_base::duration::parse_duration;
use clap::Parser;

/// `capstan-scheduler` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "capstan-scheduler",
    version,
    about = "Binds pending pods to nodes"
)]
pub struct Options {
    /// A KubeSchedulerConfiguration file (profiles, plugins, weights).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Kubeconfig for reaching the apiserver (overrides the config file's
    /// clientConnection.kubeconfig).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Schedule pods whose spec.schedulerName is this (renames the
    /// default profile when there is no config file).
    #[arg(long = "scheduler-name")]
    pub scheduler_name: Option<String>,
    /// Run only while holding the leader lease (on by default, as
    /// upstream).
    #[arg(long = "leader-elect", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    #[arg(long = "leader-elect-lease-duration", default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    #[arg(long = "leader-elect-renew-deadline", default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    #[arg(long = "leader-elect-retry-period", default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    #[arg(long = "leader-elect-resource-name", default_value = "kube-scheduler")]
    pub leader_elect_resource_name: String,
    #[arg(
        long = "leader-elect-resource-namespace",
        default_value = "kube-system"
    )]
    pub leader_elect_resource_namespace: String,
    /// Address for /healthz and /metrics.
    #[arg(long = "bind-address", default_value = "0.0.0.0")]
    pub bind_address: String,
    /// HTTPS port for /healthz and /metrics (0 disables).
    #[arg(long = "secure-port", default_value_t = 10259)]
    pub secure_port: u16,
    /// Serving certificate; a self-signed one is generated when absent.
    #[arg(long = "tls-cert-file", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long = "tls-private-key-file", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// When given, /metrics requires a client certificate signed by this
    /// CA (health endpoints stay open, as upstream's always-allow paths).
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,
}
