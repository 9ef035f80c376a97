//! Informers: a watch of one resource kept in a reflector [`Store`] (the
//! controllers' cache of state), with a handler that sees every event after
//! the store has applied it, so a handler enqueuing keys and a reconcile
//! reading the store never disagree about order.

use std::fmt::Debug;
use std::hash::Hash;

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

/// Starts watching `api` in the background; returns the store it fills.
/// Wait for [`Store::wait_until_ready`] before trusting it.
pub fn spawn<K, H>(api: Api<K>, config: watcher::Config, mut handler: H) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    H: FnMut(&watcher::Event<K>) + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => handler(&event),
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&K::DynamicType::default()), error = %e, "watch failed; retrying")
                }
            }
        }
    });
    reader
}

/// The object an event carries, if any (`Init` and `InitDone` carry none).
pub fn object<K>(event: &watcher::Event<K>) -> Option<&K> {
    match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => {
            Some(o)
        }
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// The handler of a controller's primary resource: every event queues the
/// object's own `namespace/name` key.
pub fn enqueue_own_key<K: Resource>(
    queue: std::sync::Arc<crate::queue::WorkQueue>,
) -> impl FnMut(&watcher::Event<K>) + Send + 'static {
    move |event| {
        if let Some(o) = object(event)
            && let Some(name) = o.meta().name.as_deref()
        {
            queue.add(crate::runner::key(o.meta().namespace.as_deref(), name));
        }
    }
}
