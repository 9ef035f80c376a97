//! A DaemonSet's `status` as upstream's `updateDaemonSetStatus` counts it
//! (what `kubectl get ds` and `kubectl rollout status ds` read), written
//! only when it changed.

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::placement::Fit;
use super::plan::{NodePods, is_updated, sort_oldest_first};
use crate::controllers::replicaset::pods::{is_available, is_ready};

/// The status `ds` should show for `nodes` and its `pods`.
pub fn calculate(
    ds: &DaemonSet,
    nodes: &[(String, Fit)],
    pods: &NodePods,
    hash: &str,
    now: jiff::Timestamp,
) -> DaemonSetStatus {
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        ..Default::default()
    };
    for (node, fit) in nodes {
        let mut on_node: Vec<_> = pods
            .get(node)
            .map(|p| {
                p.iter()
                    .filter(|p| !(is_terminal(p) && p.metadata.deletion_timestamp.is_some()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if !fit.should_run {
            if !on_node.is_empty() {
                status.number_misscheduled += 1;
            }
            continue;
        }
        status.desired_number_scheduled += 1;
        if on_node.is_empty() {
            continue;
        }
        status.current_number_scheduled += 1;
        sort_oldest_first(&mut on_node);
        let pod = &on_node[0];
        if is_ready(pod) {
            status.number_ready += 1;
            if is_available(pod, min_ready, now) {
                *status.number_available.get_or_insert(0) += 1;
            }
        }
        if is_updated(pod, hash) {
            *status.updated_number_scheduled.get_or_insert(0) += 1;
        }
    }
    let unavailable = status.desired_number_scheduled - status.number_available.unwrap_or(0);
    status.number_unavailable = (unavailable > 0).then_some(unavailable);
    status
}

fn is_terminal(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Writes `status` through the status subresource unless `ds` already
/// shows it; pinned to the version read, so a stale count never replaces a
/// newer one.
pub async fn write_if_changed(
    api: &Api<DaemonSet>,
    ds: &DaemonSet,
    status: &DaemonSetStatus,
) -> kube::Result<()> {
    let current = ds.status.clone().unwrap_or_default();
    if &current == status {
        return Ok(());
    }
    let mut body = serde_json::to_value(status).unwrap_or_default();
    if let Some(fields) = body.as_object_mut() {
        // A merge patch removes a field only when told to.
        for optional in [
            "numberAvailable",
            "numberUnavailable",
            "updatedNumberScheduled",
            "collisionCount",
            "conditions",
        ] {
            fields.entry(optional).or_insert(serde_json::Value::Null);
        }
    }
    let patch = json!({
        "metadata": {"resourceVersion": ds.metadata.resource_version},
        "status": body,
    });
    match api
        .patch_status(
            ds.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // A newer version is on its way through the watch; it is synced again.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::CONTROLLER_REVISION_HASH;
    use std::sync::Arc;

    #[test]
    fn counts_follow_upstream() {
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": 3},
            "spec": {"selector": {}, "template": {}},
        }))
        .expect("ds");
        let pod = |hash: &str, ready: &str| -> Arc<k8s_openapi::api::core::v1::Pod> {
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": "p", "labels": {CONTROLLER_REVISION_HASH: hash}},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}]},
                }))
                .expect("pod"),
            )
        };
        let run = Fit {
            should_run: true,
            should_continue_running: true,
        };
        let not = Fit {
            should_run: false,
            should_continue_running: false,
        };
        let nodes = vec![
            ("a".to_string(), run),
            ("b".to_string(), run),
            ("c".to_string(), run),
            ("d".to_string(), not),
        ];
        let mut pods = NodePods::new();
        pods.insert("a".into(), vec![pod("new", "True")]);
        pods.insert("b".into(), vec![pod("old", "False")]);
        pods.insert("d".into(), vec![pod("new", "True")]);
        let s = calculate(&ds, &nodes, &pods, "new", jiff::Timestamp::now());
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.desired_number_scheduled, 3);
        assert_eq!(s.current_number_scheduled, 2);
        assert_eq!(s.number_misscheduled, 1);
        assert_eq!(s.number_ready, 1);
        assert_eq!(s.number_available, Some(1));
        assert_eq!(s.updated_number_scheduled, Some(1));
        assert_eq!(s.number_unavailable, Some(2));
    }
}
