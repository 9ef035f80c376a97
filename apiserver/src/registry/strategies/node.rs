//! Nodes: status written by the kubelet at create, `spec.unschedulable`
//! field label, and the `kubectl get nodes` columns.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::registry::meta;
use crate::registry::strategy::{Column, Strategy};
use crate::table::{age, or_none};

/// Nodes.
pub struct NodeStrategy;

fn condition_status<'a>(obj: &'a Value, kind: &str) -> Option<&'a str> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))?
        .get("status")?
        .as_str()
}

fn address(obj: &Value, kind: &str) -> String {
    obj.pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|x| x.get("type").and_then(Value::as_str) == Some(kind))
        })
        .and_then(|x| x.get("address"))
        .and_then(Value::as_str)
        .unwrap_or("<none>")
        .to_string()
}

impl Strategy for NodeStrategy {
    fn has_status(&self) -> bool {
        true
    }

    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[("spec.unschedulable", "/spec/unschedulable")]
    }

    fn columns(&self) -> Vec<Column> {
        let c = |name, priority, description| Column {
            name,
            type_: "string",
            priority,
            description,
        };
        vec![
            Column::NAME,
            c("Status", 0, "The status of the node"),
            c("Roles", 0, "The roles of the node"),
            Column::AGE,
            c("Version", 0, "Kubelet Version reported by the node."),
            c("Internal-IP", 1, "List of internal IPs."),
            c("External-IP", 1, "List of external IPs."),
            c("OS-Image", 1, "OS image reported by the node."),
            c("Kernel-Version", 1, "Kernel version reported by the node."),
            c(
                "Container-Runtime",
                1,
                "Container runtime reported by the node.",
            ),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let mut status = match condition_status(obj, "Ready") {
            Some("True") => "Ready".to_string(),
            Some(_) => "NotReady".to_string(),
            None => "Unknown".to_string(),
        };
        if obj.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
            status.push_str(",SchedulingDisabled");
        }
        // Upstream's roles: `node-role.kubernetes.io/<role>` keys and the
        // `kubernetes.io/role` value, sorted and deduplicated.
        let roles: BTreeSet<&str> = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
                Some(role) => Some(role),
                None if k == "kubernetes.io/role" => v.as_str(),
                None => None,
            })
            .filter(|r| !r.is_empty())
            .collect();
        let info = |f: &str| {
            obj.pointer(&format!("/status/nodeInfo/{f}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let known = |s: String| if s.is_empty() { "<unknown>".into() } else { s };
        vec![
            json!(meta::name(obj)),
            json!(status),
            json!(or_none(roles.into_iter().collect::<Vec<_>>().join(","))),
            json!(age(obj)),
            json!(info("kubeletVersion")),
            json!(address(obj, "InternalIP")),
            json!(address(obj, "ExternalIP")),
            json!(known(info("osImage"))),
            json!(known(info("kernelVersion"))),
            json!(known(info("containerRuntimeVersion"))),
        ]
    }
}
