//! What the ReplicaSet controller needs to know of the kind it manages, so
//! one implementation serves ReplicaSets (`apps/v1`) and
//! ReplicationControllers (`v1`), as upstream runs one over both. The
//! StatefulSet controller implements it too, to share pod claiming and
//! pod-event handling.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::core::Selector;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A kind that keeps `replicas` copies of a pod template running.
pub trait Replicated:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// The controller's name, as upstream's `--controllers` spells it.
    const CONTROLLER: &'static str;

    /// Who its Events say reported them (upstream's component name).
    const EVENT_SOURCE: &'static str;

    /// The pods it selects; `None` when the selector is missing or empty,
    /// which selects nothing (never everything).
    fn selector(&self) -> Option<Selector>;

    /// `spec.replicas` (1 when unset, as the apiserver defaults it).
    fn replicas(&self) -> i32;

    /// `spec.minReadySeconds`.
    fn min_ready_seconds(&self) -> i32;

    /// `spec.template`.
    fn template(&self) -> Option<&PodTemplateSpec>;

    /// `status`, as JSON (both kinds' statuses share their field names).
    fn status_json(&self) -> serde_json::Value;

    /// The ownerReference its pods carry: the controller, blocking the
    /// owner's foreground deletion.
    fn controller_ref(&self) -> Option<OwnerReference> {
        let meta = self.meta();
        Some(OwnerReference {
            api_version: Self::api_version(&()).to_string(),
            kind: Self::kind(&()).to_string(),
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            controller: Some(true),
            block_owner_deletion: Some(true),
        })
    }
}

fn non_empty(selector: Selector) -> Option<Selector> {
    (!selector.selects_all()).then_some(selector)
}

impl Replicated for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset";
    const EVENT_SOURCE: &'static str = "replicaset-controller";

    fn selector(&self) -> Option<Selector> {
        let ls = self.spec.as_ref()?.selector.clone();
        Selector::try_from(ls).ok().and_then(non_empty)
    }

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}

impl Replicated for ReplicationController {
    const CONTROLLER: &'static str = "replicationcontroller";
    const EVENT_SOURCE: &'static str = "replication-controller";

    fn selector(&self) -> Option<Selector> {
        let spec = self.spec.as_ref()?;
        // An empty selector means the template's labels (the apiserver
        // defaults it so; this keeps older objects working too).
        let map = match &spec.selector {
            Some(m) if !m.is_empty() => m.clone(),
            _ => spec.template.as_ref()?.metadata.as_ref()?.labels.clone()?,
        };
        non_empty(map.into_iter().collect())
    }

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}

impl Replicated for StatefulSet {
    const CONTROLLER: &'static str = "statefulset";
    const EVENT_SOURCE: &'static str = "statefulset-controller";

    fn selector(&self) -> Option<Selector> {
        let ls = self.spec.as_ref()?.selector.clone();
        Selector::try_from(ls).ok().and_then(non_empty)
    }

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        Some(&self.spec.as_ref()?.template)
    }

    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}
