//! Where a DaemonSet's pods belong (upstream's `NodeShouldRunDaemonPod`
//! and `NewPod`): a node gets a daemon pod when the template's node name,
//! `nodeSelector` and required node affinity match it and the pod, with
//! the tolerations every daemon pod gets, tolerates its NoSchedule and
//! NoExecute taints; a pod already there may stay while it tolerates the
//! NoExecute ones.

use capstan_component_helpers::scheduling::{first_untolerated, pod_matches_node};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// What a node means for a DaemonSet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fit {
    /// A daemon pod should be created there if it has none.
    pub should_run: bool,
    /// A daemon pod already there may stay.
    pub should_continue_running: bool,
}

/// Upstream's `NodeShouldRunDaemonPod` for `ds` and `node`.
pub fn fit(ds: &DaemonSet, node: &Node) -> Fit {
    const NO: Fit = Fit {
        should_run: false,
        should_continue_running: false,
    };
    let node_name = node.metadata.name.as_deref().unwrap_or_default();
    let pod = daemon_pod(ds);
    let spec = pod.spec.as_ref();
    let template_node = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default();
    if !template_node.is_empty() && template_node != node_name {
        return NO;
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if !pod_matches_node(&pod, &labels, node_name) {
        return NO;
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let tolerations = spec
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    if first_untolerated(taints, tolerations, &["NoSchedule", "NoExecute"]).is_none() {
        return Fit {
            should_run: true,
            should_continue_running: true,
        };
    }
    Fit {
        should_run: false,
        should_continue_running: first_untolerated(taints, tolerations, &["NoExecute"]).is_none(),
    }
}

/// The daemon pod for `node_name` as the controller creates it: the
/// template with the automatic tolerations and required node affinity replaced by one term naming the node
/// (upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`), so the
/// scheduler binds it there and nowhere else.
pub fn pod_for_node(ds: &DaemonSet, node_name: &str) -> Pod {
    let mut pod = daemon_pod(ds);
    if let Some(spec) = pod.spec.as_mut() {
        pin_to_node(spec, node_name);
    }
    pod
}

/// The template with the automatic tolerations (upstream's `NewPod`,
/// without the node): what placement is judged on.
fn daemon_pod(ds: &DaemonSet) -> Pod {
    let template = ds.spec.as_ref().map(|s| s.template.clone());
    let template = template.unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            namespace: ds.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Upstream's `AddOrUpdateDaemonPodTolerations`: daemon pods stay on
/// nodes that are not ready, unreachable, under pressure or cordoned (and,
/// with host networking, whose network is not ready).
fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let toleration = Toleration {
            key: Some(key.to_string()),
            operator: Some("Exists".to_string()),
            effect: Some(effect.to_string()),
            ..Default::default()
        };
        // Upstream's AddOrUpdateTolerationInPodSpec: one per key and effect.
        match tolerations
            .iter_mut()
            .find(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect))
        {
            Some(existing) => *existing = toleration,
            None => tolerations.push(toleration),
        }
    }
}

/// Replaces the required node affinity with `metadata.name In [node]`.
fn pin_to_node(spec: &mut PodSpec, node_name: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".to_string(),
            operator: "In".to_string(),
            values: Some(vec![node_name.to_string()]),
        }]),
        match_expressions: None,
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// The node a daemon pod is for (upstream's `GetTargetNodeName`): its
/// `nodeName` once bound, else the node its affinity pins it to.
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_deref())
        .and_then(|v| match v {
            [one] => Some(one.as_str()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ds(template_spec: Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": template_spec},
            },
        }))
        .expect("daemonset")
    }

    fn node(name: &str, labels: Value, taints: Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
        }))
        .expect("node")
    }

    const RUN: Fit = Fit {
        should_run: true,
        should_continue_running: true,
    };

    #[test]
    fn selectors_and_taints_decide_as_upstream() {
        let plain = ds(json!({"containers": [{"name": "c", "image": "i"}]}));
        assert_eq!(fit(&plain, &node("n1", json!({}), json!([]))), RUN);
        // Cordoned, not ready and under pressure: daemon pods still run.
        let cordoned = node(
            "n1",
            json!({}),
            json!([
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"},
            ]),
        );
        assert_eq!(fit(&plain, &cordoned), RUN);
        // A NoSchedule taint it does not tolerate: no new pod, the old stays.
        let dedicated = node(
            "n1",
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        assert_eq!(
            fit(&plain, &dedicated),
            Fit {
                should_run: false,
                should_continue_running: true
            }
        );
        // A NoExecute one: the pod goes too.
        let evicting = node(
            "n1",
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoExecute"}]),
        );
        assert!(!fit(&plain, &evicting).should_continue_running);
        let tolerant = ds(json!({
            "containers": [{"name": "c", "image": "i"}],
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        }));
        assert_eq!(fit(&tolerant, &evicting), RUN);

        let selective = ds(json!({
            "containers": [{"name": "c", "image": "i"}],
            "nodeSelector": {"disk": "ssd"},
        }));
        assert_eq!(
            fit(&selective, &node("n1", json!({"disk": "ssd"}), json!([]))),
            RUN
        );
        assert!(!fit(&selective, &node("n1", json!({}), json!([]))).should_continue_running);
        let affine = ds(json!({
            "containers": [{"name": "c", "image": "i"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]
            }}},
        }));
        assert!(!fit(&affine, &node("n1", json!({}), json!([]))).should_run);
        assert_eq!(
            fit(&affine, &node("n1", json!({"gpu": "1"}), json!([]))),
            RUN
        );
        let named = ds(json!({"containers": [{"name": "c", "image": "i"}], "nodeName": "n2"}));
        assert!(!fit(&named, &node("n1", json!({}), json!([]))).should_run);
        assert_eq!(fit(&named, &node("n2", json!({}), json!([]))), RUN);
    }

    #[test]
    fn a_daemon_pod_is_pinned_to_its_node_and_tolerates_node_trouble() {
        let d = ds(json!({
            "containers": [{"name": "c", "image": "i"}],
            "hostNetwork": true,
            "tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Equal", "value": "x", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]
            }}},
        }));
        let pod = pod_for_node(&d, "n7");
        assert_eq!(target_node(&pod), Some("n7"));
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        assert_eq!(tolerations.len(), 7, "{tolerations:?}");
        assert!(
            tolerations
                .iter()
                .all(|t| t.operator.as_deref() == Some("Exists"))
        );
        let mut bound = pod.clone();
        if let Some(s) = bound.spec.as_mut() {
            s.node_name = Some("n8".into());
            s.affinity = None;
        }
        assert_eq!(target_node(&bound), Some("n8"));
    }
}
