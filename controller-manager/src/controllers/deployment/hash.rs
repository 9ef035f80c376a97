//! The `pod-template-hash`: upstream's FNV-32a over the pod template
//! (here its canonical JSON) and the collision count, rendered with
//! upstream's `SafeEncodeString` alphabet; it names a Deployment's
//! ReplicaSets `<deployment>-<hash>` and keeps their pods apart.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use crate::hash::{FNV32_OFFSET, fnv32a, safe_encode};

/// The label (and selector key) every ReplicaSet of a Deployment carries.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// The hash of `template` with `collision_count` mixed in, as upstream's
/// `ComputeHash` (a stable function of the template's content).
pub fn compute(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(&canonical(template)).unwrap_or_default();
    let mut hash = fnv32a(&json, FNV32_OFFSET);
    if let Some(c) = collision_count {
        hash = fnv32a(&c.to_le_bytes(), hash);
    }
    safe_encode(hash)
}

/// The template as JSON without the hash label, nulls or empty
/// collections: what "the same template" means (upstream's
/// `EqualIgnoreHash`).
fn canonical(template: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or_default();
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    prune(&mut v);
    v
}

fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                prune(x);
            }
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(prune),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The two templates are the same apart from the hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical(a) == canonical(b)
}

/// `<deployment>-<hash>`, the name of the ReplicaSet for a template.
pub fn replica_set_name(deployment: &str, hash: &str) -> String {
    format!("{deployment}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::ALPHABET;
    use serde_json::json;

    fn template(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_hash_is_stable_safe_and_ignores_its_own_label() {
        let a = template(
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}),
        );
        let b = template(
            json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "x"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}),
        );
        let c = template(
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}),
        );
        let h = compute(&a, None);
        assert_eq!(h, compute(&b, None));
        assert_ne!(h, compute(&c, None));
        assert_ne!(h, compute(&a, Some(1)));
        assert!(h.bytes().all(|c| ALPHABET.contains(&c)));
        assert!(equal_ignore_hash(&a, &b) && !equal_ignore_hash(&a, &c));
    }
}
