//! One sync's working state: the Deployment (a copy whose status
//! conditions the sync edits), the ReplicaSets it owns (updated in place
//! as the sync scales them), which of them is the new one, and scaling a
//! ReplicaSet with upstream's `ScalingReplicaSet` Event.

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use std::sync::Arc;

use super::annotations::{DESIRED_REPLICAS, MAX_REPLICAS};
use super::spec;
use super::written::Written;
use crate::recorder::EventSink;

/// The state one reconcile of a Deployment works on.
pub struct Ctx {
    /// For writes.
    pub client: kube::Client,
    /// This replica's identity, reported with Events.
    pub identity: String,
    /// The Deployment as cached, with the conditions this sync set.
    pub d: Deployment,
    /// The ReplicaSets it controls, as last written or cached.
    pub rss: Vec<ReplicaSet>,
    /// Index in `rss` of the ReplicaSet whose template is the Deployment's.
    pub new: Option<usize>,
    /// Where this sync's ReplicaSet writes are remembered.
    pub written: Arc<Written>,
    /// The Deployment's queue key.
    pub key: String,
}

impl Ctx {
    /// The Deployment's namespace.
    pub fn ns(&self) -> String {
        self.d.metadata.namespace.clone().unwrap_or_default()
    }

    /// The Deployment's name.
    pub fn name(&self) -> String {
        self.d.metadata.name.clone().unwrap_or_default()
    }

    /// ReplicaSets in the namespace.
    pub fn rs_api(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), &self.ns())
    }

    /// The new ReplicaSet, if there is one.
    pub fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new.and_then(|i| self.rss.get(i))
    }

    /// Indices of the old ReplicaSets, oldest first (upstream's
    /// `ReplicaSetsByCreationTimestamp`).
    pub fn old(&self) -> Vec<usize> {
        let mut old: Vec<usize> = (0..self.rss.len())
            .filter(|&i| Some(i) != self.new)
            .collect();
        old.sort_by(|&a, &b| created(&self.rss[a]).cmp(&created(&self.rss[b])));
        old
    }

    /// Sum of `spec.replicas` over the given ReplicaSets.
    pub fn sum(&self, indices: &[usize], f: fn(&ReplicaSet) -> i32) -> i32 {
        indices.iter().map(|&i| f(&self.rss[i])).sum()
    }

    /// Every index, the new ReplicaSet's included.
    pub fn all(&self) -> Vec<usize> {
        (0..self.rss.len()).collect()
    }

    /// Sets ReplicaSet `i` to `to` replicas and the Deployment's current
    /// desired/max annotations (upstream's `scaleReplicaSet`); returns
    /// whether its size changed. Pinned to the cached resourceVersion, so
    /// a stale cache fails the write rather than scaling twice.
    pub async fn scale(&mut self, i: usize, to: i32) -> Result<bool> {
        let desired = spec::replicas(&self.d);
        let max = desired + spec::max_surge(&self.d);
        let rs = &self.rss[i];
        let from = spec::rs_replicas(rs);
        let ann = rs.metadata.annotations.clone().unwrap_or_default();
        let annotations_ok = ann.get(DESIRED_REPLICAS) == Some(&desired.to_string())
            && ann.get(MAX_REPLICAS) == Some(&max.to_string());
        if from == to && annotations_ok {
            return Ok(false);
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        tracing::debug!(
            deployment = self.name(),
            replicaset = name,
            from,
            to,
            seen = ?self.rss.iter().map(|r| (r.metadata.name.clone(), spec::rs_replicas(r), spec::rs_available(r))).collect::<Vec<_>>(),
            "scaling replica set"
        );
        let patch = scale_patch(rs, from, to, desired, max)?;
        let updated = self
            .rs_api()
            .patch(&name, &PatchParams::default(), &patch)
            .await?;
        self.written.record(&self.key, &updated);
        self.rss[i] = updated;
        if from != to {
            let note = if from == 0 {
                format!("Scaled up replica set {name} to {to}")
            } else {
                let op = if from < to { "up" } else { "down" };
                format!("Scaled {op} replica set {name} from {from} to {to}")
            };
            self.scaling_event(note);
        }
        Ok(from != to)
    }

    /// A `ScalingReplicaSet` Event. Each is its own Event, as upstream's
    /// messages are (a shared recorder would fold every scaling step of
    /// the Deployment into one series showing only the first message).
    pub fn scaling_event(&self, note: String) {
        EventSink::new(self.client.clone(), "deployment-controller", &self.identity).normal(
            self.reference(),
            "ScalingReplicaSet",
            "Scale",
            note,
        );
    }

    /// The Deployment, as Events refer to it.
    pub fn reference(&self) -> ObjectReference {
        self.d.object_ref(&())
    }
}

/// A JSON patch setting the size and the replicas annotations, valid only
/// while the size is still `from`: a stale cache fails the write instead
/// of scaling twice, while status updates by the ReplicaSet controller in
/// between do not get in the way (as a resourceVersion pin would).
fn scale_patch(
    rs: &ReplicaSet,
    from: i32,
    to: i32,
    desired: i32,
    max: i32,
) -> Result<Patch<serde_json::Value>> {
    let mut ops = vec![
        json!({"op": "test", "path": "/spec/replicas", "value": from}),
        json!({"op": "add", "path": "/spec/replicas", "value": to}),
    ];
    let values = [
        (DESIRED_REPLICAS, desired.to_string()),
        (MAX_REPLICAS, max.to_string()),
    ];
    if rs.metadata.annotations.is_some() {
        for (k, v) in values {
            let path = format!(
                "/metadata/annotations/{}",
                k.replace('~', "~0").replace('/', "~1")
            );
            ops.push(json!({"op": "add", "path": path, "value": v}));
        }
    } else {
        let map: serde_json::Map<String, serde_json::Value> = values
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": map}));
    }
    Ok(Patch::Json(serde_json::from_value(
        serde_json::Value::Array(ops),
    )?))
}

/// Creation time then name: upstream's tie-break for "older".
pub fn created(rs: &ReplicaSet) -> (Option<jiff::Timestamp>, String) {
    (
        rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
        rs.metadata.name.clone().unwrap_or_default(),
    )
}
