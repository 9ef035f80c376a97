//! The Deployment conditions and upstream's reasons and rules for
//! setting them (`SetDeploymentCondition`: a condition with the same
//! status and reason is left alone; a same-status change keeps its
//! transition time).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Enough pods are available (at least `replicas - maxUnavailable`).
pub const AVAILABLE: &str = "Available";
/// The rollout is moving, done, paused, or stuck.
pub const PROGRESSING: &str = "Progressing";

/// Creating or deleting pods fails (copied from a ReplicaSet).
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Available=True.
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available=False.
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
/// Progressing=True: the new ReplicaSet was just created.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// Progressing=True: the new ReplicaSet already existed.
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// Progressing=True: pods moved toward the new template.
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing=True: the rollout is complete.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing=False: no progress within `progressDeadlineSeconds`.
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// Progressing=Unknown: `spec.paused`.
pub const PAUSED: &str = "DeploymentPaused";
/// Progressing=Unknown: resumed after a pause.
pub const RESUMED: &str = "DeploymentResumed";

/// A condition stamped now.
pub fn new(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    let now = Time(jiff::Timestamp::now());
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// The condition of `type_`, if set.
pub fn get<'a>(d: &'a Deployment, type_: &str) -> Option<&'a DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The reason of the condition of `type_`, if set.
pub fn reason<'a>(d: &'a Deployment, type_: &str) -> Option<&'a str> {
    get(d, type_)?.reason.as_deref()
}

/// Upstream's `SetDeploymentCondition`.
pub fn set(d: &mut Deployment, mut cond: DeploymentCondition) {
    if let Some(current) = get(d, &cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove(d, &cond.type_);
    d.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(cond);
}

/// Drops the condition of `type_`.
pub fn remove(d: &mut Deployment, type_: &str) {
    if let Some(conds) = d.status.as_mut().and_then(|s| s.conditions.as_mut()) {
        conds.retain(|c| c.type_ != type_);
    }
}
