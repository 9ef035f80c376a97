//! Which pending pods preemption has nominated to which node
//! (`status.nominatedNodeName`), so lower-priority pods leave room there.

use std::collections::HashMap;
use std::sync::Arc;

use crate::algorithm::Nominated;
use crate::framework::PodInfo;

/// Nominations by pod and by node.
#[derive(Default)]
pub struct Nominator {
    by_pod: HashMap<String, String>,
    by_node: Nominated,
}

impl Nominator {
    /// Pods nominated to each node.
    pub fn nominated(&self) -> &Nominated {
        &self.by_node
    }

    /// Records the pod's nomination from its status. An update without one
    /// keeps the nomination this scheduler made (the update may predate its
    /// own status write); nominations end through [`Self::remove`].
    pub fn update(&mut self, pod: &Arc<PodInfo>) {
        let node = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| self.by_pod.get(&pod.uid).cloned());
        if let Some(node) = node {
            self.nominate(pod.clone(), &node);
        }
    }

    /// Nominates `pod` to `node`, replacing an earlier nomination.
    pub fn nominate(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove(&pod.uid);
        self.by_pod.insert(pod.uid.clone(), node.to_string());
        self.by_node.entry(node.to_string()).or_default().push(pod);
    }

    /// Clears the pod's nomination.
    pub fn remove(&mut self, uid: &str) {
        let Some(node) = self.by_pod.remove(uid) else {
            return;
        };
        if let Some(pods) = self.by_node.get_mut(&node) {
            pods.retain(|p| p.uid != uid);
            if pods.is_empty() {
                self.by_node.remove(&node);
            }
        }
    }
}
