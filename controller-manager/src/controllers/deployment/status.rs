//! The status a Deployment reports (upstream's `calculateStatus`), the
//! progress rules behind `Progressing` (`syncRolloutStatus`: complete,
//! progressing, or past `progressDeadlineSeconds`), the paused condition,
//! and writing the status only when it changed.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::conditions::{self, AVAILABLE, PROGRESSING};
use super::context::Ctx;
use super::spec;

/// Counts summed over the ReplicaSets, conditions carried over and
/// `Available` set from `replicas - maxUnavailable`.
fn calculate(ctx: &Ctx) -> DeploymentStatus {
    let d = &ctx.d;
    let all = ctx.all();
    let available = ctx.sum(&all, spec::rs_available);
    let total = ctx.sum(&all, spec::rs_replicas);
    let current = d.status.clone().unwrap_or_default();
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(ctx.sum(&all, spec::rs_actual)),
        updated_replicas: Some(ctx.new_rs().map(spec::rs_actual).unwrap_or(0)),
        ready_replicas: Some(ctx.sum(&all, spec::rs_ready)),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions,
        ..Default::default()
    };
    let mut with = d.clone();
    with.status = Some(status);
    let cond = if available >= spec::replicas(d) - spec::max_unavailable(d) {
        conditions::new(
            AVAILABLE,
            "True",
            conditions::MIN_AVAILABLE,
            "Deployment has minimum availability.".into(),
        )
    } else {
        conditions::new(
            AVAILABLE,
            "False",
            conditions::MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
        )
    };
    conditions::set(&mut with, cond);
    with.status.unwrap_or_default()
}

/// Upstream's `DeploymentComplete`: every replica updated and available,
/// no old ones left, and this generation observed.
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = spec::replicas(d);
    s.updated_replicas == Some(want)
        && s.replicas == Some(want)
        && s.available_replicas == Some(want)
        && s.observed_generation >= d.metadata.generation
}

/// Upstream's `DeploymentProgressing`: more updated, ready or available
/// pods, or fewer old ones, than last reported.
fn progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Time left before the rollout counts as stuck, when it is progressing.
fn until_deadline(d: &Deployment) -> Option<Duration> {
    let deadline = spec::progress_deadline(d)?;
    let cond = conditions::get(d, PROGRESSING)?;
    if cond.status != "True" || cond.reason.as_deref() == Some(conditions::NEW_RS_AVAILABLE) {
        return None;
    }
    let from = cond.last_update_time.as_ref()?.0;
    let at = from + jiff::SignedDuration::from_secs(deadline.into());
    let left = at.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

/// Upstream's `DeploymentTimedOut`.
fn timed_out(d: &Deployment) -> bool {
    match conditions::reason(d, PROGRESSING) {
        Some(conditions::TIMED_OUT) => true,
        Some(conditions::NEW_RS_AVAILABLE) | None => false,
        Some(_) => until_deadline(d).is_some_and(|left| left.is_zero()),
    }
}

/// Upstream's `checkPausedConditions`: Progressing=Unknown while paused
/// and once resumed (a timed-out rollout keeps saying so).
pub fn check_paused(ctx: &mut Ctx) {
    if spec::progress_deadline(&ctx.d).is_none() {
        return;
    }
    let reason = conditions::reason(&ctx.d, PROGRESSING);
    if reason == Some(conditions::TIMED_OUT) {
        return;
    }
    let paused_cond = reason == Some(conditions::PAUSED);
    let cond = match (spec::paused(&ctx.d), paused_cond) {
        (true, false) => conditions::new(
            PROGRESSING,
            "Unknown",
            conditions::PAUSED,
            "Deployment is paused".into(),
        ),
        (false, true) => conditions::new(
            PROGRESSING,
            "Unknown",
            conditions::RESUMED,
            "Deployment is resumed".into(),
        ),
        _ => return,
    };
    conditions::set(&mut ctx.d, cond);
}

/// Computes and writes the status; with `rollout`, also decides
/// `Progressing` (upstream's `syncRolloutStatus`, else
/// `syncDeploymentStatus`). Returns when to look again for the deadline.
pub async fn finish(ctx: &Ctx, cached: &Deployment, rollout: bool) -> Result<Option<Duration>> {
    let mut next = ctx.d.clone();
    next.status = Some(calculate(ctx));
    if rollout {
        progress(ctx, cached, &mut next);
        replica_failure(ctx, &mut next);
    }
    let status = next.status.clone().unwrap_or_default();
    if comparable(&status) != comparable(&cached.status.clone().unwrap_or_default()) {
        let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ctx.ns());
        let mut body = serde_json::to_value(&status)?;
        if status.conditions.is_none() {
            body["conditions"] = serde_json::Value::Null;
        }
        // Only a hash collision moves it, through its own write; a cached
        // copy here could put an older count back.
        if let Some(m) = body.as_object_mut() {
            m.remove("collisionCount");
        }
        match api
            .patch_status(
                &ctx.name(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": body})),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !rollout || complete(&next, &status) {
        return Ok(None);
    }
    Ok(until_deadline(&next).map(|left| left.max(Duration::from_millis(500))))
}

/// Upstream's `getReplicaFailures`: a `ReplicaFailure` of the new
/// ReplicaSet (else of any) shows on the Deployment (pods refused by
/// quota or admission), and goes once none has one.
fn replica_failure(ctx: &Ctx, next: &mut Deployment) {
    let failure = |rs: &k8s_openapi::api::apps::v1::ReplicaSet| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == conditions::REPLICA_FAILURE)
            .cloned()
    };
    let found = ctx
        .new_rs()
        .and_then(failure)
        .or_else(|| ctx.rss.iter().find_map(failure));
    match found {
        Some(c) => conditions::set(
            next,
            k8s_openapi::api::apps::v1::DeploymentCondition {
                type_: c.type_,
                status: c.status,
                reason: c.reason,
                message: c.message,
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time,
            },
        ),
        None => conditions::remove(next, conditions::REPLICA_FAILURE),
    }
}

/// The status as JSON with zero and absent counts alike, so a status the
/// apiserver stored without its zeros does not look changed.
fn comparable(s: &DeploymentStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, x| !x.is_null() && x.as_i64() != Some(0));
    }
    v
}

/// Sets `Progressing` on `next` from how the new status compares with the
/// cached one.
fn progress(ctx: &Ctx, cached: &Deployment, next: &mut Deployment) {
    if spec::progress_deadline(next).is_none() {
        conditions::remove(next, PROGRESSING);
        return;
    }
    let status = next.status.clone().unwrap_or_default();
    let current = conditions::get(next, PROGRESSING).cloned();
    let already_complete = status.replicas == status.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(conditions::NEW_RS_AVAILABLE);
    if already_complete {
        return;
    }
    let rs_name = ctx.new_rs().and_then(|rs| rs.metadata.name.clone());
    let old = cached.status.clone().unwrap_or_default();
    if complete(next, &status) {
        let msg = match &rs_name {
            Some(n) => format!("ReplicaSet {n:?} has successfully progressed."),
            None => String::new(),
        };
        conditions::set(
            next,
            conditions::new(PROGRESSING, "True", conditions::NEW_RS_AVAILABLE, msg),
        );
    } else if progressing(&old, &status) {
        let msg = match &rs_name {
            Some(n) => format!("ReplicaSet {n:?} is progressing."),
            None => format!("Deployment {:?} is progressing.", ctx.name()),
        };
        let mut cond = conditions::new(PROGRESSING, "True", conditions::RS_UPDATED, msg);
        if let Some(c) = &current
            && c.status == "True"
        {
            cond.last_transition_time = c.last_transition_time.clone();
        }
        // Removed first so the update time moves: progress resets the clock.
        conditions::remove(next, PROGRESSING);
        conditions::set(next, cond);
    } else if timed_out(next) {
        let msg = match &rs_name {
            Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
            None => format!("Deployment {:?} has timed out progressing.", ctx.name()),
        };
        conditions::set(
            next,
            conditions::new(PROGRESSING, "False", conditions::TIMED_OUT, msg),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(v: serde_json::Value) -> DeploymentStatus {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn complete_needs_every_replica_updated_available_and_observed() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "d", "generation": 2},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
        }))
        .unwrap();
        let done = status(
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert!(complete(&d, &done));
        let old_left = status(
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert!(!complete(&d, &old_left));
        let stale = status(
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert!(!complete(&d, &stale));
    }

    #[test]
    fn progress_is_more_updated_ready_or_available_or_fewer_old() {
        let before = status(
            json!({"replicas": 4, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3}),
        );
        let same = before.clone();
        assert!(!progressing(&before, &same));
        let fewer_old = status(
            json!({"replicas": 3, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3}),
        );
        assert!(progressing(&before, &fewer_old));
        let more_ready = status(
            json!({"replicas": 4, "updatedReplicas": 1, "readyReplicas": 4, "availableReplicas": 3}),
        );
        assert!(progressing(&before, &more_ready));
    }
}
