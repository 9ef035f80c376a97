//! Which pods go first when scaling down, upstream's
//! `ActivePodsWithRanks` order: unscheduled before scheduled, pending
//! before unknown before running, not ready before ready, lower
//! `controller.kubernetes.io/pod-deletion-cost` first, pods doubled up on
//! a node first, ready for a shorter time first, more restarts first,
//! newer first.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::pods;

/// The annotation users set to steer which pods are deleted first.
const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn node(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn created(pod: &Pod) -> Option<jiff::Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// `pods` in the order they should be deleted. `related` (the pods the
/// rank counts per node) includes `pods`.
pub fn deletion_order(pods: &[Arc<Pod>], related: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in related {
        let n = node(p);
        if !n.is_empty() {
            *per_node.entry(n).or_default() += 1;
        }
    }
    let rank = |p: &Pod| per_node.get(node(p)).copied().unwrap_or(0);
    let mut order: Vec<Arc<Pod>> = pods.to_vec();
    order.sort_by(|a, b| {
        let (a, b) = (a.as_ref(), b.as_ref());
        // Unscheduled first.
        (!node(a).is_empty())
            .cmp(&!node(b).is_empty())
            .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
            .then_with(|| pods::is_ready(a).cmp(&pods::is_ready(b)))
            .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
            // More pods of the set on the same node first.
            .then_with(|| rank(b).cmp(&rank(a)))
            .then_with(|| ready_order(a, b))
            .then_with(|| restarts(b).cmp(&restarts(a)))
            // Newer first; no timestamp counts as newest.
            .then_with(|| match (created(a), created(b)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => y.cmp(&x),
            })
    });
    order
}

/// Both ready: the one ready for less time first.
fn ready_order(a: &Pod, b: &Pod) -> Ordering {
    match (
        pods::ready_since(a).flatten(),
        pods::ready_since(b).flatten(),
    ) {
        (Some(x), Some(y)) => y.cmp(&x),
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created: &str) -> Arc<Pod> {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": []},
            "status": {
                "phase": phase,
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                                "lastTransitionTime": created}],
            },
        }))
        .unwrap();
        Arc::new(p)
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn unscheduled_then_pending_then_not_ready_then_newer_go_first() {
        let old_ready = pod("old-ready", "n1", "Running", true, "2024-01-01T00:00:00Z");
        let new_ready = pod("new-ready", "n2", "Running", true, "2024-01-02T00:00:00Z");
        let not_ready = pod("not-ready", "n4", "Running", false, "2023-01-01T00:00:00Z");
        let pending = pod("pending", "n3", "Pending", false, "2023-01-01T00:00:00Z");
        let unscheduled = pod("unscheduled", "", "Pending", false, "2020-01-01T00:00:00Z");
        let all = vec![
            old_ready.clone(),
            new_ready.clone(),
            not_ready.clone(),
            pending.clone(),
            unscheduled.clone(),
        ];
        assert_eq!(
            names(&deletion_order(&all, &all)),
            vec![
                "unscheduled",
                "pending",
                "not-ready",
                "new-ready",
                "old-ready"
            ]
        );
    }

    #[test]
    fn pods_doubled_up_on_a_node_go_before_lone_ones() {
        let a = pod("a", "n1", "Running", true, "2024-01-01T00:00:00Z");
        let b = pod("b", "n1", "Running", true, "2024-01-01T00:00:00Z");
        let c = pod("c", "n2", "Running", true, "2024-01-03T00:00:00Z");
        let all = vec![a, b, c];
        assert_eq!(names(&deletion_order(&all, &all))[2], "c");
    }
}
