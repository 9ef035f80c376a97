//! Command-line flags, named as upstream kube-scheduler's.

use std::path::PathBuf;

use capstan_component_base::flags::{LeaderElectionFlags, ServingFlags};
use clap::Parser;

/// `capstan-scheduler` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "capstan-scheduler",
    version,
    about = "Binds pending pods to nodes",
    mut_arg("resource_name", |a| a.required(false).default_value("kube-scheduler")),
    mut_arg("secure_port", |a| a.required(false).default_value("10259"))
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
    /// Leader election (the config file's `leaderElection` wins where
    /// it says something).
    #[command(flatten)]
    pub leader: LeaderElectionFlags,
    /// The health/metrics endpoint.
    #[command(flatten)]
    pub serving: ServingFlags,
}
