//! Building blocks for plugin unit tests: objects from JSON, a snapshot of
//! nodes, and one way to run a plugin's Filter or Score over them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::Value;

use super::{CycleState, NodeInfo, Plugin, PodInfo, Snapshot, Status};

/// A pod from its JSON form.
pub fn pod(v: Value) -> PodInfo {
    let pod: Pod = serde_json::from_value(v).unwrap_or_else(|e| panic!("pod: {e}"));
    PodInfo::new(Arc::new(pod))
}

/// A node from its JSON form, holding `pods`.
pub fn node(v: Value, pods: Vec<PodInfo>) -> NodeInfo {
    let node: Node = serde_json::from_value(v).unwrap_or_else(|e| panic!("node: {e}"));
    let mut info = NodeInfo::new(Arc::new(node));
    for p in pods {
        info.add_pod(Arc::new(p));
    }
    info
}

/// A snapshot of these nodes.
pub fn snapshot(nodes: Vec<NodeInfo>) -> Snapshot {
    let mut s = Snapshot::default();
    for n in nodes {
        s.upsert_node(n);
    }
    s
}

/// PreFilter (which must succeed), then Filter on every node of `snap`.
pub fn filters(pl: &dyn Plugin, p: &PodInfo, snap: &Snapshot) -> Vec<Status> {
    let mut state = CycleState::default();
    assert_eq!(pl.pre_filter(&mut state, p, snap), Status::Success);
    snap.nodes.iter().map(|n| pl.filter(&state, p, n)).collect()
}

/// PreScore, then Score on every node, normalised when `normalize`;
/// `None` when PreScore skips the pod (any other failure panics).
pub fn scores(
    pl: &dyn Plugin,
    p: &PodInfo,
    nodes: &[&NodeInfo],
    snap: &Snapshot,
    normalize: bool,
) -> Option<Vec<i64>> {
    let mut state = CycleState::default();
    match pl.pre_score(&mut state, p, nodes, snap) {
        Status::Success => {}
        Status::Skip => return None,
        other => panic!("PreScore failed: {other:?}"),
    }
    let mut s: Vec<i64> = nodes.iter().map(|n| pl.score(&state, p, n)).collect();
    if normalize {
        pl.normalize_scores(&state, p, &mut s);
    }
    Some(s)
}
