//! Namespaces: the `kubernetes` finalizer, the Active/Terminating phase.

use serde_json::{Value, json};

use crate::registry::meta::default_at;
use crate::registry::strategy::{Column, NameRule, Strategy};

/// Namespaces.
pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn has_status(&self) -> bool {
        true
    }

    fn apply_defaults(&self, obj: &mut Value) {
        default_at(obj, &["spec", "finalizers"], json!(["kubernetes"]));
        let name = obj
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null);
        default_at(
            obj,
            &["metadata", "labels", "kubernetes.io/metadata.name"],
            name,
        );
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Active"});
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        // spec.finalizers change only through the finalize subresource.
        new["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
    }

    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[("status.phase", "/status/phase")]
    }

    fn columns(&self) -> Vec<Column> {
        vec![Column {
            name: "Status",
            type_: "string",
            priority: 0,
            description: "The status of the namespace",
        }]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![obj.pointer("/status/phase").cloned().unwrap_or(json!(""))]
    }
}
