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
            self.group(&info.name, pod, 1);
        }
        match self.index.get(&info.name) {
            Some(&i) => {
                let old = std::mem::replace(&mut self.nodes[i], info);
                self.count_images(&old, -1);
                for pod in &old.pods {
                    self.group(&old.name, pod, -1);
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
        self.group(node, &pod, 1);
        true
    }

    /// Removes a pod from a node of the snapshot.
    pub fn remove_pod(&mut self, node: &str, pod: &Arc<PodInfo>) {
        if let Some(info) = self.node_mut(node)
            && info.remove_pod(&pod.uid)
        {
            self.group(node, pod, -1);
        }
    }

    fn group(&mut self, node: &str, pod: &Arc<PodInfo>, delta: i64) {
        let group = self
            .pod_groups
            .entry(pod.group_key.clone())
            .or_insert_with(|| PodGroup {
                sample: pod.clone(),
                nodes: FastMap::default(),
            });
        let n = group.nodes.entry(node.to_string()).or_insert(0);
        *n += delta;
        if *n <= 0 {
            group.nodes.remove(node);
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
            self.group(&removed.name, pod, -1);
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
