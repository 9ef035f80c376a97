//! The cluster as one scheduling cycle sees it. The scheduler's single
//! scheduling thread owns it and applies informer events between cycles,
//! so a cycle reads a consistent view without locks or copies.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;

use super::types::{NodeInfo, PodInfo};

/// A hash map with a fast (non-DoS-resistant) hasher, for the maps read for
/// every node in every cycle; keys are cluster object names, not attacker
/// input chosen per request.
pub type FastMap<K, V> = foldhash::HashMap<K, V>;

/// Identical pods (see [`PodInfo::group_key`]) and how many sit on each
/// node: affinity plugins evaluate terms once per group instead of once
/// per pod.
#[derive(Clone, Debug)]
pub struct PodGroup {
    /// One of the pods; all share namespace, labels and affinity terms.
    pub sample: Arc<PodInfo>,
    /// Node name → pods of the group there.
    pub nodes: FastMap<String, i64>,
    /// Pods of the group per topology domain (`topologyKey` → value →
    /// count), for the keys of the group's own required (anti-)affinity
    /// terms, kept as pods come and go so PreFilter can refer to them
    /// instead of counting nodes per decision. Shared with the cycle
    /// state of a decision (copied only if it changes meanwhile).
    pub domains: Arc<DomainCounts>,
}

/// Counts per topology domain: `topologyKey` → value → pods.
pub type DomainCounts = FastMap<String, FastMap<String, i64>>;

/// The topology keys a pod's own required terms use.
fn own_topology_keys(pod: &PodInfo) -> Vec<&str> {
    let mut keys: Vec<&str> = pod
        .required_anti_affinity
        .iter()
        .chain(&pod.required_affinity)
        .map(|t| t.topology_key.as_str())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Nodes with their pods, plus the other objects plugins consult.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every schedulable-or-not node, in a stable order.
    pub nodes: Vec<NodeInfo>,
    /// Node name → index in `nodes`.
    pub index: FastMap<String, usize>,
    /// Namespace name → labels, for affinity namespace selectors.
    pub namespace_labels: HashMap<String, BTreeMap<String, String>>,
    /// Normalised image name → number of nodes that have it (ImageLocality
    /// spreads its score by it).
    pub image_nodes: HashMap<String, usize>,
    /// PersistentVolumeClaims by `namespace/name`.
    pub pvcs: HashMap<String, Arc<PersistentVolumeClaim>>,
    /// PersistentVolumes by name.
    pub pvs: HashMap<String, Arc<PersistentVolume>>,
    /// StorageClasses by name.
    pub storage_classes: HashMap<String, Arc<StorageClass>>,
    /// PodDisruptionBudgets by `namespace/name` (preemption prefers
    /// victims whose eviction they allow).
    pub pdbs: HashMap<String, Arc<PodDisruptionBudget>>,
    /// Pods on the snapshot's nodes, grouped by [`PodInfo::group_key`].
    pub pod_groups: FastMap<String, PodGroup>,
    /// Services and controllers, for default topology spreading.
    pub spreading: super::spreading::SpreadingSelectors,
}

/// The node labels a pod's group counts by: only its own topology keys,
/// copied so the snapshot can be updated while they are in hand.
fn domain_labels(pod: &PodInfo, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    own_topology_keys(pod)
        .into_iter()
        .filter_map(|k| labels.get(k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

impl Snapshot {
    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// The node with this name, for the cache to update.
    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        self.index.get(name).map(|&i| &mut self.nodes[i])
    }

    /// Adds or replaces a node (with the pods it holds), keeping the image
    /// counts and pod groups true.
    pub fn upsert_node(&mut self, info: NodeInfo) {
        self.count_images(&info, 1);
        for pod in &info.pods {
            self.group(&info.name, &info.labels, pod, 1);
        }
        match self.index.get(&info.name) {
            Some(&i) => {
                let old = std::mem::replace(&mut self.nodes[i], info);
                self.count_images(&old, -1);
                for pod in &old.pods {
                    self.group(&old.name, &old.labels, pod, -1);
                }
            }
            None => {
                self.index.insert(info.name.clone(), self.nodes.len());
                self.nodes.push(info);
            }
        }
    }

    /// Places a pod on a node of the snapshot; false when the node is not
    /// here.
    pub fn add_pod(&mut self, node: &str, pod: Arc<PodInfo>) -> bool {
        let Some(info) = self.node_mut(node) else {
            return false;
        };
        info.add_pod(pod.clone());
        let labels = domain_labels(&pod, &info.labels);
        self.group(node, &labels, &pod, 1);
        true
    }

    /// Removes a pod from a node of the snapshot.
    pub fn remove_pod(&mut self, node: &str, pod: &Arc<PodInfo>) {
        if let Some(info) = self.node_mut(node)
            && info.remove_pod(&pod.uid)
        {
            let labels = domain_labels(pod, &info.labels);
            self.group(node, &labels, pod, -1);
        }
    }

    /// Counts `delta` pods like `pod` on `node`, whose labels (at least
    /// those of the pod's own topology keys) are `labels`.
    fn group(
        &mut self,
        node: &str,
        labels: &BTreeMap<String, String>,
        pod: &Arc<PodInfo>,
        delta: i64,
    ) {
        let group = self
            .pod_groups
            .entry(pod.group_key.clone())
            .or_insert_with(|| PodGroup {
                sample: pod.clone(),
                nodes: FastMap::default(),
                domains: Arc::default(),
            });
        let n = group.nodes.entry(node.to_string()).or_insert(0);
        *n += delta;
        if *n <= 0 {
            group.nodes.remove(node);
        }
        let keys = own_topology_keys(pod);
        if !keys.is_empty() {
            let domains = Arc::make_mut(&mut group.domains);
            for key in keys {
                let Some(value) = labels.get(key) else {
                    continue;
                };
                let per_key = match domains.get_mut(key) {
                    Some(m) => m,
                    None => domains.entry(key.to_string()).or_default(),
                };
                let c = match per_key.get_mut(value.as_str()) {
                    Some(c) => c,
                    None => per_key.entry(value.clone()).or_insert(0),
                };
                *c += delta;
                if *c <= 0 {
                    per_key.remove(value.as_str());
                }
            }
        }
        if group.nodes.is_empty() {
            self.pod_groups.remove(&pod.group_key);
        }
    }

    /// Removes a node and returns it (with the pods it held).
    pub fn remove_node(&mut self, name: &str) -> Option<NodeInfo> {
        let i = self.index.remove(name)?;
        let removed = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
        self.count_images(&removed, -1);
        for pod in &removed.pods {
            self.group(&removed.name, &removed.labels, pod, -1);
        }
        Some(removed)
    }

    fn count_images(&mut self, info: &NodeInfo, delta: isize) {
        for image in info.images.keys() {
            let n = self.image_nodes.entry(image.clone()).or_insert(0);
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                self.image_nodes.remove(image);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    fn node(name: &str, zone: &str) -> NodeInfo {
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"zone": zone}}}))
                .unwrap_or_default();
        NodeInfo::new(Arc::new(node))
    }

    fn anti_pod(uid: &str) -> Arc<PodInfo> {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": uid, "namespace": "default", "uid": uid, "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c"}], "affinity": {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]}}}
        }))
        .unwrap_or_default();
        Arc::new(PodInfo::new(Arc::new(pod)))
    }

    fn zone_count(s: &Snapshot, zone: &str) -> i64 {
        let group = s.pod_groups.values().next();
        group
            .and_then(|g| g.domains.get("zone")?.get(zone).copied())
            .unwrap_or(0)
    }

    #[test]
    fn identical_pods_share_a_group_counted_per_domain() {
        let mut s = Snapshot::default();
        s.upsert_node(node("n1", "a"));
        s.upsert_node(node("n2", "a"));
        s.upsert_node(node("n3", "b"));
        let (p1, p2, p3) = (anti_pod("1"), anti_pod("2"), anti_pod("3"));
        assert!(s.add_pod("n1", p1.clone()));
        assert!(s.add_pod("n2", p2));
        assert!(s.add_pod("n3", p3));
        assert_eq!(s.pod_groups.len(), 1, "identical pods form one group");
        assert_eq!((zone_count(&s, "a"), zone_count(&s, "b")), (2, 1));
        s.remove_pod("n1", &p1);
        assert_eq!(zone_count(&s, "a"), 1);
        // A node moving zones takes its pods' counts along.
        let mut moved = node("n3", "a");
        moved.pods = s.node("n3").map(|n| n.pods.clone()).unwrap_or_default();
        s.upsert_node(moved);
        assert_eq!((zone_count(&s, "a"), zone_count(&s, "b")), (2, 0));
        s.remove_node("n2");
        s.remove_node("n3");
        assert!(s.pod_groups.is_empty(), "groups go with their last pod");
    }
}
