//! `capstan-controller-manager`: upstream's kube-controller-manager for
//! Capstan. Every controller is a level-triggered reconcile loop on the
//! `kube` crate's runtime (informer stores, a work queue of keys, a
//! `reconcile(key)` that moves one step toward desired state and is safe
//! to repeat), run only while this replica holds the leader Lease. It
//! talks to the apiserver over HTTPS like any client, never to storage.

pub mod controllers;
pub mod hash;
pub mod history;
pub mod informer;
pub mod intstr;
pub mod metrics;
pub mod options;
pub mod queue;
pub mod recorder;
pub mod runner;
pub mod selection;

use std::sync::Arc;

use anyhow::Result;
use capstan_component_base::leader;
use capstan_component_base::{client, health, shutdown_signal};

use crate::controllers::Settings;
use crate::metrics::Metrics;
use crate::options::Options;

/// Runs the enabled controllers until a shutdown signal (or lost
/// leadership, which is an error so the process exits and restarts clean).
pub async fn run(opts: Options) -> Result<()> {
    let mut enabled = selection::enabled_controllers(&opts.controllers)?;
    // As upstream, node IPAM runs only when asked to allocate CIDRs.
    let nodeipam = if opts.allocate_node_cidrs {
        let cluster_cidr = opts
            .cluster_cidr
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--allocate-node-cidrs needs --cluster-cidr"))?;
        let settings = controllers::nodeipam::Settings {
            cluster_cidr,
            node_cidr_mask_size: opts.node_cidr_mask_size,
        };
        // A bad range stops the process at start, not later.
        controllers::nodeipam::CidrSet::new(&settings.cluster_cidr, settings.node_cidr_mask_size)?;
        Some(settings)
    } else {
        enabled.retain(|c| *c != controllers::nodeipam::NAME);
        None
    };
    let election = opts.leader.config()?;
    let client = client::client(opts.kubeconfig.as_deref()).await?;
    let metrics = Metrics::new()?;
    let render = {
        let metrics = metrics.clone();
        Arc::new(move || metrics.render())
    };
    health::serve(&opts.serving.config(), render).await?;
    let settings = Settings {
        concurrent_replicaset_syncs: opts.concurrent_replicaset_syncs,
        concurrent_rc_syncs: opts.concurrent_rc_syncs,
        concurrent_namespace_syncs: opts.concurrent_namespace_syncs,
        concurrent_deployment_syncs: opts.concurrent_deployment_syncs,
        concurrent_daemonset_syncs: opts.concurrent_daemonset_syncs,
        concurrent_gc_syncs: opts.concurrent_gc_syncs,
        terminated_pod_gc_threshold: opts.terminated_pod_gc_threshold,
        node_lifecycle: controllers::nodelifecycle::Timings {
            period: opts.node_monitor_period,
            grace: opts.node_monitor_grace_period,
        },
        concurrent_job_syncs: opts.concurrent_job_syncs,
        concurrent_cron_job_syncs: opts.concurrent_cron_job_syncs,
        concurrent_ttl_after_finished_syncs: opts.concurrent_ttl_after_finished_syncs,
        concurrent_statefulset_syncs: opts.concurrent_statefulset_syncs,
        concurrent_endpoint_syncs: opts.concurrent_endpoint_syncs,
        endpointslice: controllers::endpointslice::Settings {
            workers: opts.concurrent_service_endpoint_syncs,
            max_endpoints_per_slice: usize::from(opts.max_endpoints_per_slice),
        },
    };
    let identity = election
        .as_ref()
        .map(|e| e.identity.clone())
        .unwrap_or_else(leader::default_identity);
    let work = {
        let client = client.clone();
        let metrics = metrics.clone();
        async move {
            metrics.leader.set(1);
            controllers::run(client, metrics, &enabled, settings, nodeipam, identity).await
        }
    };
    let work = async move {
        match election {
            Some(cfg) => leader::run_as_leader(client, cfg, work).await,
            None => work.await,
        }
    };
    tokio::select! {
        result = work => result,
        _ = shutdown_signal() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn election(
        flags: &[&str],
    ) -> Result<Option<capstan_component_base::leader::LeaderElectionConfig>> {
        let mut args = vec!["capstan-controller-manager"];
        args.extend_from_slice(flags);
        Options::parse_from(args).leader.config()
    }

    #[test]
    fn the_lease_is_upstreams_and_its_timings_are_checked() {
        let cfg = election(&[]).ok().flatten();
        assert_eq!(
            cfg.map(|c| (c.namespace, c.name)),
            Some(("kube-system".into(), "kube-controller-manager".into()))
        );
        assert!(election(&["--leader-elect=false"]).is_ok_and(|c| c.is_none()));
        assert!(election(&["--leader-elect-renew-deadline=20s"]).is_err());
    }

    #[test]
    fn defaults_match_upstream() {
        let opts = Options::parse_from(["capstan-controller-manager"]);
        assert_eq!(opts.serving.secure_port, 10257);
        assert_eq!(opts.concurrent_replicaset_syncs, 5);
        assert_eq!(
            (opts.concurrent_job_syncs, opts.concurrent_cron_job_syncs),
            (5, 5)
        );
        assert_eq!(opts.concurrent_statefulset_syncs, 5);
        assert_eq!(opts.controllers, vec!["*".to_string()]);
        assert_eq!(
            (
                opts.concurrent_endpoint_syncs,
                opts.concurrent_service_endpoint_syncs,
                opts.max_endpoints_per_slice
            ),
            (5, 5, 100)
        );
        assert_eq!(
            (opts.allocate_node_cidrs, opts.node_cidr_mask_size),
            (false, 24)
        );
        let ipam = Options::parse_from([
            "capstan-controller-manager",
            "--allocate-node-cidrs",
            "--cluster-cidr=10.244.0.0/16",
        ]);
        assert!(ipam.allocate_node_cidrs);
        assert_eq!(ipam.cluster_cidr.as_deref(), Some("10.244.0.0/16"));
        let opts =
            Options::parse_from(["capstan-controller-manager", "--controllers=*,-namespace"]);
        assert_eq!(opts.controllers, vec!["*".to_string(), "-namespace".into()]);
    }
}
