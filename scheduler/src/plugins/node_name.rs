//! NodeName: honours a pod's `spec.nodeName` when the scheduler is asked to
//! place it anyway, as upstream's plugin of the same name.

use serde_json::Value;

use crate::framework::{CycleState, NodeInfo, Plugin, PodInfo, Status};

/// Upstream's `ErrReason`.
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

/// Rejects every node but the one a pod names in `spec.nodeName`.
pub struct NodeName;

impl NodeName {
    /// Builds the plugin; it takes no args.
    pub fn new(_args: &Value) -> Result<Self, String> {
        Ok(NodeName)
    }
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let wanted = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        if wanted.is_empty() || wanted == node.name {
            Status::Success
        } else {
            Status::unresolvable(ERR_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;
    use std::sync::Arc;

    fn pod(node_name: Option<&str>) -> PodInfo {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c"}], "nodeName": node_name},
        }))
        .expect("pod");
        PodInfo::new(Arc::new(pod))
    }

    fn node(name: &str) -> NodeInfo {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
        NodeInfo::new(Arc::new(node))
    }

    #[test]
    fn only_the_named_node_fits() {
        let state = CycleState::default();
        let p = pod(Some("n1"));
        assert_eq!(NodeName.filter(&state, &p, &node("n1")), Status::Success);
        assert_eq!(
            NodeName.filter(&state, &p, &node("n2")),
            Status::UnschedulableAndUnresolvable(vec![
                "node(s) didn't match the requested node name".into()
            ])
        );
    }

    #[test]
    fn pod_without_node_name_fits_anywhere() {
        let state = CycleState::default();
        assert!(
            NodeName
                .filter(&state, &pod(None), &node("n2"))
                .is_success()
        );
        assert!(
            NodeName
                .filter(&state, &pod(Some("")), &node("n2"))
                .is_success()
        );
    }
}
