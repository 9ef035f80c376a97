//! The scheduler's view of the cluster, kept from informer events: nodes,
//! the pods bound (or assumed bound) to them, and the objects plugins read.
//! A pod is *assumed* on its node the moment the scheduler decides, before
//! the binding lands, so the next decision already counts it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::{NodeInfo, PodInfo, Snapshot};

/// Nodes and placed pods; owns the [`Snapshot`] plugins read.
#[derive(Default)]
pub struct ClusterCache {
    snapshot: Snapshot,
    /// uid → (node, pod) for every placed pod, so a pod can be found and a
    /// node re-created with its pods.
    placed: HashMap<String, (String, Arc<PodInfo>)>,
    /// node → uids placed there, to rebuild a node that returns.
    by_node: HashMap<String, HashSet<String>>,
    /// Pods placed by this scheduler whose binding is not confirmed yet.
    assumed: HashSet<String>,
}

impl ClusterCache {
    /// What plugins read.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// For updating the non-node objects (namespaces, volumes).
    pub fn snapshot_mut(&mut self) -> &mut Snapshot {
        &mut self.snapshot
    }

    /// Adds or updates a node, keeping the pods placed on it.
    pub fn upsert_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.snapshot.node_mut(&name) {
            Some(existing) => {
                let mut info = existing.clone();
                info.set_node(node);
                self.snapshot.upsert_node(info);
            }
            None => {
                let mut info = NodeInfo::new(node);
                for uid in self.by_node.get(&name).into_iter().flatten() {
                    if let Some((_, pod)) = self.placed.get(uid) {
                        info.add_pod(pod.clone());
                    }
                }
                self.snapshot.upsert_node(info);
            }
        }
    }

    /// Forgets a node; its pods stay known and return if it comes back.
    pub fn remove_node(&mut self, name: &str) {
        self.snapshot.remove_node(name);
    }

    /// Records a pod the API says is bound (or updates it). Terminal pods
    /// free their node, as upstream's informer filter drops them.
    pub fn upsert_bound_pod(&mut self, pod: Arc<Pod>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            self.remove_pod(&uid);
            return;
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        self.assumed.remove(&uid);
        self.remove_pod(&uid);
        self.place(node, Arc::new(PodInfo::new(pod)));
    }

    /// Removes a pod wherever it is placed.
    pub fn remove_pod(&mut self, uid: &str) {
        self.assumed.remove(uid);
        if let Some((node, pod)) = self.placed.remove(uid) {
            if let Some(set) = self.by_node.get_mut(&node) {
                set.remove(uid);
                if set.is_empty() {
                    self.by_node.remove(&node);
                }
            }
            self.snapshot.remove_pod(&node, &pod);
        }
    }

    /// Places a pod on the node the scheduler chose, before its binding is
    /// confirmed.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove_pod(&pod.uid);
        self.assumed.insert(pod.uid.clone());
        self.place(node.to_string(), pod);
    }

    /// Undoes [`Self::assume`] when binding failed; a no-op if the API has
    /// confirmed the pod meanwhile.
    pub fn forget(&mut self, uid: &str) {
        if self.assumed.contains(uid) {
            self.remove_pod(uid);
        }
    }

    /// Whether the pod is assumed or bound.
    pub fn is_placed(&self, uid: &str) -> bool {
        self.placed.contains_key(uid)
    }

    fn place(&mut self, node: String, pod: Arc<PodInfo>) {
        self.snapshot.add_pod(&node, pod.clone());
        self.by_node
            .entry(node.clone())
            .or_default()
            .insert(pod.uid.clone());
        self.placed.insert(pod.uid.clone(), (node, pod));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"allocatable": {"cpu": "2", "pods": "10"}}}))
            .unwrap_or_default(),
        )
    }

    fn pod(uid: &str, node: &str, phase: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": uid, "namespace": "default", "uid": uid},
                "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
                "status": {"phase": phase}
            }))
            .unwrap_or_default(),
        )
    }

    fn cpu(c: &ClusterCache, n: &str) -> i64 {
        c.snapshot()
            .node(n)
            .map(|i| i.requested.milli_cpu)
            .unwrap_or(-1)
    }

    #[test]
    fn assumed_pods_count_until_forgotten_or_confirmed() {
        let mut c = ClusterCache::default();
        c.upsert_node(node("n1"));
        let p = pod("u1", "", "Pending");
        c.assume(Arc::new(PodInfo::new(p)), "n1");
        assert_eq!(cpu(&c, "n1"), 1000);
        c.forget("u1");
        assert_eq!(cpu(&c, "n1"), 0);
        c.assume(Arc::new(PodInfo::new(pod("u1", "", "Pending"))), "n1");
        c.upsert_bound_pod(pod("u1", "n1", "Running"));
        c.forget("u1");
        assert_eq!(cpu(&c, "n1"), 1000, "a confirmed pod is not forgotten");
        c.upsert_bound_pod(pod("u1", "n1", "Succeeded"));
        assert_eq!(cpu(&c, "n1"), 0, "a finished pod frees its node");
    }

    #[test]
    fn a_node_that_returns_gets_its_pods_back() {
        let mut c = ClusterCache::default();
        c.upsert_bound_pod(pod("u1", "n1", "Running"));
        c.upsert_node(node("n1"));
        assert_eq!(cpu(&c, "n1"), 1000);
        c.remove_node("n1");
        c.upsert_node(node("n1"));
        assert_eq!(cpu(&c, "n1"), 1000);
    }
}
