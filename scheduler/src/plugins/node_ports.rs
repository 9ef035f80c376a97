//! NodePorts: a host port can be bound by one pod per node, so pods that
//! claim host ports go only where those ports are free, as upstream's
//! plugin of the same name.

use serde_json::Value;

use crate::framework::{CycleState, NodeInfo, Plugin, PodInfo, Snapshot, Status};

/// Upstream's `ErrReason`.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// Rejects nodes where a host port the pod wants is already taken.
pub struct NodePorts;

impl NodePorts {
    /// Builds the plugin; it takes no args.
    pub fn new(_args: &Value) -> Result<Self, String> {
        Ok(NodePorts)
    }
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    /// Nothing to check for a pod without host ports.
    fn pre_filter(&self, _state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> Status {
        if pod.host_ports.is_empty() {
            Status::Skip
        } else {
            Status::Success
        }
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let conflict = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| want.conflicts(used)));
        if conflict {
            Status::unschedulable(ERR_REASON)
        } else {
            Status::Success
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;
    use std::sync::Arc;

    fn pod(name: &str, ports: Value) -> PodInfo {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"containers": [{"name": "c", "ports": ports}]},
        }))
        .expect("pod");
        PodInfo::new(Arc::new(pod))
    }

    fn node_with(pods: Vec<PodInfo>) -> NodeInfo {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n"}})).expect("node");
        let mut info = NodeInfo::new(Arc::new(node));
        for p in pods {
            info.add_pod(Arc::new(p));
        }
        info
    }

    fn run(p: &PodInfo, n: &NodeInfo) -> Status {
        NodePorts.filter(&CycleState::default(), p, n)
    }

    #[test]
    fn pod_without_host_ports_skips() {
        let p = pod("p", json!([{"containerPort": 80}]));
        assert_eq!(
            NodePorts.pre_filter(&mut CycleState::default(), &p, &Snapshot::default()),
            Status::Skip
        );
        let hp = pod("hp", json!([{"containerPort": 80, "hostPort": 8080}]));
        assert_eq!(
            NodePorts.pre_filter(&mut CycleState::default(), &hp, &Snapshot::default()),
            Status::Success
        );
    }

    #[test]
    fn taken_host_port_rejects_node() {
        let busy = node_with(vec![pod(
            "old",
            json!([{"containerPort": 80, "hostPort": 8080}]),
        )]);
        let free = node_with(vec![]);
        let p = pod("new", json!([{"containerPort": 80, "hostPort": 8080}]));
        assert_eq!(
            run(&p, &busy),
            Status::Unschedulable(vec![
                "node(s) didn't have free ports for the requested pod ports".into()
            ])
        );
        assert!(run(&p, &free).is_success());
    }

    #[test]
    fn different_protocol_or_address_does_not_conflict() {
        let n = node_with(vec![pod(
            "old",
            json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}]),
        )]);
        let tcp = pod("tcp", json!([{"containerPort": 53, "hostPort": 53}]));
        assert!(run(&tcp, &n).is_success());
        let other_ip = pod(
            "ip",
            json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.2"}]),
        );
        assert!(run(&other_ip, &n).is_success());
        let any_ip = pod(
            "any",
            json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}]),
        );
        assert!(!run(&any_ip, &n).is_success());
    }
}
