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
        // Always the name, never what the client sent: selectors on this
        // label must not be fooled.
        let name = obj
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null);
        let meta = crate::registry::meta::metadata_mut(obj);
        let labels =
            crate::registry::meta::ensure_object(meta.entry("labels").or_insert_with(|| json!({})));
        labels.insert("kubernetes.io/metadata.name".into(), name);
    }

    fn forbid_delete(&self, obj: &Value) -> Option<&'static str> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        crate::IMMORTAL_NAMESPACES
            .contains(&name)
            .then_some("this namespace may not be deleted")
    }

    fn held_after_delete(&self, obj: &Value) -> bool {
        obj.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    }

    fn prepare_for_delete(&self, obj: &mut Value) {
        obj["status"]["phase"] = json!("Terminating");
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
        vec![
            Column::NAME,
            Column::new("Status", "string", 0, "The status of the namespace"),
            Column::AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![
            json!(crate::registry::meta::name(obj)),
            obj.pointer("/status/phase").cloned().unwrap_or(json!("")),
            json!(crate::table::age(obj)),
        ]
    }
}
