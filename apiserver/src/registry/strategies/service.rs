//! Services: port defaulting and validation, and their table columns.
//! ClusterIP and NodePort allocation come with the Services issue.

use serde_json::{Value, json};

use crate::error::FieldError;
use crate::registry::meta::default_at;
use crate::registry::strategy::{Column, NameRule, Strategy};
use crate::table::text_or_none;

/// Services.
pub struct ServiceStrategy;

const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

impl Strategy for ServiceStrategy {
    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn has_status(&self) -> bool {
        true
    }

    fn apply_defaults(&self, obj: &mut Value) {
        default_at(obj, &["spec", "type"], json!("ClusterIP"));
        default_at(obj, &["spec", "sessionAffinity"], json!("None"));
        let external_name = obj.pointer("/spec/type") == Some(&json!("ExternalName"));
        if !external_name {
            default_at(obj, &["spec", "internalTrafficPolicy"], json!("Cluster"));
        }
        if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports {
                default_at(p, &["protocol"], json!("TCP"));
                let port = p.get("port").cloned().unwrap_or(Value::Null);
                default_at(p, &["targetPort"], port);
            }
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"loadBalancer": {}});
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let kind = obj
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        if !TYPES.contains(&kind) {
            errs.push(FieldError::not_supported("spec.type", &json!(kind), TYPES));
        }
        let headless = obj.pointer("/spec/clusterIP") == Some(&json!("None"));
        let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
        if kind != "ExternalName" && !headless && ports.is_none_or(|p| p.is_empty()) {
            errs.push(FieldError::required("spec.ports", ""));
        }
        let many = ports.is_some_and(|p| p.len() > 1);
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in ports.into_iter().flatten().enumerate() {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            if !(1..=65535).contains(&port) {
                errs.push(FieldError::invalid(
                    format!("spec.ports[{i}].port"),
                    &json!(port),
                    "must be between 1 and 65535, inclusive",
                ));
            }
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            if many && name.is_empty() {
                errs.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
            } else if !name.is_empty() && !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(
                    format!("spec.ports[{i}].name"),
                    &json!(name),
                ));
            }
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        let old_ip = old.pointer("/spec/clusterIP");
        let new_ip = new.pointer("/spec/clusterIP");
        if old_ip.is_some() && new_ip.is_some() && old_ip != new_ip {
            errs.push(FieldError::immutable(
                "spec.clusterIP",
                new_ip.unwrap_or(&Value::Null),
            ));
        }
        errs
    }

    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("spec.clusterIP", "/spec/clusterIP"),
            ("spec.type", "/spec/type"),
        ]
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
            c("Type", 0, "The type of service"),
            c("Cluster-IP", 0, "The cluster IP of the service"),
            c("External-IP", 0, "The external IP of the service"),
            c("Port(s)", 0, "The ports of the service"),
            Column::AGE,
            c("Selector", 1, "The selector of the service"),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let text = |p: &str| text_or_none(obj, p);
        let ports: Vec<String> = obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        let port = p.get("port").map(|v| v.to_string()).unwrap_or_default();
                        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                        match p.get("nodePort") {
                            Some(np) => format!("{port}:{np}/{proto}"),
                            None => format!("{port}/{proto}"),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let external: Vec<String> = obj
            .pointer("/spec/externalIPs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let external = if obj.pointer("/spec/type") == Some(&json!("ExternalName")) {
            text("/spec/externalName")
        } else if external.is_empty() {
            "<none>".to_string()
        } else {
            external.join(",")
        };
        let selector: Vec<String> = obj
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        vec![
            json!(crate::registry::meta::name(obj)),
            json!(text("/spec/type")),
            json!(text("/spec/clusterIP")),
            json!(external),
            json!(if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            }),
            json!(crate::table::age(obj)),
            json!(if selector.is_empty() {
                "<none>".to_string()
            } else {
                selector.join(",")
            }),
        ]
    }
}
