//! DefaultTolerationSeconds, as upstream's admission plugin: a new pod
//! that does not tolerate the `not-ready` and `unreachable` NoExecute
//! taints gets tolerations for them lasting 300 seconds, so when its node
//! stops reporting, node lifecycle evicts it after five minutes instead of
//! at once.

use serde_json::{Value, json};

use super::{Attributes, Operation};

/// The taints whose tolerations are defaulted.
const TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// Upstream's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`.
const SECONDS: i64 = 300;

/// Whether `toleration` already covers NoExecute taints with `key`.
fn covers(toleration: &Value, key: &str) -> bool {
    let effect = toleration
        .get("effect")
        .and_then(Value::as_str)
        .unwrap_or("");
    let tkey = toleration.get("key").and_then(Value::as_str).unwrap_or("");
    let operator = toleration
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("Equal");
    (effect.is_empty() || effect == "NoExecute")
        && (tkey == key || (tkey.is_empty() && operator == "Exists"))
}

/// Adds the default tolerations to a pod being created.
pub fn admit(attrs: &Attributes<'_>, pod: &mut Value) {
    if attrs.operation == Operation::Create && attrs.is("", "pods") {
        add_defaults(pod);
    }
}

/// Adds a 300 s toleration for each of [`TAINTS`] the pod does not
/// tolerate yet.
fn add_defaults(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for key in TAINTS {
        if !list.iter().any(|t| covers(t, key)) {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": SECONDS}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_only_what_is_not_tolerated_already() {
        let mut pod = json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]}});
        add_defaults(&mut pod);
        let got = pod["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0]["tolerationSeconds"], 60,
            "an existing toleration is kept"
        );
        assert_eq!(
            got[1],
            json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
        );
        let mut everything = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_defaults(&mut everything);
        assert_eq!(
            everything["spec"]["tolerations"].as_array().map(Vec::len),
            Some(1)
        );
        let mut none = json!({"spec": {}});
        add_defaults(&mut none);
        assert_eq!(
            none["spec"]["tolerations"].as_array().map(Vec::len),
            Some(2)
        );
    }
}
