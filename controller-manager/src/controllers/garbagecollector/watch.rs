//! Feeding the graph: discovery of every collectable resource, and one
//! watch per resource that records its objects and queues the uids each
//! change concerns (upstream's monitors).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinHandle;

use super::graph::Node;
use super::{REDISCOVERY, Resources, Shared};
use crate::queue::WorkQueue;

/// Resources upstream's collector leaves alone: events are many, short
/// lived and never own anything.
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// Whether the collector watches a resource: listable, watchable and
/// deletable, and not ignored.
fn collectable(resource: &ApiResource, caps: &ApiCapabilities) -> bool {
    [verbs::LIST, verbs::WATCH, verbs::DELETE]
        .iter()
        .all(|v| caps.supports_operation(v))
        && !IGNORED.contains(&(resource.group.as_str(), resource.plural.as_str()))
}

/// Runs discovery every [`REDISCOVERY`]: starts a watch for each new
/// collectable resource and stops those no longer served.
pub async fn discover_forever(shared: Arc<Shared>, queue: Arc<WorkQueue>) {
    let mut watches: HashMap<(String, String), JoinHandle<()>> = HashMap::new();
    loop {
        match Discovery::new(shared.client.clone()).run().await {
            Ok(discovery) => {
                let mut resources: Resources = HashMap::new();
                let mut served = HashSet::new();
                for group in discovery.groups() {
                    for (resource, caps) in group.recommended_resources() {
                        let namespaced = caps.scope == Scope::Namespaced;
                        resources.insert(
                            (resource.api_version.clone(), resource.kind.clone()),
                            (resource.clone(), namespaced),
                        );
                        if !collectable(&resource, &caps) {
                            continue;
                        }
                        let id = (resource.group.clone(), resource.plural.clone());
                        served.insert(id.clone());
                        watches.entry(id).or_insert_with(|| {
                            tokio::spawn(watch_resource(shared.clone(), queue.clone(), resource))
                        });
                    }
                    // Owner references may name any served version.
                    for version in group.versions() {
                        for (resource, caps) in group.versioned_resources(version) {
                            resources
                                .entry((resource.api_version.clone(), resource.kind.clone()))
                                .or_insert((resource, caps.scope == Scope::Namespaced));
                        }
                    }
                }
                watches.retain(|id, task| {
                    let keep = served.contains(id);
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                *shared.resources.write().unwrap_or_else(|e| e.into_inner()) = resources;
            }
            Err(e) => tracing::warn!(error = %e, "garbage collector discovery failed; retrying"),
        }
        tokio::time::sleep(REDISCOVERY).await;
    }
}

/// Mirrors one resource into the graph for as long as it is served.
async fn watch_resource(shared: Arc<Shared>, queue: Arc<WorkQueue>, resource: ApiResource) {
    let api: Api<DynamicObject> = Api::all_with(shared.client.clone(), &resource);
    let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    // The uids of a re-list in progress, to forget what it no longer has.
    let mut listed: Option<HashSet<String>> = None;
    while let Some(event) = stream.next().await {
        let due = match event {
            Ok(watcher::Event::Init) => {
                listed = Some(HashSet::new());
                Vec::new()
            }
            Ok(watcher::Event::InitApply(obj)) => {
                let uid = obj.metadata.uid.clone();
                if let (Some(set), Some(uid)) = (listed.as_mut(), uid) {
                    set.insert(uid);
                }
                upsert(&shared, &resource, &obj)
            }
            Ok(watcher::Event::InitDone) => match listed.take() {
                Some(set) => shared.graph().retain_resource(&resource, &set),
                None => Vec::new(),
            },
            Ok(watcher::Event::Apply(obj)) => upsert(&shared, &resource, &obj),
            Ok(watcher::Event::Delete(obj)) => match &obj.metadata.uid {
                Some(uid) => shared.graph().remove(uid),
                None => Vec::new(),
            },
            Err(e) => {
                tracing::debug!(resource = %resource.plural, error = %e, "garbage collector watch failed; retrying");
                Vec::new()
            }
        };
        for uid in due {
            queue.add(uid);
        }
    }
}

fn upsert(shared: &Shared, resource: &ApiResource, obj: &DynamicObject) -> Vec<String> {
    match Node::from_meta(resource, &obj.metadata) {
        Some((uid, node)) => shared.graph().upsert(uid, node),
        None => Vec::new(),
    }
}
