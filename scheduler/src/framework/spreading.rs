//! The group a pod belongs to for upstream's default spreading
//! (`helper.DefaultSelector`): the Services selecting it and the
//! ReplicationController, ReplicaSet or StatefulSet that controls it. Pods
//! that declare no topology spread constraints are spread by this group.

use std::collections::BTreeMap;

use kube::core::Selector;

use super::snapshot::Snapshot;
use super::types::PodInfo;

/// Selectors of the objects default spreading derives groups from, by
/// namespace then name.
#[derive(Clone, Debug, Default)]
pub struct SpreadingSelectors {
    /// Services' `spec.selector` (Services without one select nothing).
    pub services: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
    /// Controllers by `Kind` (`ReplicationController`, `ReplicaSet`,
    /// `StatefulSet`), then namespace/name.
    pub controllers: BTreeMap<(String, String, String), Selector>,
}

impl SpreadingSelectors {
    /// Records (or with `None`, forgets) a Service's selector.
    pub fn set_service(
        &mut self,
        ns: &str,
        name: &str,
        selector: Option<BTreeMap<String, String>>,
    ) {
        let per_ns = self.services.entry(ns.to_string()).or_default();
        match selector.filter(|s| !s.is_empty()) {
            Some(s) => {
                per_ns.insert(name.to_string(), s);
            }
            None => {
                per_ns.remove(name);
            }
        }
        if per_ns.is_empty() {
            self.services.remove(ns);
        }
    }

    /// Records (or with `None`, forgets) a controller's selector.
    pub fn set_controller(&mut self, kind: &str, ns: &str, name: &str, selector: Option<Selector>) {
        let key = (kind.to_string(), ns.to_string(), name.to_string());
        match selector {
            Some(s) => {
                self.controllers.insert(key, s);
            }
            None => {
                self.controllers.remove(&key);
            }
        }
    }
}

/// The selector of the pod's group: the labels every Service selecting the
/// pod selects on, plus its controller's selector; `None` when neither
/// exists (such a pod gets no default constraints, as upstream).
pub fn default_selector(pod: &PodInfo, snapshot: &Snapshot) -> Option<Selector> {
    let sel = &snapshot.spreading;
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for service in sel
        .services
        .get(&pod.namespace)
        .into_iter()
        .flat_map(|m| m.values())
    {
        let matches = service.iter().all(|(k, v)| pod.labels.get(k) == Some(v));
        if matches {
            labels.extend(service.clone());
        }
    }
    let mut selector: Selector = labels.into_iter().collect();
    let owner = pod
        .pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    if let Some(owner) = owner {
        let known = matches!(
            (owner.api_version.as_str(), owner.kind.as_str()),
            ("v1", "ReplicationController")
                | ("apps/v1", "ReplicaSet")
                | ("apps/v1", "StatefulSet")
        );
        let key = (
            owner.kind.clone(),
            pod.namespace.clone(),
            owner.name.clone(),
        );
        if let Some(controller) = sel.controllers.get(&key).filter(|_| known) {
            selector.extend(controller.clone());
        }
    }
    (!selector.selects_all()).then_some(selector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(labels: serde_json::Value, owner: serde_json::Value) -> PodInfo {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": labels, "ownerReferences": owner},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .unwrap_or_default();
        PodInfo::new(Arc::new(pod))
    }

    #[test]
    fn services_and_the_controller_define_the_group() {
        let mut s = Snapshot::default();
        s.spreading
            .set_service("ns", "web", Some([("app".into(), "web".into())].into()));
        s.spreading
            .set_service("ns", "other", Some([("app".into(), "db".into())].into()));
        s.spreading.set_controller(
            "ReplicaSet",
            "ns",
            "web-1",
            Some(
                [
                    ("app".to_string(), "web".to_string()),
                    ("hash".to_string(), "1".to_string()),
                ]
                .into_iter()
                .collect(),
            ),
        );
        let owned = pod(
            json!({"app": "web", "hash": "1", "pod": "unique"}),
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u", "controller": true}]),
        );
        let sel = default_selector(&owned, &s);
        let sel = sel.map(|s| s.to_string()).unwrap_or_default();
        assert!(
            sel.contains("app=web") && sel.contains("hash=1") && !sel.contains("pod"),
            "{sel}"
        );
        assert!(default_selector(&pod(json!({"x": "y"}), json!([])), &s).is_none());
    }
}
