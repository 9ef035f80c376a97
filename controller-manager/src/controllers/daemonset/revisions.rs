//! A DaemonSet's ControllerRevisions (upstream's `constructHistory` and
//! `cleanupHistory`): the revision of the current template, whose hash
//! labels the pods it makes, renumbered newest on a rollback; old ones
//! kept up to `revisionHistoryLimit` (those live pods still run are never
//! deleted). `kubectl rollout history|undo daemonset` read them.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use kube::api::Api;
use kube::core::Selector;

use super::plan::NodePods;
use crate::controllers::replicaset::claim::controller_ref;
use crate::history::{self, CONTROLLER_REVISION_HASH};

/// The revisions `ds` owns (orphans matching its selector adopted) and
/// the one for its current template, created if missing. Also returns the
/// collision count, which may have grown.
pub async fn current(
    client: &kube::Client,
    ds: &DaemonSet,
    selector: &Selector,
    cached: Vec<Arc<ControllerRevision>>,
) -> Result<(ControllerRevision, Vec<ControllerRevision>, i32)> {
    let reference = controller_ref(ds).ok_or_else(|| anyhow!("the DaemonSet has no uid"))?;
    let owner = history::Owner {
        meta: &ds.metadata,
        reference: &reference,
        selector,
    };
    let ns = ds.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    let mut revisions = history::owned(cached, owner);
    if history::has_orphans(&revisions) {
        revisions = history::adopt_orphans(&api, owner, revisions).await?;
    }
    let spec = ds
        .spec
        .as_ref()
        .ok_or_else(|| anyhow!("the DaemonSet has no spec"))?;
    let mut collision_count = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let candidate = history::new_revision(
        owner,
        spec.template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref()),
        history::template_patch(&spec.template),
        history::next_revision(&revisions),
        collision_count,
    );
    let name = ds.metadata.name.as_deref().unwrap_or_default();
    let current =
        history::update_revision(&api, name, &revisions, candidate, &mut collision_count).await?;
    Ok((current, revisions, collision_count))
}

/// The hash pods of `revision` carry.
pub fn hash_of(revision: &ControllerRevision) -> String {
    revision
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CONTROLLER_REVISION_HASH))
        .cloned()
        .unwrap_or_default()
}

/// Deletes old revisions beyond `revisionHistoryLimit`, never the current
/// one nor one a pod still runs.
pub async fn clean_up(
    client: &kube::Client,
    ds: &DaemonSet,
    current: &ControllerRevision,
    revisions: &[ControllerRevision],
    pods: &NodePods,
) -> Result<()> {
    let limit = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(history::DEFAULT_HISTORY_LIMIT);
    let running: HashSet<&str> = pods
        .values()
        .flatten()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(CONTROLLER_REVISION_HASH))
        .map(String::as_str)
        .collect();
    let mut live: HashSet<&str> = revisions
        .iter()
        .filter(|r| {
            r.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(CONTROLLER_REVISION_HASH))
                .is_some_and(|h| running.contains(h.as_str()))
        })
        .filter_map(|r| r.metadata.name.as_deref())
        .collect();
    live.extend(current.metadata.name.as_deref());
    let ns = ds.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    history::truncate(&api, revisions, &live, limit).await
}
