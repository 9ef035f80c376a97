//! Upstream's `PodControllerRefManager.ClaimPods`: a controller owns the
//! pods whose controller reference names it and that its selector still
//! matches; it adopts matching orphans and releases owned pods that no
//! longer match, by patching their ownerReferences (pinned to the pod's
//! resourceVersion and uid, so a concurrent change makes the patch fail
//! rather than be lost).

use std::fmt::Debug;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{NamespaceResourceScope, Selector, SelectorExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::pods;

/// A namespaced controller object that owns the pods its label selector
/// matches (ReplicaSet, ReplicationController, DaemonSet, StatefulSet):
/// what claiming pods and routing pod events need of it.
pub trait Owner:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The pods it selects; `None` when the selector is missing or empty,
    /// which selects nothing (never everything).
    fn selector(&self) -> Option<Selector>;
}

/// `selector` unless it selects everything (a controller's empty selector
/// selects nothing).
pub fn non_empty(selector: Selector) -> Option<Selector> {
    (!selector.selects_all()).then_some(selector)
}

/// The ownerReference an owner's pods carry: the controller, blocking the
/// owner's foreground deletion.
pub fn controller_ref<K: Owner>(owner: &K) -> Option<OwnerReference> {
    let meta = owner.meta();
    Some(OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The pods in `candidates` (pods of the owner's namespace) that `owner`
/// controls after adopting and releasing. A pod belongs only if the
/// selector and `member` (upstream's claim filters, e.g. a StatefulSet's
/// `<set>-<ordinal>` names) both accept it.
pub async fn claim<K: Owner>(
    client: &kube::Client,
    owner: &K,
    selector: &Selector,
    candidates: Vec<Arc<Pod>>,
    member: impl Fn(&Pod) -> bool,
) -> Result<Vec<Arc<Pod>>> {
    let meta = owner.meta();
    let uid = meta.uid.clone().unwrap_or_default();
    let ns = meta.namespace.clone().unwrap_or_default();
    let owner_deleting = meta.deletion_timestamp.is_some();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut owned = Vec::new();
    let mut errors = Vec::new();
    let mut can_adopt: Option<bool> = None;
    for pod in candidates {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let matches = selector.matches(&labels) && member(&pod);
        match pods::controller_of(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push(pod);
                } else if !owner_deleting && let Err(e) = release(&pods, &pod, &uid).await {
                    errors.push(e);
                }
            }
            Some(_) => {}
            None => {
                if !matches || owner_deleting || pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                if can_adopt.is_none() {
                    can_adopt = Some(still_current(client, owner).await?);
                }
                if can_adopt != Some(true) {
                    continue;
                }
                let Some(reference) = controller_ref(owner) else {
                    continue;
                };
                match adopt(&pods, &pod, reference).await {
                    Ok(Some(adopted)) => owned.push(Arc::new(adopted)),
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(owned)
    } else {
        Err(anyhow!("claiming pods: {}", errors.join("; ")))
    }
}

/// Upstream's `RecheckDeletionTimestamp`: adopt only if a fresh read shows
/// the same owner (same uid) not being deleted, never on a stale cache.
pub async fn still_current<K: Owner>(client: &kube::Client, owner: &K) -> Result<bool> {
    let meta = owner.meta();
    let api: Api<K> = Api::namespaced(
        client.clone(),
        meta.namespace.as_deref().unwrap_or_default(),
    );
    let fresh = api
        .get_opt(meta.name.as_deref().unwrap_or_default())
        .await?;
    Ok(fresh.is_some_and(|f| f.meta().uid == meta.uid && f.meta().deletion_timestamp.is_none()))
}

/// A merge patch of `ownerReferences`, pinned to the pod's version.
fn owner_patch(pod: &Pod, refs: Vec<OwnerReference>) -> Patch<serde_json::Value> {
    let refs = if refs.is_empty() {
        serde_json::Value::Null
    } else {
        json!(refs)
    };
    Patch::Merge(json!({
        "metadata": {
            "ownerReferences": refs,
            "uid": pod.metadata.uid,
            "resourceVersion": pod.metadata.resource_version,
        }
    }))
}

/// Adds `reference`; `None` when the pod is gone.
async fn adopt(
    pods: &Api<Pod>,
    pod: &Pod,
    reference: OwnerReference,
) -> Result<Option<Pod>, String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
    refs.retain(|r| r.uid != reference.uid);
    refs.push(reference);
    match pods
        .patch(name, &PatchParams::default(), &owner_patch(pod, refs))
        .await
    {
        Ok(p) => {
            tracing::info!(pod = name, "adopted pod");
            Ok(Some(p))
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(format!("adopting pod {name}: {e}")),
    }
}

/// Removes the owner's reference (upstream ignores a pod that is gone).
async fn release(pods: &Api<Pod>, pod: &Pod, owner_uid: &str) -> Result<(), String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
    refs.retain(|r| r.uid != owner_uid);
    match pods
        .patch(name, &PatchParams::default(), &owner_patch(pod, refs))
        .await
    {
        Ok(_) => {
            tracing::info!(pod = name, "released pod that no longer matches");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 422 => Ok(()),
        Err(e) => Err(format!("releasing pod {name}: {e}")),
    }
}
