//! The garbage collector (upstream's `garbagecollector`): deletes objects
//! whose owners are gone, and carries out the deletions the apiserver
//! leaves to it: `propagationPolicy: Foreground` (the owner holds the
//! `foregroundDeletion` finalizer until its blocking dependents are gone)
//! and `Orphan` (the `orphan` finalizer, removed once no dependent refers
//! to the owner any more).
//!
//! Every resource discovery lists with list, watch and delete is watched
//! (re-discovered every [`REDISCOVERY`], so custom resources join) into one
//! ownership [`graph::Graph`]; a change queues the uids it concerns, and a
//! worker decides for one uid at a time ([`decide`]).

pub mod decide;
pub mod graph;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Result, anyhow};
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::discovery::ApiResource;
use serde_json::json;

use self::decide::{Action, OwnerState, Propagation};
use self::graph::{FOREGROUND, Graph, Node, ORPHAN};
use crate::metrics::Metrics;
use crate::runner::{Outcome, Runner};

/// The controller's name, as upstream's `--controllers` spells it.
pub const NAME: &str = "garbagecollector";

/// How often discovery runs again to watch new resources.
const REDISCOVERY: Duration = Duration::from_secs(30);

/// Served resources by `(apiVersion, kind)`: how to reach an owner that
/// an owner reference names, and whether it is namespaced.
type Resources = HashMap<(String, String), (ApiResource, bool)>;

/// What the watchers and the workers share.
pub struct Shared {
    client: kube::Client,
    graph: Mutex<Graph>,
    resources: RwLock<Resources>,
}

impl Shared {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn api(&self, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }
}

/// Watches everything and collects garbage until the process stops.
pub async fn run(client: kube::Client, metrics: Metrics, workers: usize) -> Result<()> {
    let runner = Runner::new(NAME, &metrics);
    let shared = Arc::new(Shared {
        client,
        graph: Mutex::new(Graph::default()),
        resources: RwLock::new(HashMap::new()),
    });
    tokio::spawn(watch::discover_forever(shared.clone(), runner.queue()));
    runner
        .run(workers, move |uid| process(shared.clone(), uid))
        .await;
    Err(anyhow!("the workers stopped"))
}

/// Looks at one uid: finishes its orphaning or foreground deletion if it
/// is being deleted so, and deletes it or sheds references if its owners
/// say so.
async fn process(shared: Arc<Shared>, uid: String) -> Outcome {
    let Some(node) = shared.graph().get(&uid).cloned() else {
        return Ok(None);
    };
    if node.deleting_with(ORPHAN) {
        orphan_dependents(&shared, &uid).await?;
        remove_finalizer(&shared, &uid, &node, ORPHAN).await?;
        return Ok(None);
    }
    if node.deleting_with(FOREGROUND) {
        let blocking = blocking_dependents(&shared, &uid);
        if blocking.is_empty() {
            remove_finalizer(&shared, &uid, &node, FOREGROUND).await?;
            return Ok(None);
        }
    }
    let mut states = Vec::new();
    for owner in &node.owners {
        states.push((owner.uid.clone(), owner_state(&shared, &node, owner).await?));
    }
    let has_dependents = !shared.graph().dependents(&uid).is_empty();
    match decide::decide(&states, has_dependents, node.deleting) {
        Action::Keep => Ok(None),
        Action::DropReferences(uids) => {
            drop_references(&shared, &uid, &node, &uids).await?;
            Ok(None)
        }
        Action::Delete(propagation) => {
            delete(&shared, &uid, &node, propagation).await?;
            Ok(None)
        }
    }
}

/// The dependents of a foreground deletion that must be gone before it
/// finishes: those whose reference says `blockOwnerDeletion`.
fn blocking_dependents(shared: &Shared, owner: &str) -> Vec<String> {
    let graph = shared.graph();
    graph
        .dependents(owner)
        .into_iter()
        .filter(|d| {
            graph.get(d).is_some_and(|n| {
                n.owners
                    .iter()
                    .any(|o| o.uid == owner && o.block_owner_deletion == Some(true))
            })
        })
        .collect()
}

/// The state of one owner: from the graph, else from the API (the graph
/// may not have seen a new owner yet, so absence is checked, as upstream).
async fn owner_state(
    shared: &Shared,
    dependent: &Node,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<OwnerState> {
    if let Some(o) = shared.graph().get(&owner.uid) {
        return Ok(if o.deleting_with(FOREGROUND) {
            OwnerState::Waiting
        } else {
            OwnerState::Solid
        });
    }
    let found = shared
        .resources
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(owner.api_version.clone(), owner.kind.clone()))
        .cloned();
    let Some((resource, namespaced)) = found else {
        // A kind discovery does not (yet) serve: not proof the owner is gone.
        return Ok(OwnerState::Solid);
    };
    let namespace = if namespaced {
        match &dependent.namespace {
            Some(ns) => Some(ns.as_str()),
            // A cluster-scoped object naming a namespaced owner has an
            // unresolvable reference, which upstream never collects.
            None => return Ok(OwnerState::Solid),
        }
    } else {
        None
    };
    match shared
        .api(&resource, namespace)
        .get_opt(&owner.name)
        .await?
    {
        Some(o) if o.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
            let waiting = o.metadata.deletion_timestamp.is_some()
                && o.metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == FOREGROUND);
            Ok(if waiting {
                OwnerState::Waiting
            } else {
                OwnerState::Solid
            })
        }
        _ => Ok(OwnerState::Dangling),
    }
}

/// A merge patch of `node`'s metadata, pinned to the version the graph
/// saw (a conflict retries with the newer one).
async fn patch_metadata(
    shared: &Shared,
    uid: &str,
    node: &Node,
    metadata: serde_json::Value,
) -> Result<()> {
    let mut metadata = metadata;
    metadata["uid"] = json!(uid);
    metadata["resourceVersion"] = json!(node.resource_version);
    let api = shared.api(&node.resource, node.namespace.as_deref());
    match api
        .patch(
            &node.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": metadata})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn drop_references(shared: &Shared, uid: &str, node: &Node, owners: &[String]) -> Result<()> {
    let kept: Vec<_> = node
        .owners
        .iter()
        .filter(|o| !owners.contains(&o.uid))
        .collect();
    tracing::info!(name = %node.name, kind = %node.resource.kind, dropped = ?owners, "removing references to owners that are gone");
    patch_metadata(shared, uid, node, json!({"ownerReferences": kept})).await
}

async fn remove_finalizer(shared: &Shared, uid: &str, node: &Node, finalizer: &str) -> Result<()> {
    let rest: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
    patch_metadata(shared, uid, node, json!({"finalizers": rest})).await
}

/// Removes the references to `owner` from every dependent.
async fn orphan_dependents(shared: &Shared, owner: &str) -> Result<()> {
    let dependents: Vec<(String, Node)> = {
        let graph = shared.graph();
        graph
            .dependents(owner)
            .into_iter()
            .filter_map(|d| graph.get(&d).cloned().map(|n| (d, n)))
            .collect()
    };
    for (uid, node) in dependents {
        drop_references(shared, &uid, &node, &[owner.to_string()]).await?;
    }
    Ok(())
}

async fn delete(shared: &Shared, uid: &str, node: &Node, propagation: Propagation) -> Result<()> {
    tracing::info!(name = %node.name, kind = %node.resource.kind, ?propagation, "deleting an object whose owners are gone");
    let params = DeleteParams {
        propagation_policy: Some(match propagation {
            Propagation::Foreground => PropagationPolicy::Foreground,
            Propagation::Background => PropagationPolicy::Background,
        }),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match shared
        .api(&node.resource, node.namespace.as_deref())
        .delete(&node.name, &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
