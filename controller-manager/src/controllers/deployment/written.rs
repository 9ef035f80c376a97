//! The controller's own ReplicaSet writes not yet seen in the cache: a
//! sync that read a ReplicaSet older than one it wrote could add surge on
//! top of a size it no longer sees (several steps of a rollout run in
//! quick succession), so a Deployment whose writes are still in flight
//! waits for the watch to deliver them, as upstream's expectations do.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::runtime::reflector::{ObjectRef, Store};

/// How long a write may stay unseen before it is given up on (the
/// ReplicaSet was deleted, say).
const TTL: Duration = Duration::from_secs(10);

/// ReplicaSet name → the resourceVersion a write produced, and when.
type Writes = HashMap<String, (u64, Instant)>;

/// Per Deployment key, the ReplicaSets written and the resourceVersion
/// each write produced.
#[derive(Default)]
pub struct Written {
    inner: Mutex<HashMap<String, Writes>>,
}

fn version(rs: &ReplicaSet) -> u64 {
    rs.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Written {
    /// Remembers that syncing `key` wrote `rs`.
    pub fn record(&self, key: &str, rs: &ReplicaSet) {
        let name = rs.metadata.name.clone().unwrap_or_default();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .entry(key.to_string())
            .or_default()
            .insert(name, (version(rs), Instant::now()));
    }

    /// Every write of `key` is in `cache` (or expired); forgets those.
    pub fn observed(&self, key: &str, ns: &str, cache: &Store<ReplicaSet>) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(writes) = inner.get_mut(key) else {
            return true;
        };
        writes.retain(|name, (written, at)| {
            let seen = cache
                .get(&ObjectRef::new(name).within(ns))
                .is_some_and(|rs| version(&rs) >= *written);
            !seen && at.elapsed() < TTL
        });
        let done = writes.is_empty();
        if done {
            inner.remove(key);
        }
        done
    }
}
