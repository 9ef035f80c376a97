//! Upstream's `ClaimReplicaSets`: a Deployment owns the ReplicaSets whose
//! controller reference names it and that its selector still matches; it
//! adopts matching orphans (after a fresh read shows it is not being
//! deleted) and releases owned ones that stopped matching.

use std::sync::Arc;

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use serde_json::json;

use crate::controllers::replicaset::pods::controller_of;

/// The ownerReference a Deployment's ReplicaSets carry.
pub fn controller_ref(d: &Deployment) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: d.metadata.name.clone()?,
        uid: d.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The ReplicaSets among `candidates` (the namespace's) that `d` controls
/// once orphans are adopted and strays released.
pub async fn claim(
    client: &kube::Client,
    d: &Deployment,
    selector: &Selector,
    candidates: Vec<Arc<ReplicaSet>>,
) -> Result<Vec<ReplicaSet>> {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let deleting = d.metadata.deletion_timestamp.is_some();
    let api: Api<ReplicaSet> = Api::namespaced(
        client.clone(),
        d.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let mut owned = Vec::new();
    let mut can_adopt = None;
    for rs in candidates {
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        let matches = selector.matches(&labels);
        match controller_of(&rs.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push((*rs).clone());
                } else if !deleting {
                    let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
                    refs.retain(|r| r.uid != uid);
                    set_owners(&api, &rs, refs).await?;
                }
            }
            Some(_) => {}
            None if matches && !deleting && rs.metadata.deletion_timestamp.is_none() => {
                if can_adopt.is_none() {
                    can_adopt = Some(still_current(client, d).await?);
                }
                let (Some(true), Some(reference)) = (can_adopt, controller_ref(d)) else {
                    continue;
                };
                let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
                refs.push(reference);
                if let Some(adopted) = set_owners(&api, &rs, refs).await? {
                    owned.push(adopted);
                }
            }
            None => {}
        }
    }
    Ok(owned)
}

/// Adopt only if the Deployment still exists, is the same one, and is
/// not being deleted.
async fn still_current(client: &kube::Client, d: &Deployment) -> Result<bool> {
    let api: Api<Deployment> = Api::namespaced(
        client.clone(),
        d.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let fresh = api
        .get_opt(d.metadata.name.as_deref().unwrap_or_default())
        .await?;
    Ok(fresh.is_some_and(|f| {
        f.metadata.uid == d.metadata.uid && f.metadata.deletion_timestamp.is_none()
    }))
}

/// Writes `refs` as the ReplicaSet's ownerReferences, pinned to its
/// version; `None` when it is gone.
async fn set_owners(
    api: &Api<ReplicaSet>,
    rs: &ReplicaSet,
    refs: Vec<OwnerReference>,
) -> Result<Option<ReplicaSet>> {
    let refs = if refs.is_empty() {
        serde_json::Value::Null
    } else {
        json!(refs)
    };
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "uid": rs.metadata.uid,
        "resourceVersion": rs.metadata.resource_version,
    }});
    let name = rs.metadata.name.as_deref().unwrap_or_default();
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(rs) => Ok(Some(rs)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}
