//! Which controller objects a pod event concerns (upstream's
//! `addPod`/`updatePod`/`deletePod` handlers): the pod's controller (whose
//! creation or deletion expectation it may satisfy), its previous
//! controller when that changed, and for an orphan every object whose
//! selector matches it, so one of them adopts it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::core::SelectorExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;

use super::claim::Owner;
use super::expectations::Expectations;
use super::pods;
use crate::queue::WorkQueue;
use crate::runner;

/// The key of the `K` that controls `pod`, if its reference names one.
fn controller_key<K: Owner>(pod: &Pod) -> Option<String> {
    let r = pods::controller_of(&pod.metadata)?;
    (r.kind == K::kind(&()) && r.api_version == K::api_version(&()))
        .then(|| runner::key(pod.metadata.namespace.as_deref(), &r.name))
}

/// Turns pod events into queue keys and observed expectations.
pub struct PodEvents<K: Owner> {
    owners: Store<K>,
    queue: Arc<WorkQueue>,
    expectations: Arc<Expectations>,
    /// Every pod seen, with the key of its `K` controller: tells an add
    /// from an update, and which controller to wake when that changes.
    known: HashMap<String, Option<String>>,
    /// Pods seen during a re-list; those missing afterwards were deleted
    /// while the watch was down.
    relisted: Option<HashSet<String>>,
}

impl<K: Owner> PodEvents<K> {
    /// A handler feeding `queue`.
    pub fn new(owners: Store<K>, queue: Arc<WorkQueue>, expectations: Arc<Expectations>) -> Self {
        PodEvents {
            owners,
            queue,
            expectations,
            known: HashMap::new(),
            relisted: None,
        }
    }

    /// Handles one watch event.
    pub fn handle(&mut self, event: &Event<Pod>) {
        match event {
            Event::Init => self.relisted = Some(HashSet::new()),
            Event::InitApply(pod) => {
                if let Some(seen) = self.relisted.as_mut() {
                    seen.insert(pods::key(pod));
                }
                self.applied(pod);
            }
            Event::InitDone => {
                let seen = self.relisted.take().unwrap_or_default();
                let gone: Vec<(String, Option<String>)> = self
                    .known
                    .iter()
                    .filter(|(k, _)| !seen.contains(*k))
                    .map(|(k, o)| (k.clone(), o.clone()))
                    .collect();
                for (pod, owner) in gone {
                    self.known.remove(&pod);
                    if let Some(owner) = owner {
                        self.expectations.deletion_observed(&owner, &pod);
                        self.queue.add(owner);
                    }
                }
            }
            Event::Apply(pod) => self.applied(pod),
            Event::Delete(pod) => {
                let key = pods::key(pod);
                let previous = self.known.remove(&key).flatten();
                if let Some(owner) = controller_key::<K>(pod).or(previous) {
                    self.expectations.deletion_observed(&owner, &key);
                    self.queue.add(owner);
                }
            }
        }
    }

    fn applied(&mut self, pod: &Pod) {
        let key = pods::key(pod);
        let owner = controller_key::<K>(pod);
        let previous = self.known.insert(key.clone(), owner.clone());
        if let Some(Some(old)) = &previous
            && Some(old) != owner.as_ref()
        {
            self.queue.add(old.clone());
        }
        if pod.metadata.deletion_timestamp.is_some() {
            // Being deleted counts as deleted (upstream does the same).
            if let Some(owner) = owner {
                self.expectations.deletion_observed(&owner, &key);
                self.queue.add(owner);
            }
            return;
        }
        if let Some(owner) = owner {
            if previous.is_none() {
                self.expectations.creations_observed(&owner, 1);
            }
            self.queue.add(owner);
            return;
        }
        if pods::controller_of(&pod.metadata).is_some() {
            return;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        for candidate in self.owners.state() {
            if candidate.meta().namespace.as_deref() == Some(ns)
                && candidate.selector().is_some_and(|s| s.matches(&labels))
                && let Some(name) = candidate.meta().name.as_deref()
            {
                self.queue.add(runner::key(Some(ns), name));
            }
        }
    }
}

/// The key of an object in the store.
pub fn owner_ref<K: Owner>(key: &str) -> ObjectRef<K> {
    let (ns, name) = runner::split_key(key);
    ObjectRef::new(name).within(ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use kube::runtime::reflector;
    use prometheus::{IntCounter, IntGauge};
    use serde_json::json;

    fn pod(name: &str, labels: serde_json::Value, owner_uid: Option<&str>) -> Pod {
        let refs = owner_uid.map(|uid| {
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": uid, "controller": true}])
        });
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": labels,
                         "ownerReferences": refs},
        }))
        .unwrap()
    }

    fn handler() -> (PodEvents<ReplicaSet>, Arc<WorkQueue>, Arc<Expectations>) {
        let (store, mut writer) = reflector::store::<ReplicaSet>();
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {}},
        }))
        .unwrap();
        writer.apply_watcher_event(&Event::Apply(rs));
        let queue = WorkQueue::new(
            IntGauge::new("d", "d").unwrap(),
            IntCounter::new("a", "a").unwrap(),
            IntCounter::new("r", "r").unwrap(),
        );
        let expectations = Arc::new(Expectations::default());
        (
            PodEvents::new(store, queue.clone(), expectations.clone()),
            queue,
            expectations,
        )
    }

    #[tokio::test]
    async fn a_new_owned_pod_satisfies_a_creation_once() {
        let (mut h, queue, expectations) = handler();
        expectations.expect_creations("ns/web", 1);
        let p = pod("web-abcde", json!({"app": "web"}), Some("u1"));
        h.handle(&Event::Apply(p.clone()));
        assert!(expectations.satisfied("ns/web"));
        assert_eq!(queue.get().await, "ns/web");
        queue.done("ns/web");
        // An update of the same pod is not a second creation.
        expectations.expect_creations("ns/web", 1);
        h.handle(&Event::Apply(p));
        assert!(!expectations.satisfied("ns/web"));
    }

    #[tokio::test]
    async fn an_orphan_wakes_the_replica_sets_that_select_it() {
        let (mut h, queue, _) = handler();
        h.handle(&Event::Apply(pod("stray", json!({"app": "other"}), None)));
        assert!(queue.is_empty(), "no selector matches");
        h.handle(&Event::Apply(pod("orphan", json!({"app": "web"}), None)));
        assert_eq!(queue.get().await, "ns/web");
    }

    #[tokio::test]
    async fn a_pod_deleted_while_the_watch_was_down_counts_as_deleted() {
        let (mut h, queue, expectations) = handler();
        let p = pod("web-abcde", json!({"app": "web"}), Some("u1"));
        h.handle(&Event::Apply(p));
        assert_eq!(queue.get().await, "ns/web");
        queue.done("ns/web");
        expectations.expect_deletions("ns/web", ["ns/web-abcde".to_string()]);
        // A re-list that no longer has the pod.
        h.handle(&Event::Init);
        h.handle(&Event::InitDone);
        assert!(expectations.satisfied("ns/web"));
        assert_eq!(queue.get().await, "ns/web");
    }
}
