//! One watch cache per resource, fed by a single storage watch.
//!
//! The cache holds the current objects and a window of recent events. Every
//! object version is decoded and encoded once: the decoded form serves
//! selectors, the shared encoded bytes go to every list and watch response.
//! Watchers older than the window are replayed from storage first, so a
//! client that reconnects after an apiserver restart resumes from its last
//! resourceVersion instead of re-listing; only history that storage itself
//! has compacted answers 410 Gone.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{RwLock, broadcast, watch};

use crate::storage::{KeyValue, Storage, StorageError, WatchEvent};

/// Events kept for watchers that resume from a recent resourceVersion.
const HISTORY_CAPACITY: usize = 4096;
/// Events buffered per watcher before it is cut off as too slow.
const BROADCAST_CAPACITY: usize = 8192;

/// One version of one object, decoded and encoded once.
#[derive(Debug)]
pub struct CachedObject {
    /// Storage key.
    pub key: String,
    /// The object with `metadata.resourceVersion` set.
    pub value: Value,
    /// `value` encoded as JSON.
    pub bytes: Bytes,
    /// The object's resourceVersion.
    pub revision: i64,
}

impl CachedObject {
    /// Encodes an object version (already stamped with its resourceVersion).
    pub fn new(key: String, value: Value, revision: i64) -> Self {
        let bytes = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        CachedObject {
            key,
            value,
            bytes,
            revision,
        }
    }

    /// Decodes a stored value and stamps its resourceVersion.
    pub fn from_kv(kv: &KeyValue) -> Option<Self> {
        let mut value: Value = serde_json::from_slice(&kv.value).ok()?;
        stamp_resource_version(&mut value, kv.mod_revision);
        let bytes = Bytes::from(serde_json::to_vec(&value).ok()?);
        Some(CachedObject {
            key: kv.key.clone(),
            value,
            bytes,
            revision: kv.mod_revision,
        })
    }
}

/// Sets `metadata.resourceVersion` from a storage revision.
pub fn stamp_resource_version(value: &mut Value, revision: i64) {
    crate::registry::meta::set_meta(
        value,
        "resourceVersion",
        Value::String(revision.to_string()),
    );
}

/// Watch event types, as upstream names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A new object.
    Added,
    /// A changed object.
    Modified,
    /// A removed object (carrying its last state).
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object.
#[derive(Debug, Clone)]
pub struct CacheEvent {
    /// What happened.
    pub kind: EventType,
    /// The object after the change (its last state for deletions, with the
    /// deletion's revision as resourceVersion).
    pub object: Arc<CachedObject>,
    /// The object before the change, for selector transitions.
    pub prev: Option<Arc<CachedObject>>,
    /// Revision of the change.
    pub revision: i64,
}

/// What a cache watcher receives: one object change.
pub type CacheItem = Arc<CacheEvent>;

struct State {
    objects: BTreeMap<String, Arc<CachedObject>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// Every event after this revision is in `history`.
    oldest: i64,
    /// The newest revision the cache has seen.
    revision: i64,
}

/// The watch cache of one resource (one storage key prefix).
pub struct WatchCache {
    prefix: String,
    storage: Arc<dyn Storage>,
    state: RwLock<State>,
    events: broadcast::Sender<CacheItem>,
    revision: watch::Sender<i64>,
}

impl WatchCache {
    /// Creates the cache and starts feeding it from storage.
    pub fn start(storage: Arc<dyn Storage>, prefix: String) -> Arc<Self> {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (revision, _) = watch::channel(0);
        let cache = Arc::new(WatchCache {
            prefix,
            storage,
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                oldest: 0,
                revision: 0,
            }),
            events,
            revision,
        });
        let feeder = cache.clone();
        tokio::spawn(async move { feeder.feed().await });
        cache
    }

    /// The key prefix this cache mirrors.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Keeps the cache in step with storage forever, re-listing after any
    /// watch failure.
    async fn feed(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.sync_once().await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(prefix = %self.prefix, error = %e, "watch cache lost its storage watch; re-listing");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn sync_once(&self) -> Result<(), StorageError> {
        let page = self.storage.list(&self.prefix, "", 0, 0).await?;
        self.replace(page.items, page.revision).await;
        let mut stream = self.storage.watch(&self.prefix, page.revision).await?;
        while let Some(ev) = stream.next().await {
            self.apply(ev?).await;
        }
        Err(StorageError::Unavailable("storage watch ended".into()))
    }

    /// Installs a fresh listing, announcing the differences as events so
    /// that running watchers stay consistent across a re-list.
    async fn replace(&self, items: Vec<KeyValue>, revision: i64) {
        let mut state = self.state.write().await;
        let first = state.revision == 0;
        let mut fresh = BTreeMap::new();
        for kv in &items {
            if let Some(obj) = CachedObject::from_kv(kv) {
                fresh.insert(obj.key.clone(), Arc::new(obj));
            }
        }
        if !first {
            let mut changes = Vec::new();
            for (key, obj) in &fresh {
                match state.objects.get(key) {
                    Some(old) if old.revision == obj.revision => {}
                    Some(old) => changes.push(CacheEvent {
                        kind: EventType::Modified,
                        object: obj.clone(),
                        prev: Some(old.clone()),
                        revision: obj.revision,
                    }),
                    None => changes.push(CacheEvent {
                        kind: EventType::Added,
                        object: obj.clone(),
                        prev: None,
                        revision: obj.revision,
                    }),
                }
            }
            for (key, old) in &state.objects {
                if !fresh.contains_key(key) {
                    changes.push(deletion(old.clone(), revision));
                }
            }
            changes.sort_by_key(|c| c.revision);
            for c in changes {
                self.push(&mut state, c);
            }
        } else {
            state.oldest = revision;
        }
        state.objects = fresh;
        state.revision = state.revision.max(revision);
        self.revision.send_replace(state.revision);
    }

    async fn apply(&self, ev: WatchEvent) {
        let mut state = self.state.write().await;
        match ev {
            WatchEvent::Put { kv, .. } => {
                let Some(obj) = CachedObject::from_kv(&kv) else {
                    tracing::error!(key = %kv.key, "stored value is not JSON; skipped");
                    return;
                };
                let obj = Arc::new(obj);
                let prev = state.objects.insert(obj.key.clone(), obj.clone());
                let kind = if prev.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                let revision = obj.revision;
                self.push(
                    &mut state,
                    CacheEvent {
                        kind,
                        object: obj,
                        prev,
                        revision,
                    },
                );
            }
            WatchEvent::Delete { prev, revision } => {
                let old = state.objects.remove(&prev.key);
                let last = match old {
                    Some(o) => o,
                    None => match CachedObject::from_kv(&prev) {
                        Some(o) => Arc::new(o),
                        None => return,
                    },
                };
                self.push(&mut state, deletion(last, revision));
            }
        }
    }

    fn push(&self, state: &mut State, event: CacheEvent) {
        let event = Arc::new(event);
        state.revision = state.revision.max(event.revision);
        state.history.push_back(event.clone());
        while state.history.len() > HISTORY_CAPACITY {
            if let Some(old) = state.history.pop_front() {
                state.oldest = old.revision;
            }
        }
        self.revision.send_replace(state.revision);
        let _ = self.events.send(event);
    }

    /// Forgets history up to `revision`, after storage compacted it, so the
    /// cache answers 410 for exactly what storage no longer has.
    pub async fn compacted(&self, revision: i64) {
        let mut state = self.state.write().await;
        while state
            .history
            .front()
            .is_some_and(|e| e.revision <= revision)
        {
            state.history.pop_front();
        }
        state.oldest = state.oldest.max(revision);
    }

    /// Resolves once the cache holds its first listing.
    pub async fn wait_synced(&self) {
        let mut rx = self.revision.subscribe();
        let _ = rx.wait_for(|r| *r > 0).await;
    }

    /// The newest revision the cache has applied.
    pub fn revision(&self) -> i64 {
        *self.revision.borrow()
    }

    /// The objects under `prefix` (a namespace's or the whole resource's)
    /// and the revision they are current at.
    pub async fn snapshot(&self, prefix: &str) -> (Vec<Arc<CachedObject>>, i64) {
        let state = self.state.read().await;
        let items = state
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, state.revision)
    }

    /// One object, if the cache has it.
    pub async fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.state.read().await.objects.get(key).cloned()
    }

    /// Starts a watch. `from` is the revision the client has seen (0: start
    /// with the current state as ADDED events). Returns the initial events
    /// and a receiver for what follows.
    pub async fn watch(
        &self,
        from: i64,
    ) -> Result<(Vec<Arc<CacheEvent>>, i64, broadcast::Receiver<CacheItem>), WatchStart> {
        let state = self.state.read().await;
        let rx = self.events.subscribe();
        if from == 0 {
            let initial = state
                .objects
                .values()
                .map(|o| {
                    Arc::new(CacheEvent {
                        kind: EventType::Added,
                        object: o.clone(),
                        prev: None,
                        revision: o.revision,
                    })
                })
                .collect();
            return Ok((initial, state.revision, rx));
        }
        if from < state.oldest {
            return Err(WatchStart::Replay {
                until: state.oldest,
            });
        }
        let replay = state
            .history
            .iter()
            .filter(|e| e.revision > from)
            .cloned()
            .collect();
        Ok((replay, state.revision, rx))
    }

    /// The changes after `from` up to `until`, read from storage as the
    /// difference between the listings at both revisions, for a watcher
    /// older than the cache's window. Intermediate states of an object are
    /// folded into its last one, which level-triggered clients never miss;
    /// a compacted `from` fails with [`StorageError::Compacted`].
    pub async fn replay_from_storage(
        &self,
        from: i64,
        until: i64,
    ) -> Result<Vec<Arc<CacheEvent>>, StorageError> {
        let before = self.storage.list(&self.prefix, "", from, 0).await?;
        let after = self.storage.list(&self.prefix, "", until, 0).await?;
        let old: BTreeMap<String, KeyValue> = before
            .items
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        let mut events = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for kv in after.items {
            seen.insert(kv.key.clone());
            let prev = old.get(&kv.key);
            if prev.is_some_and(|p| p.mod_revision == kv.mod_revision) {
                continue;
            }
            let (Some(obj), prev) = (
                CachedObject::from_kv(&kv),
                prev.and_then(CachedObject::from_kv),
            ) else {
                continue;
            };
            let kind = if prev.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            };
            events.push(CacheEvent {
                kind,
                revision: obj.revision,
                object: Arc::new(obj),
                prev: prev.map(Arc::new),
            });
        }
        for (key, kv) in &old {
            if !seen.contains(key)
                && let Some(obj) = CachedObject::from_kv(kv)
            {
                events.push(deletion(Arc::new(obj), until));
            }
        }
        events.sort_by_key(|e| e.revision);
        Ok(events.into_iter().map(Arc::new).collect())
    }

    /// The oldest revision a watch can start from without storage replay.
    pub async fn oldest(&self) -> i64 {
        self.state.read().await.oldest
    }
}

/// Why a cache watch could not start from the cache alone.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchStart {
    /// The revision is older than the cache's window: replay from storage
    /// up to `until`, then continue from the cache.
    Replay {
        /// The cache's oldest revision.
        until: i64,
    },
}

/// A deletion event carrying the object's last state, stamped with the
/// deletion revision as upstream does.
fn deletion(last: Arc<CachedObject>, revision: i64) -> CacheEvent {
    let mut value = last.value.clone();
    stamp_resource_version(&mut value, revision);
    let bytes = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
    let object = Arc::new(CachedObject {
        key: last.key.clone(),
        value,
        bytes,
        revision,
    });
    CacheEvent {
        kind: EventType::Deleted,
        object,
        prev: Some(last),
        revision,
    }
}
