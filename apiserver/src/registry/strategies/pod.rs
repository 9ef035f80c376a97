//! Pods: defaulting, QoS class, the immutable spec, graceful deletion and
//! upstream's `kubectl get pods` columns.

use serde_json::{Value, json};

use super::podspec::{default_pod_spec, validate_pod_spec};
use crate::error::FieldError;
use crate::registry::meta;
use crate::registry::strategy::{Column, Strategy};
use crate::table::{age, text_or_none};

/// Pods.
pub struct PodStrategy;

/// Upstream's QoS class from the containers' requests and limits.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let res = c.get("resources");
        let requests = res
            .and_then(|r| r.get("requests"))
            .and_then(Value::as_object);
        let limits = res.and_then(|r| r.get("limits")).and_then(Value::as_object);
        for m in [requests, limits].into_iter().flatten() {
            if m.contains_key("cpu") || m.contains_key("memory") {
                any = true;
            }
        }
        for r in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(r));
            let request = requests.and_then(|q| q.get(r)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Blanks the spec fields a pod update may change, so the rest can be
/// compared for equality.
fn mutable_fields_cleared(spec: &Value) -> Value {
    let mut s = spec.clone();
    for list in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(m) = c.as_object_mut() {
                    m.remove("image");
                }
            }
        }
    }
    if let Some(m) = s.as_object_mut() {
        for f in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
            "schedulingGates",
        ] {
            m.remove(f);
        }
    }
    s
}

/// Scheduling gates may only be removed once a pod exists (upstream's
/// rule): a gate in `new` that `old` lacks is refused.
fn added_scheduling_gates(new_spec: &Value, old_spec: &Value) -> Vec<FieldError> {
    let names = |spec: &Value| -> Vec<String> {
        spec.get("schedulingGates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    let old = names(old_spec);
    names(new_spec)
        .into_iter()
        .filter(|n| !old.contains(n))
        .map(|n| {
            FieldError::forbidden(
                "spec.schedulingGates",
                &format!("only deletion is allowed, but found new scheduling gate '{n}'"),
            )
        })
        .collect()
}

fn container_statuses(obj: &Value) -> Vec<&Value> {
    obj.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The STATUS column: the pod phase, or a more telling container reason.
fn display_status(obj: &Value) -> String {
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let mut status = obj
        .pointer("/status/reason")
        .or_else(|| obj.pointer("/status/phase"))
        .and_then(Value::as_str)
        .unwrap_or("Pending")
        .to_string();
    for cs in container_statuses(obj) {
        let waiting = cs.pointer("/state/waiting/reason").and_then(Value::as_str);
        let terminated = cs
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str);
        if let Some(r) = waiting.or(terminated).filter(|r| !r.is_empty()) {
            status = r.to_string();
        }
    }
    status
}

impl Strategy for PodStrategy {
    fn has_status(&self) -> bool {
        true
    }

    fn apply_defaults(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_pod_spec(spec);
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let qos = qos_class(obj.get("spec").unwrap_or(&Value::Null));
        obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        match obj.get("spec") {
            Some(spec) => validate_pod_spec("spec", spec),
            None => vec![FieldError::required("spec", "")],
        }
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        let (new_spec, old_spec) = (
            new.get("spec").unwrap_or(&Value::Null),
            old.get("spec").unwrap_or(&Value::Null),
        );
        if mutable_fields_cleared(new_spec) != mutable_fields_cleared(old_spec) {
            errs.push(FieldError::forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            ));
        }
        errs.extend(added_scheduling_gates(new_spec, old_spec));
        errs
    }

    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("spec.nodeName", "/spec/nodeName"),
            ("spec.restartPolicy", "/spec/restartPolicy"),
            ("spec.schedulerName", "/spec/schedulerName"),
            ("spec.serviceAccountName", "/spec/serviceAccountName"),
            ("spec.hostNetwork", "/spec/hostNetwork"),
            ("status.phase", "/status/phase"),
            ("status.podIP", "/status/podIP"),
            ("status.nominatedNodeName", "/status/nominatedNodeName"),
        ]
    }

    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> Option<i64> {
        let node = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let phase = obj
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if node.is_empty() || phase == "Succeeded" || phase == "Failed" {
            return Some(0);
        }
        let spec_default = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        Some(requested.unwrap_or(spec_default).max(0))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column {
                name: "Ready",
                type_: "string",
                priority: 0,
                description: "The aggregate readiness state of this pod for accepting traffic.",
            },
            Column {
                name: "Status",
                type_: "string",
                priority: 0,
                description: "The aggregate status of the containers in this pod.",
            },
            Column {
                name: "Restarts",
                type_: "string",
                priority: 0,
                description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            },
            Column::AGE,
            Column {
                name: "IP",
                type_: "string",
                priority: 1,
                description: "IP address assigned to the pod",
            },
            Column {
                name: "Node",
                type_: "string",
                priority: 1,
                description: "Name of the node assigned to the pod",
            },
            Column {
                name: "Nominated Node",
                type_: "string",
                priority: 1,
                description: "Name of the node nominated for the pod",
            },
            Column {
                name: "Readiness Gates",
                type_: "string",
                priority: 1,
                description: "Readiness gates of the pod",
            },
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let total = obj
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map_or(0, |a| a.len());
        let statuses = container_statuses(obj);
        let ready = statuses
            .iter()
            .filter(|c| c.get("ready") == Some(&Value::Bool(true)))
            .count();
        let restarts: i64 = statuses
            .iter()
            .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
            .sum();
        let text = |p: &str| text_or_none(obj, p);
        let gates = obj
            .pointer("/spec/readinessGates")
            .and_then(Value::as_array)
            .map_or(0, |a| a.len());
        vec![
            json!(meta::name(obj)),
            json!(format!("{ready}/{total}")),
            json!(display_status(obj)),
            json!(restarts.to_string()),
            json!(age(obj)),
            json!(text("/status/podIP")),
            json!(text("/spec/nodeName")),
            json!(text("/status/nominatedNodeName")),
            json!(if gates == 0 {
                "<none>".to_string()
            } else {
                format!("0/{gates}")
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_follows_requests_and_limits() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "a"}]})),
            "BestEffort"
        );
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn only_images_may_change_in_a_pod_spec() {
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}]}});
        let image = json!({"spec": {"containers": [{"name": "a", "image": "x:2"}]}});
        let port = json!({"spec": {"containers": [{"name": "a", "image": "x:1", "ports": [{"containerPort": 80}]}]}});
        assert!(PodStrategy.validate_update(&image, &old).is_empty());
        assert_eq!(PodStrategy.validate_update(&port, &old)[0].field, "spec");
    }

    #[test]
    fn unscheduled_pods_delete_at_once_and_bound_ones_gracefully() {
        let pending = json!({"spec": {}});
        let bound = json!({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5}});
        assert_eq!(PodStrategy.grace_period(&pending, None), Some(0));
        assert_eq!(PodStrategy.grace_period(&bound, None), Some(5));
        assert_eq!(PodStrategy.grace_period(&bound, Some(0)), Some(0));
    }
}
