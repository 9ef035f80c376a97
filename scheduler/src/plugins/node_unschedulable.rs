//! NodeUnschedulable: keeps pods off cordoned nodes (`spec.unschedulable`),
//! as upstream's plugin of the same name.

use k8s_openapi::api::core::v1::Taint;
use serde_json::Value;

use crate::framework::{CycleState, NodeInfo, Plugin, PodInfo, Status};
use capstan_component_helpers::scheduling::tolerates;

/// Upstream's `ErrReasonUnschedulable`.
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";

/// The taint a cordoned node is treated as having: a pod that tolerates it
/// (DaemonSet pods do) may still land on the node.
const UNSCHEDULABLE_TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

/// Rejects nodes marked unschedulable unless the pod tolerates
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub struct NodeUnschedulable;

impl NodeUnschedulable {
    /// Builds the plugin; it takes no args.
    pub fn new(_args: &Value) -> Result<Self, String> {
        Ok(NodeUnschedulable)
    }
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let cordoned = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !cordoned {
            return Status::Success;
        }
        let taint = Taint {
            key: UNSCHEDULABLE_TAINT_KEY.to_string(),
            effect: "NoSchedule".to_string(),
            ..Taint::default()
        };
        let tolerated = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_ref())
            .is_some_and(|tols| tols.iter().any(|t| tolerates(t, &taint)));
        if tolerated {
            Status::Success
        } else {
            Status::unresolvable(ERR_REASON_UNSCHEDULABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;
    use std::sync::Arc;

    fn pod(spec: Value) -> PodInfo {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": spec,
        }))
        .expect("pod");
        PodInfo::new(Arc::new(pod))
    }

    fn node(unschedulable: bool) -> NodeInfo {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": unschedulable},
        }))
        .expect("node");
        NodeInfo::new(Arc::new(node))
    }

    fn run(p: &PodInfo, n: &NodeInfo) -> Status {
        NodeUnschedulable.filter(&CycleState::default(), p, n)
    }

    #[test]
    fn cordoned_node_rejects_pod_as_unresolvable() {
        let p = pod(json!({"containers": [{"name": "c"}]}));
        assert_eq!(run(&p, &node(false)), Status::Success);
        assert_eq!(
            run(&p, &node(true)),
            Status::UnschedulableAndUnresolvable(vec!["node(s) were unschedulable".into()])
        );
    }

    #[test]
    fn pod_tolerating_unschedulable_taint_may_use_cordoned_node() {
        let exact = pod(json!({"containers": [{"name": "c"}], "tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
        ]}));
        assert_eq!(run(&exact, &node(true)), Status::Success);
        let everything =
            pod(json!({"containers": [{"name": "c"}], "tolerations": [{"operator": "Exists"}]}));
        assert_eq!(run(&everything, &node(true)), Status::Success);
        let wrong_effect = pod(json!({"containers": [{"name": "c"}], "tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoExecute"}
        ]}));
        assert!(!run(&wrong_effect, &node(true)).is_success());
    }
}
