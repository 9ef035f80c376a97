//! The status a StatefulSet reports (upstream's `updateStatus` and
//! `completeRollingUpdate`), written through the status subresource only
//! when it changed.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::identity::pod_revision;
use super::plan::{running_and_available, running_and_ready, terminating};
use super::revisions::Revisions;
use super::spec;

/// Pod counts of a set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Pods that exist (in range or condemned, terminating included).
    pub replicas: i32,
    /// Running and Ready.
    pub ready: i32,
    /// Running and Ready for `minReadySeconds`.
    pub available: i32,
    /// Not terminating, at the current revision.
    pub current: i32,
    /// Not terminating, at the update revision.
    pub updated: i32,
}

/// Counts `pods` (upstream's `computeReplicaStatus`).
pub fn count<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    min_ready_seconds: i32,
    now: jiff::Timestamp,
    current: &str,
    update: &str,
) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        c.replicas += 1;
        if running_and_ready(p) {
            c.ready += 1;
            if running_and_available(p, min_ready_seconds, now) {
                c.available += 1;
            }
        }
        if !terminating(p) {
            let rev = pod_revision(p);
            if rev == Some(current) {
                c.current += 1;
            }
            if rev == Some(update) {
                c.updated += 1;
            }
        }
    }
    c
}

/// The status to report; a RollingUpdate whose pods are all updated and
/// ready is complete, so the update revision becomes the current one.
pub fn calculate(set: &StatefulSet, counts: Counts, revisions: &Revisions) -> StatefulSetStatus {
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: counts.replicas,
        ready_replicas: Some(counts.ready),
        available_replicas: Some(counts.available),
        current_replicas: Some(counts.current),
        updated_replicas: Some(counts.updated),
        current_revision: Some(revisions.current_name().to_string()),
        update_revision: Some(revisions.update_name().to_string()),
        collision_count: Some(revisions.collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    if !spec::on_delete(set) && counts.updated == counts.replicas && counts.ready == counts.replicas
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
    status
}

/// The fields upstream's `inconsistentStatus` compares, and the collision
/// count.
type Key = (i64, i32, i32, i32, i32, i32, String, String, i32);

fn key(s: &StatefulSetStatus) -> Key {
    (
        s.observed_generation.unwrap_or(0),
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
        s.current_replicas.unwrap_or(0),
        s.updated_replicas.unwrap_or(0),
        s.current_revision.clone().unwrap_or_default(),
        s.update_revision.clone().unwrap_or_default(),
        s.collision_count.unwrap_or(0),
    )
}

/// Writes `status` unless the set already shows it.
pub async fn write_if_changed(
    api: &Api<StatefulSet>,
    set: &StatefulSet,
    status: &StatefulSetStatus,
) -> kube::Result<()> {
    let current = set.status.clone().unwrap_or_default();
    if key(&current) == key(status) {
        return Ok(());
    }
    let name = set.metadata.name.as_deref().unwrap_or_default();
    let patch = json!({"status": status});
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ControllerRevision;
    use serde_json::json;

    fn pod(rev: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {"controller-revision-hash": rev}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready",
                "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap()
    }

    fn rev(name: &str) -> ControllerRevision {
        serde_json::from_value(json!({"metadata": {"name": name}, "revision": 1})).unwrap()
    }

    #[test]
    fn a_finished_rolling_update_makes_the_update_revision_current() {
        let set: StatefulSet =
            serde_json::from_value(json!({"metadata": {"name": "web", "generation": 4}})).unwrap();
        let revisions = Revisions {
            all: vec![],
            current: rev("web-a"),
            update: rev("web-b"),
            collision_count: 0,
        };
        let now = jiff::Timestamp::now();
        let pods = [pod("web-a", true), pod("web-b", true), pod("web-b", false)];
        let c = count(&pods, 0, now, "web-a", "web-b");
        assert_eq!((c.replicas, c.ready, c.current, c.updated), (3, 2, 1, 2));
        let s = calculate(&set, c, &revisions);
        assert_eq!(s.current_revision.as_deref(), Some("web-a"));
        assert_eq!(s.observed_generation, Some(4));
        let pods = [pod("web-b", true), pod("web-b", true)];
        let s = calculate(&set, count(&pods, 0, now, "web-a", "web-b"), &revisions);
        assert_eq!(s.current_revision.as_deref(), Some("web-b"));
        assert_eq!(s.current_replicas, Some(2));
    }
}
