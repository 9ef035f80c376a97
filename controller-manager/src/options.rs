//! Command-line flags, named as upstream kube-controller-manager's.

use std::path::PathBuf;
use std::time::Duration;

use capstan_component_base::duration::parse_duration;
use capstan_component_base::health::ServingConfig;
use clap::Parser;

/// `capstan-controller-manager` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "capstan-controller-manager",
    version,
    about = "Runs the controllers that move cluster state toward what users asked for"
)]
pub struct Options {
    /// Kubeconfig for reaching the apiserver.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Controllers to run: `*` runs the default ones, `name` enables one,
    /// `-name` disables one; the first entry naming a controller wins.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// ReplicaSets synced at once.
    #[arg(long = "concurrent-replicaset-syncs", default_value_t = 5)]
    pub concurrent_replicaset_syncs: usize,
    /// ReplicationControllers synced at once.
    #[arg(long = "concurrent-rc-syncs", default_value_t = 5)]
    pub concurrent_rc_syncs: usize,
    /// Deployments synced at once.
    #[arg(long = "concurrent-deployment-syncs", default_value_t = 5)]
    pub concurrent_deployment_syncs: usize,
    /// Namespaces emptied at once.
    #[arg(long = "concurrent-namespace-syncs", default_value_t = 10)]
    pub concurrent_namespace_syncs: usize,
    /// Workers of the garbage collector (upstream's default 20).
    #[arg(long = "concurrent-gc-syncs", default_value_t = 20)]
    pub concurrent_gc_syncs: usize,
    /// How often node lifecycle checks nodes' heartbeats.
    #[arg(long = "node-monitor-period", default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// How long a node may be silent before it is marked Unknown and
    /// tainted unreachable.
    #[arg(long = "node-monitor-grace-period", default_value = "50s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// Terminated pods kept before the oldest are deleted (0: keep all).
    #[arg(long = "terminated-pod-gc-threshold", default_value_t = 12500)]
    pub terminated_pod_gc_threshold: usize,
    /// Jobs synced at once.
    #[arg(long = "concurrent-job-syncs", default_value_t = 5)]
    pub concurrent_job_syncs: usize,
    /// CronJobs synced at once.
    #[arg(long = "concurrent-cron-job-syncs", default_value_t = 5)]
    pub concurrent_cron_job_syncs: usize,
    /// Finished Jobs checked for expiry at once.
    #[arg(long = "concurrent-ttl-after-finished-syncs", default_value_t = 5)]
    pub concurrent_ttl_after_finished_syncs: usize,
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
    #[arg(
        long = "leader-elect-resource-name",
        default_value = "kube-controller-manager"
    )]
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
    #[arg(long = "secure-port", default_value_t = 10257)]
    pub secure_port: u16,
    /// Serving certificate; a self-signed one is generated when absent.
    #[arg(long = "tls-cert-file", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long = "tls-private-key-file", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// When given, /metrics requires a client certificate signed by this
    /// CA (health endpoints stay open).
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,
}

impl Options {
    /// The health/metrics endpoint settings.
    pub fn serving(&self) -> ServingConfig {
        ServingConfig {
            bind_address: self.bind_address.clone(),
            secure_port: self.secure_port,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_private_key_file: self.tls_private_key_file.clone(),
            client_ca_file: self.client_ca_file.clone(),
        }
    }
}
