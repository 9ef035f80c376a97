//! The pod garbage collector (upstream's `pod-garbage-collector`): every
//! [`CHECK_PERIOD`] it deletes the oldest terminated pods beyond
//! `--terminated-pod-gc-threshold`, and force-deletes pods bound to nodes
//! that no longer exist (after [`QUARANTINE`], confirmed with the API),
//! first marking them Failed with a `DisruptionTarget` condition as
//! upstream does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use serde_json::json;

use crate::informer;
use crate::metrics::Metrics;

/// The controller's name, as upstream's `--controllers` spells it.
pub const NAME: &str = "pod-garbage-collector";

/// How often the collector looks (upstream's `gcCheckPeriod`).
const CHECK_PERIOD: Duration = Duration::from_secs(20);

/// How long a node must be missing from the cache before its pods are
/// checked against the API (upstream's `quarantineTime`).
const QUARANTINE: Duration = Duration::from_secs(40);

/// Runs the collector until the process stops.
pub async fn run(client: kube::Client, metrics: Metrics, threshold: usize) -> Result<()> {
    let pods = informer::spawn(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        |_| {},
    );
    let nodes = informer::spawn(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        |_| {},
    );
    pods.wait_until_ready().await?;
    nodes.wait_until_ready().await?;
    let mut missing_since: HashMap<String, Instant> = HashMap::new();
    let passes = metrics.reconciles.with_label_values(&[NAME, "success"]);
    let failures = metrics.reconciles.with_label_values(&[NAME, "error"]);
    loop {
        let outcome = async {
            gc_terminated(&client, &pods, threshold).await?;
            gc_orphaned(&client, &pods, &nodes, &mut missing_since).await
        }
        .await;
        match outcome {
            Ok(()) => passes.inc(),
            Err(e) => {
                failures.inc();
                tracing::warn!(error = %format!("{e:#}"), "pod garbage collection failed");
            }
        }
        tokio::time::sleep(CHECK_PERIOD).await;
    }
}

fn is_terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn api_of(client: &kube::Client, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

/// The names of the terminated pods to delete: the oldest beyond
/// `threshold` (0 turns this off, as upstream).
fn excess_terminated(pods: &[std::sync::Arc<Pod>], threshold: usize) -> Vec<std::sync::Arc<Pod>> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut terminated: Vec<_> = pods.iter().filter(|p| is_terminated(p)).cloned().collect();
    if terminated.len() <= threshold {
        return Vec::new();
    }
    terminated.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
            .then(a.metadata.name.cmp(&b.metadata.name))
    });
    let excess = terminated.len() - threshold;
    terminated.truncate(excess);
    terminated
}

async fn gc_terminated(client: &kube::Client, pods: &Store<Pod>, threshold: usize) -> Result<()> {
    for pod in excess_terminated(&pods.state(), threshold) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        tracing::info!(pod = %name, "deleting a terminated pod over the threshold");
        match api_of(client, &pod)
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn gc_orphaned(
    client: &kube::Client,
    pods: &Store<Pod>,
    nodes: &Store<Node>,
    missing_since: &mut HashMap<String, Instant>,
) -> Result<()> {
    let known: std::collections::HashSet<String> = nodes
        .state()
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let bound: Vec<_> = pods
        .state()
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
        .collect();
    let now = Instant::now();
    missing_since.retain(|node, _| !known.contains(node));
    let node_api: Api<Node> = Api::all(client.clone());
    for pod in bound {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if known.contains(&node) {
            continue;
        }
        let since = *missing_since.entry(node.clone()).or_insert(now);
        if now.duration_since(since) < QUARANTINE || node_api.get_opt(&node).await?.is_some() {
            continue;
        }
        delete_orphan(client, &pod, &node).await?;
    }
    Ok(())
}

/// Marks an orphaned pod Failed with upstream's condition, then deletes
/// it with no grace (no kubelet will ever stop it).
async fn delete_orphan(client: &kube::Client, pod: &Pod, node: &str) -> Result<()> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api = api_of(client, pod);
    tracing::info!(pod = %name, node, "deleting a pod whose node is gone");
    if !is_terminated(pod) {
        let status = json!({"status": {
            "phase": "Failed",
            "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists", "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}]
        }});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&status))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(anyhow!("marking pod {name} failed: {e}")),
        }
    }
    match api
        .delete(&name, &DeleteParams::default().grace_period(0))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pod(name: &str, created: &str, phase: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "creationTimestamp": created},
                "status": {"phase": phase}
            }))
            .unwrap_or_default(),
        )
    }

    #[test]
    fn the_oldest_terminated_pods_beyond_the_threshold_go() {
        let pods = vec![
            pod("new-done", "2026-01-03T00:00:00Z", "Succeeded"),
            pod("running", "2026-01-01T00:00:00Z", "Running"),
            pod("old-failed", "2026-01-01T00:00:00Z", "Failed"),
            pod("mid-done", "2026-01-02T00:00:00Z", "Succeeded"),
        ];
        let names = |v: Vec<Arc<Pod>>| -> Vec<String> {
            v.iter().filter_map(|p| p.metadata.name.clone()).collect()
        };
        assert_eq!(
            names(excess_terminated(&pods, 1)),
            ["old-failed", "mid-done"]
        );
        assert!(excess_terminated(&pods, 3).is_empty());
        assert!(excess_terminated(&pods, 0).is_empty(), "0 turns it off");
    }
}
