//! A pod's PersistentVolumeClaims (upstream's `StatefulPodControl` claim
//! handling): created from the templates before the pod, never deleted
//! here; `persistentVolumeClaimRetentionPolicy` is carried out by
//! ownerReferences the garbage collector acts on: the set owns its pods'
//! claims when `whenDeleted: Delete`, a condemned pod owns its claims when
//! `whenScaled: Delete`.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;

use super::events::Report;
use super::identity::claims_for;
use super::spec::{self, Retention};

/// The claims cache and where to write claims.
pub struct Claims<'a> {
    /// Cached claims of every namespace.
    pub cache: &'a Store<PersistentVolumeClaim>,
    /// Claims of the set's namespace.
    pub api: Api<PersistentVolumeClaim>,
}

fn plain_ref(
    api_version: &str,
    kind: &str,
    name: Option<&String>,
    uid: Option<&String>,
) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name?.clone(),
        uid: uid?.clone(),
        controller: None,
        block_owner_deletion: None,
    })
}

/// Upstream's `updateClaimOwnerRefForSetAndPod`: the claim's owner
/// references under `retention`, for a pod in the range or scaled down;
/// `None` when they are already right.
pub fn retention_refs(
    current: &[OwnerReference],
    set: &StatefulSet,
    pod: &Pod,
    retention: Retention,
    scaled_down: bool,
) -> Option<Vec<OwnerReference>> {
    let set_ref = plain_ref(
        "apps/v1",
        "StatefulSet",
        set.metadata.name.as_ref(),
        set.metadata.uid.as_ref(),
    );
    let pod_ref = plain_ref(
        "v1",
        "Pod",
        pod.metadata.name.as_ref(),
        pod.metadata.uid.as_ref(),
    );
    let want_set = retention.delete_when_deleted && !(retention.delete_when_scaled && scaled_down);
    let want_pod = retention.delete_when_scaled && scaled_down;
    let mut refs = current.to_vec();
    for (reference, want) in [(set_ref, want_set), (pod_ref, want_pod)] {
        let Some(reference) = reference else { continue };
        let has = refs.iter().any(|r| r.uid == reference.uid);
        if want && !has {
            refs.push(reference);
        } else if !want && has {
            refs.retain(|r| r.uid != reference.uid);
        }
    }
    (refs != current).then_some(refs)
}

impl Claims<'_> {
    fn cached(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Option<std::sync::Arc<PersistentVolumeClaim>> {
        let name = claim.metadata.name.as_deref()?;
        let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
        self.cache.get(&ObjectRef::new(name).within(ns))
    }

    /// Some claim of the pod at `ordinal` is not in the cache.
    pub fn missing(&self, set: &StatefulSet, ordinal: i32) -> bool {
        claims_for(set, ordinal)
            .iter()
            .any(|(_, c)| self.cached(c).is_none())
    }

    /// Upstream's `PodClaimIsStale`: with `whenScaled: Delete`, a claim of
    /// the pod at `ordinal` is still owned by a pod other than `pod_uid`
    /// (an earlier pod, whose claim the garbage collector will delete).
    pub fn stale(&self, set: &StatefulSet, ordinal: i32, pod_uid: Option<&str>) -> bool {
        if !spec::retention(set).delete_when_scaled {
            return false;
        }
        claims_for(set, ordinal).iter().any(|(_, c)| {
            self.cached(c).is_some_and(|c| {
                c.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.kind == "Pod" && Some(r.uid.as_str()) != pod_uid)
            })
        })
    }

    /// The claims of `pod` carry the owners the retention policy wants
    /// (missing claims count as matching; they are created elsewhere).
    pub fn retention_matches(&self, set: &StatefulSet, pod: &Pod, ordinal: i32) -> bool {
        let scaled_down = !spec::in_range(set, ordinal);
        let retention = spec::retention(set);
        claims_for(set, ordinal).iter().all(|(_, c)| {
            self.cached(c).is_none_or(|c| {
                let refs = c.metadata.owner_references.clone().unwrap_or_default();
                retention_refs(&refs, set, pod, retention, scaled_down).is_none()
            })
        })
    }

    /// Upstream's `createPersistentVolumeClaims`: creates the claims of
    /// the pod at `ordinal` that do not exist; a claim being deleted is an
    /// error (the pod must not start on it).
    pub async fn create_missing(
        &self,
        report: &Report<'_>,
        set: &StatefulSet,
        pod: &str,
        ordinal: i32,
    ) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        for (_, claim) in claims_for(set, ordinal) {
            let name = claim.metadata.name.clone().unwrap_or_default();
            match self.cached(&claim) {
                Some(c) if c.metadata.deletion_timestamp.is_some() => {
                    errors.push(format!("pvc {name} is being deleted"));
                }
                Some(_) => {}
                None => match self.api.create(&PostParams::default(), &claim).await {
                    Ok(_) => report.claim("create", &name, pod, None),
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => {
                        let msg = format!("failed to create PVC {name}: {e}");
                        report.claim("create", &name, pod, Some(&e.to_string()));
                        errors.push(msg);
                    }
                },
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(errors.join("; ")))
        }
    }

    /// Upstream's `UpdatePodClaimForRetentionPolicy`: writes the owners
    /// [`retention_refs`] wants on each existing claim of `pod`.
    pub async fn apply_retention(
        &self,
        set: &StatefulSet,
        pod: &Pod,
        ordinal: i32,
    ) -> anyhow::Result<()> {
        let scaled_down = !spec::in_range(set, ordinal);
        let retention = spec::retention(set);
        for (_, claim) in claims_for(set, ordinal) {
            let Some(c) = self.cached(&claim) else {
                continue;
            };
            let refs = c.metadata.owner_references.clone().unwrap_or_default();
            let Some(refs) = retention_refs(&refs, set, pod, retention, scaled_down) else {
                continue;
            };
            let refs = if refs.is_empty() {
                serde_json::Value::Null
            } else {
                json!(refs)
            };
            let patch = json!({"metadata": {
                "ownerReferences": refs,
                "resourceVersion": c.metadata.resource_version,
            }});
            let name = c.metadata.name.clone().unwrap_or_default();
            match self
                .api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(anyhow::anyhow!("updating the owners of claim {name}: {e}")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set() -> StatefulSet {
        serde_json::from_value(json!({"metadata": {"name": "web", "uid": "s1"}})).unwrap()
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web-3", "uid": "p1"}})).unwrap()
    }

    fn uids(refs: &[OwnerReference]) -> Vec<&str> {
        refs.iter().map(|r| r.uid.as_str()).collect()
    }

    #[test]
    fn retention_policies_become_owner_references() {
        let (s, p) = (set(), pod());
        let policy = |d, sc| Retention {
            delete_when_deleted: d,
            delete_when_scaled: sc,
        };
        // Retain/Retain: no owners, and a stale one is removed.
        assert_eq!(
            retention_refs(&[], &s, &p, policy(false, false), false),
            None
        );
        let with_set = retention_refs(&[], &s, &p, policy(true, false), false).unwrap();
        assert_eq!(uids(&with_set), ["s1"]);
        assert_eq!(with_set[0].controller, None);
        assert_eq!(
            retention_refs(&with_set, &s, &p, policy(false, false), false),
            Some(vec![])
        );
        // whenScaled=Delete: a scaled-down pod owns its claims, the set not.
        let scaled = retention_refs(&with_set, &s, &p, policy(true, true), true).unwrap();
        assert_eq!(uids(&scaled), ["p1"]);
        let in_range = retention_refs(&scaled, &s, &p, policy(true, true), false).unwrap();
        assert_eq!(uids(&in_range), ["s1"]);
        assert_eq!(
            uids(&retention_refs(&[], &s, &p, policy(false, true), true).unwrap()),
            ["p1"]
        );
        assert_eq!(
            retention_refs(&[], &s, &p, policy(false, true), false),
            None
        );
    }
}
