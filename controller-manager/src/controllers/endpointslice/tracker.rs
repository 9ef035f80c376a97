//! The controller's own EndpointSlice writes not yet seen in the informer
//! cache (upstream's `EndpointSliceTracker`): a sync that read slices
//! older than ones it wrote or deleted would create duplicates or update
//! a stale copy, so a Service whose writes are still in flight waits for
//! the watch to deliver them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{ObjectRef, Store};

/// How long a write may stay unseen before it is given up on.
const TTL: Duration = Duration::from_secs(10);

/// Slice name → the resourceVersion written (`None`: deleted), and when.
type Writes = HashMap<String, (Option<u64>, Instant)>;

/// Per Service key, the slices written or deleted.
#[derive(Default)]
pub struct Tracker {
    inner: Mutex<HashMap<String, Writes>>,
}

fn version(slice: &EndpointSlice) -> u64 {
    slice
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Tracker {
    /// Remembers that syncing `key` wrote `slice`.
    pub fn written(&self, key: &str, slice: &EndpointSlice) {
        self.record(
            key,
            slice.metadata.name.clone().unwrap_or_default(),
            Some(version(slice)),
        );
    }

    /// Remembers that syncing `key` deleted the slice `name`.
    pub fn deleted(&self, key: &str, name: &str) {
        self.record(key, name.to_string(), None);
    }

    fn record(&self, key: &str, name: String, version: Option<u64>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .entry(key.to_string())
            .or_default()
            .insert(name, (version, Instant::now()));
    }

    /// Every write of `key` is reflected in `cache` (or expired).
    pub fn observed(&self, key: &str, ns: &str, cache: &Store<EndpointSlice>) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(writes) = inner.get_mut(key) else {
            return true;
        };
        writes.retain(|name, (written, at)| {
            let cached = cache.get(&ObjectRef::new(name).within(ns));
            let seen = match written {
                Some(v) => cached.is_some_and(|s| version(&s) >= *v),
                None => cached.is_none(),
            };
            !seen && at.elapsed() < TTL
        });
        let done = writes.is_empty();
        if done {
            inner.remove(key);
        }
        done
    }
}
