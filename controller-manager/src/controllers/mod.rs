//! The controllers, one module each, and starting the enabled ones.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod garbagecollector;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod service_pods;
pub mod serviceaccount;
pub mod statefulset;
pub mod ttl_after_finished;

use anyhow::{Result, anyhow};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use tokio::task::JoinSet;

use crate::metrics::Metrics;

/// Per-controller settings from the flags.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Workers of the ReplicaSet controller.
    pub concurrent_replicaset_syncs: usize,
    /// Workers of the ReplicationController controller.
    pub concurrent_rc_syncs: usize,
    /// Workers of the Deployment controller.
    pub concurrent_deployment_syncs: usize,
    /// Workers of the DaemonSet controller.
    pub concurrent_daemonset_syncs: usize,
    /// Workers of the Namespace controller.
    pub concurrent_namespace_syncs: usize,
    /// Workers of the garbage collector.
    pub concurrent_gc_syncs: usize,
    /// Terminated pods kept by the pod garbage collector.
    pub terminated_pod_gc_threshold: usize,
    /// Node lifecycle's period and grace.
    pub node_lifecycle: nodelifecycle::Timings,
    /// Workers of the Job controller.
    pub concurrent_job_syncs: usize,
    /// Workers of the CronJob controller.
    pub concurrent_cron_job_syncs: usize,
    /// Workers of the TTL-after-finished controller.
    pub concurrent_ttl_after_finished_syncs: usize,
    /// Workers of the StatefulSet controller.
    pub concurrent_statefulset_syncs: usize,
    /// Workers of the Endpoints controller.
    pub concurrent_endpoint_syncs: usize,
    /// The EndpointSlice controller's workers and slice size.
    pub endpointslice: endpointslice::Settings,
}

/// Starts every controller in `enabled`; returns (with an error) only if
/// one of them stops.
pub async fn run(
    client: kube::Client,
    metrics: Metrics,
    enabled: &[&'static str],
    settings: Settings,
    nodeipam: Option<nodeipam::Settings>,
    identity: String,
) -> Result<()> {
    let mut tasks = JoinSet::new();
    for &name in enabled {
        let client = client.clone();
        let metrics = metrics.clone();
        let identity = identity.clone();
        match name {
            "replicaset" => tasks.spawn(async move {
                let r = replicaset::run::<ReplicaSet>(
                    client,
                    metrics,
                    settings.concurrent_replicaset_syncs,
                    &identity,
                )
                .await;
                (name, r)
            }),
            "replicationcontroller" => tasks.spawn(async move {
                let r = replicaset::run::<ReplicationController>(
                    client,
                    metrics,
                    settings.concurrent_rc_syncs,
                    &identity,
                )
                .await;
                (name, r)
            }),
            "deployment" => tasks.spawn(async move {
                let r = deployment::run(
                    client,
                    metrics,
                    settings.concurrent_deployment_syncs,
                    &identity,
                )
                .await;
                (name, r)
            }),
            "daemonset" => tasks.spawn(async move {
                let r = daemonset::run(
                    client,
                    metrics,
                    settings.concurrent_daemonset_syncs,
                    &identity,
                )
                .await;
                (name, r)
            }),
            "statefulset" => tasks.spawn(async move {
                let r = statefulset::run(
                    client,
                    metrics,
                    settings.concurrent_statefulset_syncs,
                    &identity,
                )
                .await;
                (name, r)
            }),
            "serviceaccount" => {
                tasks.spawn(async move { (name, serviceaccount::run(client, metrics).await) })
            }
            "disruption" => {
                tasks.spawn(async move { (name, disruption::run(client, metrics).await) })
            }
            "garbagecollector" => tasks.spawn(async move {
                let r = garbagecollector::run(client, metrics, settings.concurrent_gc_syncs).await;
                (name, r)
            }),
            "node-lifecycle" => tasks.spawn(async move {
                let r = nodelifecycle::run(client, metrics, settings.node_lifecycle).await;
                (name, r)
            }),
            "pod-garbage-collector" => tasks.spawn(async move {
                let r = podgc::run(client, metrics, settings.terminated_pod_gc_threshold).await;
                (name, r)
            }),
            "namespace" => tasks.spawn(async move {
                let r = namespace::run(client, metrics, settings.concurrent_namespace_syncs).await;
                (name, r)
            }),
            "job" => tasks.spawn(async move {
                let r = job::run(client, metrics, settings.concurrent_job_syncs, &identity).await;
                (name, r)
            }),
            "cronjob" => tasks.spawn(async move {
                let r = cronjob::run(
                    client,
                    metrics,
                    settings.concurrent_cron_job_syncs,
                    &identity,
                )
                .await;
                (name, r)
            }),
            "ttl-after-finished" => tasks.spawn(async move {
                let r = ttl_after_finished::run(
                    client,
                    metrics,
                    settings.concurrent_ttl_after_finished_syncs,
                )
                .await;
                (name, r)
            }),
            "endpoint" => tasks.spawn(async move {
                let r = endpoints::run(client, metrics, settings.concurrent_endpoint_syncs).await;
                (name, r)
            }),
            "endpointslice" => tasks.spawn(async move {
                let r = endpointslice::run(client, metrics, settings.endpointslice).await;
                (name, r)
            }),
            "nodeipam" => {
                let ipam = nodeipam.clone().ok_or_else(|| {
                    anyhow!("nodeipam needs --allocate-node-cidrs and --cluster-cidr")
                })?;
                tasks.spawn(async move {
                    let r = nodeipam::run(client, metrics, ipam, &identity).await;
                    (name, r)
                })
            }
            other => return Err(anyhow!("controller {other:?} is not implemented")),
        };
    }
    match tasks.join_next().await {
        Some(Ok((name, Err(e)))) => Err(e.context(format!("controller {name} failed"))),
        Some(Ok((name, Ok(())))) => Err(anyhow!("controller {name} stopped")),
        Some(Err(e)) => Err(anyhow!("a controller task failed: {e}")),
        None => std::future::pending().await,
    }
}
