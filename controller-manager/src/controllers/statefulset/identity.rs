//! A StatefulSet pod's stable identity (upstream's `stateful_set_utils`):
//! its name `<set>-<ordinal>`, the labels naming it and its index, its
//! hostname and subdomain, and its claims `<template>-<set>-<ordinal>`
//! mounted as the volumes named after their templates.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::spec;
use crate::controllers::replicaset::claim::controller_ref;
use crate::history::CONTROLLER_REVISION_HASH;

/// The label naming the pod (a Service can select exactly one member).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// The label carrying the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// `<set>-<ordinal>`.
pub fn pod_name(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

/// The set name and ordinal a pod name encodes (`(.*)-([0-9]+)$`), if
/// any.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, digits) = name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, digits.parse().ok()?))
}

/// The ordinal of a pod, if its name has one.
pub fn ordinal(pod: &Pod) -> Option<i32> {
    parent_and_ordinal(pod.metadata.name.as_deref()?).map(|(_, o)| o)
}

fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or_default()
}

/// Upstream's `isMemberOf`: the pod's name says it is one of `set`'s
/// (only those are claimed).
pub fn is_member_of(set: &StatefulSet, pod: &Pod) -> bool {
    pod.metadata
        .name
        .as_deref()
        .and_then(parent_and_ordinal)
        .is_some_and(|(parent, _)| parent == set_name(set))
}

/// `<template>-<set>-<ordinal>`, the claim a template makes for a pod.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The claims the pod at `ordinal` uses, by template name: each template
/// named for the pod, in the set's namespace, labelled with the template's
/// labels and the set's selector labels.
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let selector_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    spec::claim_templates(set)
        .iter()
        .map(|t| {
            let template = t.metadata.name.clone().unwrap_or_default();
            let mut claim = t.clone();
            claim.metadata.name = Some(claim_name(&template, set_name(set), ordinal));
            claim.metadata.namespace = set.metadata.namespace.clone();
            let mut labels = claim.metadata.labels.take().unwrap_or_default();
            labels.extend(selector_labels.clone());
            claim.metadata.labels = Some(labels);
            claim.status = None;
            (template, claim)
        })
        .collect()
}

/// Upstream's `updateStorage`: the claims' volumes first (in template
/// order), then the template's volumes not named after a claim template.
fn with_claim_volumes(set: &StatefulSet, ordinal: i32, volumes: Vec<Volume>) -> Vec<Volume> {
    let claims = claims_for(set, ordinal);
    let mut out: Vec<Volume> = claims
        .iter()
        .map(|(template, claim)| Volume {
            name: template.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    out.extend(
        volumes
            .into_iter()
            .filter(|v| !claims.iter().any(|(t, _)| *t == v.name)),
    );
    out
}

/// The identity labels of the pod at `ordinal`.
fn identity_labels(set: &StatefulSet, ordinal: i32) -> [(String, String); 2] {
    [
        (POD_NAME_LABEL.into(), pod_name(set_name(set), ordinal)),
        (POD_INDEX_LABEL.into(), ordinal.to_string()),
    ]
}

/// Upstream's `newVersionedStatefulSetPod`: the pod at `ordinal` from
/// `template` (the template of revision `revision`), controlled by the
/// set, with its identity and claims.
pub fn new_pod(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    revision: &str,
    ordinal: i32,
) -> Option<Pod> {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let name = pod_name(set_name(set), ordinal);
    let mut labels: BTreeMap<String, String> = tmeta.labels.unwrap_or_default();
    labels.extend(identity_labels(set, ordinal));
    labels.insert(CONTROLLER_REVISION_HASH.into(), revision.to_string());
    let mut pod_spec = template.spec.clone().unwrap_or_default();
    pod_spec.hostname = Some(name.clone());
    pod_spec.subdomain = spec::service_name(set);
    let volumes = pod_spec.volumes.take().unwrap_or_default();
    let volumes = with_claim_volumes(set, ordinal, volumes);
    pod_spec.volumes = (!volumes.is_empty()).then_some(volumes);
    Some(Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref(set)?]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    })
}

/// Upstream's `identityMatches`: the pod is named for its ordinal in this
/// set and namespace and carries its identity labels.
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(ordinal) = ordinal(pod) else {
        return false;
    };
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    is_member_of(set, pod)
        && pod.metadata.name.as_deref() == Some(pod_name(set_name(set), ordinal).as_str())
        && pod.metadata.namespace == set.metadata.namespace
        && identity_labels(set, ordinal)
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
}

/// The labels that restore a pod's identity (upstream's `updateIdentity`;
/// name and namespace cannot change, so only labels are written).
pub fn identity_label_patch(set: &StatefulSet, pod: &Pod) -> Option<BTreeMap<String, String>> {
    Some(identity_labels(set, ordinal(pod)?).into_iter().collect())
}

/// Upstream's `storageMatches`: every claim template is mounted as the
/// volume of its name from the pod's claim.
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(ordinal) = ordinal(pod) else {
        return false;
    };
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    claims_for(set, ordinal).iter().all(|(template, claim)| {
        volumes.iter().any(|v| {
            v.name == *template
                && v.persistent_volume_claim.as_ref().map(|c| &c.claim_name)
                    == claim.metadata.name.as_ref()
        })
    })
}

/// The revision a pod was made from (its `controller-revision-hash`
/// label holds the revision's name).
pub fn pod_revision(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn set(extra: serde_json::Value) -> StatefulSet {
        let mut spec = json!({
            "replicas": 3,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}],
                         "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "emptyDir": {}}]},
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "db"}},
                                      "spec": {"accessModes": ["ReadWriteOnce"]}}],
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(parent_and_ordinal("web-12"), Some(("web", 12)));
        assert_eq!(parent_and_ordinal("my-web-0"), Some(("my-web", 0)));
        assert_eq!(parent_and_ordinal("web-x"), None);
        assert_eq!(parent_and_ordinal("web"), None);
        assert_eq!(parent_and_ordinal("web-"), None);
        assert_eq!(claim_name("data", "web", 2), "data-web-2");
    }

    #[test]
    fn a_new_pod_carries_its_identity_and_claims() {
        let s = set(json!({}));
        let template = s.spec.as_ref().unwrap().template.clone();
        let pod = new_pod(&s, &template, "web-abc", 1).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-1"));
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-1");
        assert_eq!(labels[POD_INDEX_LABEL], "1");
        assert_eq!(labels[CONTROLLER_REVISION_HASH], "web-abc");
        assert_eq!(labels["app"], "web");
        let ps = pod.spec.clone().unwrap();
        assert_eq!(ps.hostname.as_deref(), Some("web-1"));
        assert_eq!(ps.subdomain.as_deref(), Some("nginx"));
        let vols = ps.volumes.unwrap();
        assert_eq!(
            vols.len(),
            2,
            "the claim replaces the template's volume of its name"
        );
        assert_eq!(
            vols[0]
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("data-web-1")
        );
        assert_eq!(vols[1].name, "cfg");
        assert!(identity_matches(&s, &pod) && storage_matches(&s, &pod));
        let owner = pod.metadata.owner_references.as_ref().unwrap();
        assert_eq!(
            (owner[0].kind.as_str(), owner[0].controller),
            ("StatefulSet", Some(true))
        );

        let claims = claims_for(&s, 1);
        let labels = claims[0].1.metadata.labels.clone().unwrap();
        assert_eq!(
            (labels["tier"].as_str(), labels["app"].as_str()),
            ("db", "web")
        );

        let mut relabelled = pod.clone();
        relabelled.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        assert!(!identity_matches(&s, &relabelled));
        let mut other: Pod = pod.clone();
        other.metadata.name = Some("db-1".into());
        assert!(!is_member_of(&s, &other));
    }
}
