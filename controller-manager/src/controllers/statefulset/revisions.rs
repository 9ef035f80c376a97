//! A StatefulSet's current and update revisions (upstream's
//! `getStatefulSetRevisions`) through the shared [`crate::history`]: the
//! update revision is the one holding today's template (reused, renumbered
//! on a rollback, or created), the current one is what
//! `status.currentRevision` names (the update revision at first).

use anyhow::Result;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::Api;
use kube::core::Selector;
use kube::runtime::reflector::Store;

use crate::controllers::replicaset::claim::controller_ref;
use crate::controllers::replicaset::claim::still_current;
use crate::history::{self, Owner};

/// The revisions a sync works with.
pub struct Revisions {
    /// Every revision the set owns, oldest first (as listed before this
    /// sync's writes).
    pub all: Vec<ControllerRevision>,
    /// The revision pods below the partition stay at.
    pub current: ControllerRevision,
    /// The revision holding the set's template.
    pub update: ControllerRevision,
    /// `status.collisionCount` after any collision this sync met.
    pub collision_count: i32,
}

impl Revisions {
    /// The current revision's name.
    pub fn current_name(&self) -> &str {
        self.current.metadata.name.as_deref().unwrap_or_default()
    }

    /// The update revision's name.
    pub fn update_name(&self) -> &str {
        self.update.metadata.name.as_deref().unwrap_or_default()
    }

    /// The template of the current revision (the set's own if the
    /// revision's data cannot be read).
    pub fn current_template(&self, set: &StatefulSet) -> Option<PodTemplateSpec> {
        history::template_of(&self.current).or_else(|| Some(set.spec.as_ref()?.template.clone()))
    }
}

/// Lists, adopts and resolves the set's revisions, creating or
/// renumbering the update revision as needed.
pub async fn resolve(
    client: &kube::Client,
    cache: &Store<ControllerRevision>,
    set: &StatefulSet,
    selector: &Selector,
) -> Result<Option<Revisions>> {
    let (Some(reference), Some(spec)) = (controller_ref(set), set.spec.as_ref()) else {
        return Ok(None);
    };
    let owner = Owner {
        meta: &set.metadata,
        reference: &reference,
        selector,
    };
    let ns = set.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    let mut all = history::owned(cache.state(), owner);
    if history::has_orphans(&all) {
        if set.metadata.deletion_timestamp.is_none() && still_current(client, set).await? {
            all = history::adopt_orphans(&api, owner, all).await?;
        } else {
            all.retain(|r| !history::has_orphans(std::slice::from_ref(r)));
        }
    }
    let mut collision_count = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let template = &spec.template;
    let candidate = history::new_revision(
        owner,
        template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
        history::template_patch(template),
        history::next_revision(&all),
        collision_count,
    );
    let name = set.metadata.name.as_deref().unwrap_or_default();
    let update =
        history::update_revision(&api, name, &all, candidate, &mut collision_count).await?;
    let current_name = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref());
    let current = all
        .iter()
        .find(|r| {
            r.metadata
                .name
                .as_deref()
                .is_some_and(|n| Some(n) == current_name)
        })
        .cloned()
        .unwrap_or_else(|| update.clone());
    Ok(Some(Revisions {
        all,
        current,
        update,
        collision_count,
    }))
}
