//! The status a ReplicaSet or ReplicationController reports (upstream's
//! `calculateStatus`), written through the status subresource only when
//! it changed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::kind::Replicated;
use super::pods;

/// The condition set while creating or deleting pods fails.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// A `ReplicaFailure`-style condition, the same shape in both kinds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCondition {
    /// `ReplicaFailure` (the only type upstream sets).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// `FailedCreate` or `FailedDelete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The error the apiserver gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the condition last changed status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// The status fields both kinds share (absent numbers read as 0).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Active pods it controls.
    #[serde(default)]
    pub replicas: i32,
    /// Of those, the ones carrying every template label.
    #[serde(default)]
    pub fully_labeled_replicas: i32,
    /// Of those, the Ready ones.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Of those, the ones Ready for `minReadySeconds`.
    #[serde(default)]
    pub available_replicas: i32,
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// Conditions (`ReplicaFailure`).
    #[serde(default)]
    pub conditions: Vec<ReplicaCondition>,
}

/// Why managing pods failed, for the `ReplicaFailure` condition.
#[derive(Clone, Debug)]
pub struct ManageFailure {
    /// `FailedCreate` or `FailedDelete`.
    pub reason: &'static str,
    /// The error, for the condition's message.
    pub message: String,
}

/// The status `owner` should show for its `owned` active pods.
pub fn calculate<K: Replicated>(
    owner: &K,
    owned: &[Arc<Pod>],
    failure: Option<&ManageFailure>,
    now: jiff::Timestamp,
) -> ReplicaStatus {
    let current: ReplicaStatus = serde_json::from_value(owner.status_json()).unwrap_or_default();
    let template_labels = owner
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = owner.min_ready_seconds();
    let mut status = ReplicaStatus {
        replicas: owned.len() as i32,
        observed_generation: owner.meta().generation.unwrap_or(0),
        ..Default::default()
    };
    for pod in owned {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            status.fully_labeled_replicas += 1;
        }
        if pods::is_ready(pod) {
            status.ready_replicas += 1;
            if pods::is_available(pod, min_ready, now) {
                status.available_replicas += 1;
            }
        }
    }
    // Keep other conditions; ReplicaFailure follows the last attempt
    // (kept as it was while failing, so its time marks the first failure).
    status.conditions = current
        .conditions
        .iter()
        .filter(|c| c.type_ != REPLICA_FAILURE)
        .cloned()
        .collect();
    if let Some(f) = failure {
        let existing = current
            .conditions
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .cloned();
        status.conditions.push(existing.unwrap_or(ReplicaCondition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: Some(f.reason.into()),
            message: Some(f.message.clone()),
            last_transition_time: Some(Time(now)),
        }));
    }
    status
}

/// When a ready pod will have been ready for `minReadySeconds`, so that
/// `availableReplicas` is recounted then (nothing else would wake the
/// controller).
pub fn next_availability_check(
    min_ready_seconds: i32,
    owned: &[Arc<Pod>],
    now: jiff::Timestamp,
) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    owned
        .iter()
        .filter(|p| !pods::is_available(p, min_ready_seconds, now))
        .filter_map(|p| pods::ready_since(p).flatten())
        .map(|since| {
            let at = since + jiff::SignedDuration::from_secs(min_ready_seconds.into());
            let wait = at.duration_since(now).as_secs_f64().max(0.0);
            // A little past the boundary: availability is strictly after.
            Duration::from_secs_f64(wait) + Duration::from_millis(200)
        })
        .min()
}

/// Writes `status` when it differs from what `owner` shows.
pub async fn write_if_changed<K: Replicated>(
    api: &Api<K>,
    owner: &K,
    status: &ReplicaStatus,
) -> kube::Result<()> {
    let current: ReplicaStatus = serde_json::from_value(owner.status_json()).unwrap_or_default();
    if current == *status {
        return Ok(());
    }
    let mut body = serde_json::to_value(status).unwrap_or_default();
    if status.conditions.is_empty() {
        // A merge patch removes a field only when told to.
        body["conditions"] = Value::Null;
    }
    let name = owner.meta().name.as_deref().unwrap_or_default();
    match api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": body })),
        )
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
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use serde_json::json;

    fn pod(labels: Value, ready_at: Option<&str>) -> Arc<Pod> {
        let conditions = match ready_at {
            Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]),
            None => json!([{"type": "Ready", "status": "False"}]),
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "labels": labels},
                "spec": {"containers": []},
                "status": {"conditions": conditions},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn counts_follow_labels_readiness_and_min_ready_seconds() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "rs", "generation": 3},
            "spec": {
                "replicas": 3,
                "minReadySeconds": 10,
                "selector": {"matchLabels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a", "tier": "web"}}},
            },
        }))
        .unwrap();
        let now: jiff::Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let owned = vec![
            pod(
                json!({"app": "a", "tier": "web"}),
                Some("2024-01-01T00:00:00Z"),
            ),
            pod(json!({"app": "a"}), Some("2024-01-01T00:00:55Z")),
            pod(json!({"app": "a", "tier": "web"}), None),
        ];
        let s = calculate(&rs, &owned, None, now);
        assert_eq!(
            (
                s.replicas,
                s.fully_labeled_replicas,
                s.ready_replicas,
                s.available_replicas,
                s.observed_generation
            ),
            (3, 2, 2, 1, 3)
        );
        let next = next_availability_check(10, &owned, now);
        assert!(next.is_some_and(|d| d > Duration::from_secs(4) && d < Duration::from_secs(6)));
        let failed = calculate(
            &rs,
            &owned,
            Some(&ManageFailure {
                reason: "FailedCreate",
                message: "quota".into(),
            }),
            now,
        );
        assert_eq!(failed.conditions[0].reason.as_deref(), Some("FailedCreate"));
    }
}
