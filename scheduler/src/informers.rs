//! Watches of every kind the scheduler reads, through the `kube` crate's
//! watcher, turned into [`ClusterEvent`]s on one channel so the scheduling
//! thread applies them in order between decisions. A re-list after a
//! broken watch reports objects that vanished meanwhile as deletions.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

/// A change the scheduling thread must apply.
#[derive(Debug)]
pub enum ClusterEvent {
    Pod(Change<Pod>),
    Node(Change<Node>),
    Namespace(Change<Namespace>),
    Pvc(Change<PersistentVolumeClaim>),
    Pv(Change<PersistentVolume>),
    StorageClass(Change<StorageClass>),
    Pdb(Change<PodDisruptionBudget>),
    /// Objects default topology spreading groups pods by.
    Service(Change<Service>),
    ReplicationController(Change<ReplicationController>),
    ReplicaSet(Change<ReplicaSet>),
    StatefulSet(Change<StatefulSet>),
    /// An informer finished its first list.
    Synced(&'static str),
    /// A binding the scheduler sent failed: undo the assumption, retry.
    BindFailed {
        uid: String,
        error: String,
    },
}

/// An object added or updated, or deleted.
#[derive(Debug)]
pub enum Change<K> {
    Upsert(Arc<K>),
    Delete(Arc<K>),
}

impl<K> Change<K> {
    /// The object, and whether it is still there (true for an upsert).
    pub fn split(self) -> (Arc<K>, bool) {
        match self {
            Change::Upsert(o) => (o, true),
            Change::Delete(o) => (o, false),
        }
    }
}

/// The informers the scheduler waits for before its first decision.
pub const INFORMERS: &[&str] = &[
    "pods",
    "nodes",
    "namespaces",
    "persistentvolumeclaims",
    "persistentvolumes",
    "storageclasses",
    "poddisruptionbudgets",
    "services",
    "replicationcontrollers",
    "replicasets",
    "statefulsets",
];

/// Starts one watcher per kind, all feeding `tx`.
pub fn spawn_all(client: kube::Client, tx: UnboundedSender<ClusterEvent>) {
    spawn(
        Api::<Pod>::all(client.clone()),
        "pods",
        tx.clone(),
        ClusterEvent::Pod,
    );
    spawn(
        Api::<Node>::all(client.clone()),
        "nodes",
        tx.clone(),
        ClusterEvent::Node,
    );
    spawn(
        Api::<Namespace>::all(client.clone()),
        "namespaces",
        tx.clone(),
        ClusterEvent::Namespace,
    );
    spawn(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        "persistentvolumeclaims",
        tx.clone(),
        ClusterEvent::Pvc,
    );
    spawn(
        Api::<PersistentVolume>::all(client.clone()),
        "persistentvolumes",
        tx.clone(),
        ClusterEvent::Pv,
    );
    spawn(
        Api::<StorageClass>::all(client.clone()),
        "storageclasses",
        tx.clone(),
        ClusterEvent::StorageClass,
    );
    spawn(
        Api::<PodDisruptionBudget>::all(client.clone()),
        "poddisruptionbudgets",
        tx.clone(),
        ClusterEvent::Pdb,
    );
    spawn(
        Api::<Service>::all(client.clone()),
        "services",
        tx.clone(),
        ClusterEvent::Service,
    );
    spawn(
        Api::<ReplicationController>::all(client.clone()),
        "replicationcontrollers",
        tx.clone(),
        ClusterEvent::ReplicationController,
    );
    spawn(
        Api::<ReplicaSet>::all(client.clone()),
        "replicasets",
        tx.clone(),
        ClusterEvent::ReplicaSet,
    );
    spawn(
        Api::<StatefulSet>::all(client),
        "statefulsets",
        tx,
        ClusterEvent::StatefulSet,
    );
}

fn spawn<K>(
    api: Api<K>,
    name: &'static str,
    tx: UnboundedSender<ClusterEvent>,
    wrap: fn(Change<K>) -> ClusterEvent,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut known: HashMap<String, Arc<K>> = HashMap::new();
        let mut relisted: HashMap<String, Arc<K>> = HashMap::new();
        let mut synced = false;
        // Back off between failed watches and lists instead of spinning
        // when the apiserver is down or refuses us.
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            let event = match item {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(informer = name, error = %e, "watch failed");
                    continue;
                }
            };
            let sent = match event {
                Event::Apply(obj) => {
                    let obj = Arc::new(obj);
                    let replaced = known.insert(key(obj.as_ref()), obj.clone());
                    send_replacement(&tx, wrap, replaced, &obj)
                        .and_then(|_| tx.send(wrap(Change::Upsert(obj))))
                }
                Event::Delete(obj) => {
                    let obj = Arc::new(obj);
                    known.remove(&key(obj.as_ref()));
                    tx.send(wrap(Change::Delete(obj)))
                }
                Event::Init => {
                    relisted.clear();
                    Ok(())
                }
                Event::InitApply(obj) => {
                    let obj = Arc::new(obj);
                    relisted.insert(key(obj.as_ref()), obj.clone());
                    let replaced = known.get(&key(obj.as_ref())).cloned();
                    send_replacement(&tx, wrap, replaced, &obj)
                        .and_then(|_| tx.send(wrap(Change::Upsert(obj))))
                }
                Event::InitDone => {
                    let vanished: Vec<Arc<K>> = known
                        .iter()
                        .filter(|(k, _)| !relisted.contains_key(*k))
                        .map(|(_, v)| v.clone())
                        .collect();
                    known = std::mem::take(&mut relisted);
                    let mut result = Ok(());
                    for obj in vanished {
                        result = result.and(tx.send(wrap(Change::Delete(obj))));
                    }
                    if !synced {
                        synced = true;
                        result = result.and(tx.send(ClusterEvent::Synced(name)));
                    }
                    result
                }
            };
            if sent.is_err() {
                return; // The scheduler stopped.
            }
        }
    });
}

/// When an object under a name was replaced by another one (a different
/// uid: deleted and recreated while the watch was down), the old one is
/// reported deleted first, since the scheduler tracks objects by uid.
fn send_replacement<K: Resource>(
    tx: &UnboundedSender<ClusterEvent>,
    wrap: fn(Change<K>) -> ClusterEvent,
    previous: Option<Arc<K>>,
    current: &Arc<K>,
) -> Result<(), tokio::sync::mpsc::error::SendError<ClusterEvent>> {
    match previous {
        Some(old) if old.meta().uid != current.meta().uid => tx.send(wrap(Change::Delete(old))),
        _ => Ok(()),
    }
}

fn key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": "p", "namespace": "ns", "uid": uid}}),
            )
            .unwrap_or_default(),
        )
    }

    #[test]
    fn a_name_reused_by_another_uid_reports_the_old_object_deleted() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        assert!(send_replacement(&tx, ClusterEvent::Pod, Some(pod("a")), &pod("a")).is_ok());
        assert!(rx.try_recv().is_err(), "same uid: nothing to report");
        assert!(send_replacement(&tx, ClusterEvent::Pod, Some(pod("a")), &pod("b")).is_ok());
        match rx.try_recv() {
            Ok(ClusterEvent::Pod(Change::Delete(old))) => {
                assert_eq!(old.metadata.uid.as_deref(), Some("a"))
            }
            other => panic!("expected the old pod deleted, got {other:?}"),
        }
    }
}
