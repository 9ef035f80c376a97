//! Command-line flags, named as upstream kube-controller-manager's.

use std::path::PathBuf;
use std::time::Duration;

use capstan_component_base::duration::parse_duration;
use capstan_component_base::flags::{LeaderElectionFlags, ServingFlags};
use clap::Parser;

/// `capstan-controller-manager` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "capstan-controller-manager",
    version,
    about = "Runs the controllers that move cluster state toward what users asked for",
    mut_arg("resource_name", |a| a.required(false).default_value("kube-controller-manager")),
    mut_arg("secure_port", |a| a.required(false).default_value("10257"))
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
    /// DaemonSets synced at once.
    #[arg(long = "concurrent-daemonset-syncs", default_value_t = 2)]
    pub concurrent_daemonset_syncs: usize,
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
    /// StatefulSets synced at once.
    #[arg(long = "concurrent-statefulset-syncs", default_value_t = 5)]
    pub concurrent_statefulset_syncs: usize,
    /// Services whose Endpoints are synced at once.
    #[arg(long = "concurrent-endpoint-syncs", default_value_t = 5)]
    pub concurrent_endpoint_syncs: usize,
    /// Services whose EndpointSlices are synced at once.
    #[arg(long = "concurrent-service-endpoint-syncs", default_value_t = 5)]
    pub concurrent_service_endpoint_syncs: usize,
    /// Most endpoints one EndpointSlice holds.
    #[arg(long = "max-endpoints-per-slice", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub max_endpoints_per_slice: u16,
    /// Give Nodes pod CIDRs from `--cluster-cidr` (runs `nodeipam`).
    #[arg(long = "allocate-node-cidrs", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub allocate_node_cidrs: bool,
    /// The range pod CIDRs are cut from (IPv4), e.g. 10.244.0.0/16.
    #[arg(long = "cluster-cidr")]
    pub cluster_cidr: Option<String>,
    /// Prefix length of each Node's pod CIDR.
    #[arg(long = "node-cidr-mask-size", default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Leader election.
    #[command(flatten)]
    pub leader: LeaderElectionFlags,
    /// The health/metrics endpoint.
    #[command(flatten)]
    pub serving: ServingFlags,
}
