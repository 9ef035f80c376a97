//! The annotations upstream keeps on a Deployment and its ReplicaSets:
//! `deployment.kubernetes.io/revision` (the rollout history `kubectl
//! rollout history|undo` reads), `desired-replicas` and `max-replicas`
//! (what proportional scaling works from), and the Deployment's own
//! annotations copied onto its new ReplicaSet (`kubernetes.io/change-cause`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

/// The revision of a ReplicaSet, and the Deployment's newest one.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a reused ReplicaSet had.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `replicas + maxSurge` of the Deployment at that time.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Deployment annotations never copied to ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// A ReplicaSet's revision (0 when absent or unparsable).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION).unwrap_or(0)
}

/// The highest revision among `rss`.
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter().map(revision).max().unwrap_or(0)
}

/// A numeric annotation.
pub fn annotation(rs: &ReplicaSet, key: &str) -> Option<i64> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// The Deployment's annotations a new ReplicaSet carries.
pub fn copied(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The annotations `rs` should have to become revision `new_revision`
/// (upstream's `SetNewReplicaSetAnnotations`): the Deployment's own, the
/// revision, and the old revision appended to the history.
pub fn for_revision(
    d: &Deployment,
    rs: &ReplicaSet,
    new_revision: i64,
) -> BTreeMap<String, String> {
    let mut out = rs.metadata.annotations.clone().unwrap_or_default();
    out.extend(copied(d));
    let old = revision(rs);
    if old > 0 && old < new_revision {
        let history = match out.get(REVISION_HISTORY) {
            Some(h) if !h.is_empty() => format!("{h},{old}"),
            _ => old.to_string(),
        };
        out.insert(REVISION_HISTORY.into(), history);
    }
    out.insert(REVISION.into(), new_revision.to_string());
    out
}
