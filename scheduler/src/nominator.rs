//! Which pending pods preemption has nominated to which node
//! (`status.nominatedNodeName`), so lower-priority pods leave room there.

use std::collections::HashMap;
use std::sync::Arc;

use crate::algorithm::Nominated;
use crate::framework::PodInfo;

/// `status.nominatedNodeName`, if set.
fn status_nomination(pod: &PodInfo) -> Option<String> {
    pod.pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.clone())
        .filter(|n| !n.is_empty())
}

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

    /// Records the pod's nomination from its status, as upstream's
    /// `UpdateNominatedPod`: an update without one keeps a nomination only
    /// while neither the stored nor the new version carries one (this
    /// scheduler's own nomination, before its status write is seen); an
    /// update that clears the status clears the nomination.
    pub fn update(&mut self, pod: &Arc<PodInfo>) {
        if let Some(node) = status_nomination(pod) {
            self.nominate(pod.clone(), &node);
            return;
        }
        let Some(node) = self.by_pod.get(&pod.uid).cloned() else {
            return;
        };
        let stored_had_one = self
            .by_node
            .get(&node)
            .and_then(|pods| pods.iter().find(|p| p.uid == pod.uid))
            .is_some_and(|p| status_nomination(p).is_some());
        if stored_had_one {
            self.remove(&pod.uid);
        } else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(nominated: Option<&str>) -> Arc<PodInfo> {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"nominatedNodeName": nominated}
        }))
        .unwrap_or_default();
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    fn nominated_to(n: &Nominator) -> Vec<&String> {
        n.nominated().keys().collect()
    }

    #[test]
    fn own_nominations_survive_stale_updates_but_a_cleared_status_ends_them() {
        let mut n = Nominator::default();
        // Preemption nominated the pod before its status says so.
        n.nominate(pod(None), "n1");
        n.update(&pod(None));
        assert_eq!(nominated_to(&n), vec!["n1"], "a stale update keeps it");
        // The status write is seen, then an update clears it.
        n.update(&pod(Some("n1")));
        n.update(&pod(None));
        assert!(n.nominated().is_empty(), "a cleared status ends it");
    }
}
