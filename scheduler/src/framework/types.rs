//! What plugins read: a pod with its requests and affinity terms parsed
//! once ([`PodInfo`]), and a node with the pods on it and what they use
//! ([`NodeInfo`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, Pod, PodAffinityTerm, Taint, Toleration, WeightedPodAffinityTerm,
};
use kube::core::{Expression, Selector, SelectorExt};

use super::resources::{PodRequests, Resources, is_scalar, pod_requests};

/// A pod and what the scheduler derives from it, computed once per pod
/// version.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    pub uid: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub requests: PodRequests,
    /// `spec.priority` (0 when absent, as upstream).
    pub priority: i32,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
    /// Host ports the pod's containers claim: (hostIP, protocol, port).
    pub host_ports: Vec<HostPort>,
    /// Equal for pods that any affinity computation treats alike (same
    /// namespace, labels and pod (anti-)affinity), so the snapshot can
    /// group them and plugins evaluate terms once per group.
    pub group_key: String,
}

/// A host port a container claims; `0.0.0.0` when no hostIP is given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Two claims conflict on the same protocol and port when either binds
    /// every address or both bind the same one.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod (anti-)affinity term with its selectors parsed.
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// `None` when the term has no labelSelector: it matches no pod.
    pub selector: Option<Selector>,
    /// Namespaces named in the term (the pod's own when neither this nor a
    /// namespace selector is given).
    pub namespaces: BTreeSet<String>,
    /// `Some` when the term has a namespaceSelector (`{}` selects all).
    pub namespace_selector: Option<Selector>,
    pub topology_key: String,
}

/// A preferred term and its weight (1-100).
#[derive(Clone, Debug)]
pub struct WeightedAffinityTerm {
    pub term: AffinityTerm,
    pub weight: i32,
}

impl AffinityTerm {
    /// Parses a term of a pod in `own_namespace` whose labels are
    /// `own_labels` (for matchLabelKeys/mismatchLabelKeys).
    pub fn parse(
        t: &PodAffinityTerm,
        own_namespace: &str,
        own_labels: &BTreeMap<String, String>,
    ) -> Self {
        let mut selector: Option<Selector> =
            t.label_selector.clone().and_then(|s| s.try_into().ok());
        if let Some(sel) = selector.as_mut() {
            for key in t.match_label_keys.iter().flatten() {
                if let Some(v) = own_labels.get(key) {
                    sel.extend([Expression::In(key.clone(), [v.clone()].into())]);
                }
            }
            for key in t.mismatch_label_keys.iter().flatten() {
                if let Some(v) = own_labels.get(key) {
                    sel.extend([Expression::NotIn(key.clone(), [v.clone()].into())]);
                }
            }
        }
        let namespace_selector: Option<Selector> =
            t.namespace_selector.clone().and_then(|s| s.try_into().ok());
        let mut namespaces: BTreeSet<String> = t.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.insert(own_namespace.to_string());
        }
        AffinityTerm {
            selector,
            namespaces,
            namespace_selector,
            topology_key: t.topology_key.clone(),
        }
    }

    /// Whether `pod` is one this term selects; `ns_labels` gives the labels
    /// of namespaces for namespace selectors.
    pub fn matches(
        &self,
        pod: &PodInfo,
        ns_labels: &HashMap<String, BTreeMap<String, String>>,
    ) -> bool {
        let in_namespace = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|sel| {
                ns_labels
                    .get(&pod.namespace)
                    .is_some_and(|labels| sel.matches(labels))
            });
        in_namespace
            && self
                .selector
                .as_ref()
                .is_some_and(|sel| sel.matches(&pod.labels))
    }
}

impl PodInfo {
    /// Derives everything once from the pod.
    pub fn new(pod: Arc<Pod>) -> Self {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pod_affinity = affinity.and_then(|a| a.pod_affinity.as_ref());
        let anti = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::parse(t, &namespace, &labels))
                .collect()
        };
        let preferred = |terms: Option<&Vec<WeightedPodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .map(|w| WeightedAffinityTerm {
                    term: AffinityTerm::parse(&w.pod_affinity_term, &namespace, &labels),
                    weight: w.weight,
                })
                .collect()
        };
        let host_ports = spec
            .map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .flat_map(|c| c.ports.iter().flatten())
                    .filter(|p| p.host_port.unwrap_or(0) > 0)
                    .map(|p| HostPort {
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|ip| !ip.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".to_string()),
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                        port: p.host_port.unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let group_key = format!(
            "{namespace}\u{0}{}\u{0}{}\u{0}{}",
            serde_json::to_string(&labels).unwrap_or_default(),
            pod_affinity
                .map(|a| serde_json::to_string(a).unwrap_or_default())
                .unwrap_or_default(),
            anti.map(|a| serde_json::to_string(a).unwrap_or_default())
                .unwrap_or_default(),
        );
        PodInfo {
            group_key,
            key: format!("{namespace}/{name}"),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            requests: pod_requests(&pod),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            required_affinity: required(pod_affinity.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: required(anti.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(pod_affinity.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(anti.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            host_ports,
            labels,
            namespace,
            pod,
        }
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    /// Whether the pod declares any pod affinity or anti-affinity.
    pub fn has_affinity(&self) -> bool {
        !self.required_affinity.is_empty()
            || !self.required_anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
    }

    /// The pod's tolerations.
    pub fn tolerations(&self) -> &[Toleration] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default()
    }

    /// Whether the pod is being deleted.
    pub fn is_terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }
}

/// A node and everything placed on it, as the scheduler sees it (bound and
/// assumed pods alike).
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub allocatable: Resources,
    /// Sum of the effective requests of the pods on the node.
    pub requested: Resources,
    /// Sum of the non-zero requests, for scoring.
    pub non_zero_requested: Resources,
    pub pods: Vec<Arc<PodInfo>>,
    /// Number of pods on the node with any pod (anti-)affinity.
    pub pods_with_affinity: usize,
    /// Number of pods on the node with required anti-affinity.
    pub pods_with_required_anti_affinity: usize,
    pub used_ports: Vec<HostPort>,
    /// Image names (every tag and digest name) → size in bytes, from
    /// `status.images`.
    pub images: HashMap<String, i64>,
}

impl NodeInfo {
    /// A node with no pods yet.
    pub fn new(node: Arc<Node>) -> Self {
        let mut info = NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: BTreeMap::new(),
            allocatable: Resources::default(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pods: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            used_ports: Vec::new(),
            images: HashMap::new(),
            node: node.clone(),
        };
        info.set_node(node);
        info
    }

    /// Replaces the Node object, keeping the pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        let status = node.status.as_ref();
        self.allocatable = status
            .and_then(|s| s.allocatable.as_ref())
            .map(Resources::from_list)
            .unwrap_or_default();
        self.images = status
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|img| {
                let size = img.size_bytes.unwrap_or(0);
                img.names
                    .iter()
                    .flatten()
                    .map(move |n| (normalize_image_name(n), size))
            })
            .collect();
        self.node = node;
    }

    /// The node's taints.
    pub fn taints(&self) -> &[Taint] {
        self.node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
    }

    /// What the node can give of resource `name`, and how much would be
    /// requested with a pod asking `pod_request` on it (upstream's
    /// `calculateResourceAllocatableRequest`); CPU and memory count
    /// non-zero requests when `non_zero`. (0, 0) leaves the resource out.
    pub fn allocatable_and_requested(
        &self,
        name: &str,
        pod_request: i64,
        non_zero: bool,
    ) -> (i64, i64) {
        if pod_request == 0 && is_scalar(name) {
            return (0, 0);
        }
        let requested = match name {
            "cpu" | "memory" if non_zero => &self.non_zero_requested,
            _ => &self.requested,
        };
        match name {
            "cpu" | "memory" | "ephemeral-storage" => (
                self.allocatable.get(name),
                requested.get(name) + pod_request,
            ),
            _ => match self.allocatable.scalar.get(name) {
                Some(&alloc) => (
                    alloc,
                    self.requested.scalar.get(name).copied().unwrap_or(0) + pod_request,
                ),
                None => (0, 0),
            },
        }
    }

    /// Places a pod on the node.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests.requests);
        self.non_zero_requested.add(&pod.requests.non_zero);
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.used_ports.extend(pod.host_ports.iter().cloned());
        self.pods.push(pod);
    }

    /// Removes the pod with this uid; false when it is not here.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.uid == uid) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests.requests);
        self.non_zero_requested.sub(&pod.requests.non_zero);
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        true
    }
}

/// Image names as the kubelet reports them and as pods write them compare
/// equal: a missing tag means `:latest`, and Docker Hub's implicit prefix
/// is dropped (upstream's ImageLocality normalisation).
pub fn normalize_image_name(name: &str) -> String {
    let name = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name);
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.contains('@') || last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_accounting_follows_pods() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"zone": "a"}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
        }))
        .unwrap_or_default();
        let mut info = NodeInfo::new(Arc::new(node));
        assert_eq!(info.allocatable.milli_cpu, 4000);
        assert_eq!(info.allocatable.allowed_pods, 110);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}],
                "resources": {"requests": {"cpu": "1"}}}]}
        }))
        .unwrap_or_default();
        info.add_pod(Arc::new(PodInfo::new(Arc::new(pod))));
        assert_eq!(info.requested.milli_cpu, 1000);
        assert_eq!(info.used_ports.len(), 1);
        assert!(info.remove_pod("u1"));
        assert_eq!(info.requested, Resources::default());
        assert!(info.used_ports.is_empty());
        assert!(!info.remove_pod("u1"));
    }

    #[test]
    fn image_names_normalise() {
        assert_eq!(normalize_image_name("nginx"), "nginx:latest");
        assert_eq!(
            normalize_image_name("docker.io/library/nginx:1.2"),
            "nginx:1.2"
        );
        assert_eq!(
            normalize_image_name("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
    }
}
