//! kubectl's client-side apply annotation kept in step with server-side
//! apply, as upstream's `lastAppliedUpdater`: when `kubectl` applies
//! server-side to an object that carries the annotation, the annotation
//! becomes the applied configuration, so a later client-side apply diffs
//! against what was really applied.

use serde_json::Value;

use crate::registry::meta;

/// The annotation client-side `kubectl apply` keeps.
pub const ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager name whose applies keep the annotation.
const KUBECTL: &str = "kubectl";

/// Largest annotation value written; a larger configuration leaves the
/// annotation as it was (upstream refuses total annotations over 256 KiB).
const MAX_SIZE: usize = 256 * 1024;

/// Updates `merged`'s annotation from `config` when `manager` is kubectl
/// and `live` already has one.
pub fn sync(live: Option<&Value>, merged: &mut Value, config: &Value, manager: &str) {
    let has_annotation = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(|a| a.get(ANNOTATION))
            .is_some()
    };
    if manager != KUBECTL || !live.is_some_and(has_annotation) {
        return;
    }
    let mut applied = config.clone();
    if let Some(a) = applied
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(ANNOTATION);
        if a.is_empty()
            && let Some(m) = applied.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.remove("annotations");
        }
    }
    let text = applied.to_string();
    if text.len() > MAX_SIZE {
        return;
    }
    let annotations = meta::metadata_mut(merged)
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    meta::ensure_object(annotations).insert(ANNOTATION.into(), Value::String(text));
}
