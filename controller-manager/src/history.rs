//! ControllerRevisions, upstream's `pkg/controller/history`: immutable,
//! numbered snapshots of an owner's pod template, which StatefulSets and
//! DaemonSets roll between and `kubectl rollout history|undo` read and
//! re-apply. Generic over the owner: callers pass its metadata, its
//! controller reference and its selector, never its type.
//!
//! A revision's `data` is upstream's strategic-merge patch
//! `{"spec":{"template":{...,"$patch":"replace"}}}`, which kubectl applies
//! to the owner as it stands to roll back; its name is
//! `<owner>-<hash of data and collision count>`, so equal templates meet
//! at one name and a different template under the same name (a hash
//! collision) bumps the owner's `status.collisionCount`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::{Selector, SelectorExt};
use serde_json::{Value, json};

use crate::hash::{FNV32_OFFSET, fnv32, safe_encode};

/// The label carrying a revision's hash (on pods: the revision's name for
/// StatefulSets, the hash for DaemonSets).
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// `revisionHistoryLimit` when unset (the apiserver defaults it to this).
pub const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// How many names a collision may push a new revision through before
/// giving up (upstream loops forever; a bound keeps a bug from spinning).
const MAX_COLLISIONS: usize = 64;

/// Who a set of revisions belongs to.
#[derive(Clone, Copy)]
pub struct Owner<'a> {
    /// The owner's metadata (name, namespace, uid, annotations).
    pub meta: &'a ObjectMeta,
    /// The controller reference its revisions carry.
    pub reference: &'a OwnerReference,
    /// The owner's selector; revisions carry the template's labels, so it
    /// matches them too (orphans matching it are adopted).
    pub selector: &'a Selector,
}

/// Upstream's `getPatch`: the revision data for `template`, a strategic
/// merge patch replacing the owner's whole template.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The pod template a revision's data carries (upstream's
/// `ApplyRevision`: the patch replaces the template wholesale).
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

fn data_of(revision: &ControllerRevision) -> Value {
    revision
        .data
        .as_ref()
        .map(|d| d.0.clone())
        .unwrap_or(Value::Null)
}

/// Upstream's `HashControllerRevision`: FNV-32 over the data's JSON bytes,
/// then the collision count in decimal, safe-encoded.
pub fn hash(data: &Value, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(data).unwrap_or_default();
    let mut h = fnv32(&bytes, FNV32_OFFSET);
    if let Some(c) = collision_count {
        h = fnv32(c.to_string().as_bytes(), h);
    }
    safe_encode(h)
}

/// `<prefix>-<hash>`, the prefix cut to 223 bytes so the name stays
/// within 253 (upstream's `ControllerRevisionName`).
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut end = prefix.len().min(223);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &prefix[..end])
}

/// Upstream's `NewControllerRevision` (with the StatefulSet's habit of
/// copying the owner's annotations, so `kubernetes.io/change-cause` shows
/// in `kubectl rollout history`): `data` as revision number `revision`,
/// labelled with the template's labels and the hash.
pub fn new_revision(
    owner: Owner<'_>,
    template_labels: Option<&BTreeMap<String, String>>,
    data: Value,
    revision: i64,
    collision_count: i32,
) -> ControllerRevision {
    let h = hash(&data, Some(collision_count));
    let mut labels = template_labels.cloned().unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH.into(), h.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(
                owner.meta.name.as_deref().unwrap_or_default(),
                &h,
            )),
            namespace: owner.meta.namespace.clone(),
            labels: Some(labels),
            annotations: owner.meta.annotations.clone(),
            owner_references: Some(vec![owner.reference.clone()]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// Upstream's `ListControllerRevisions`: of `candidates`, those in the
/// owner's namespace its selector matches that it controls or nobody
/// does, sorted (see [`sort`]).
pub fn owned(
    candidates: impl IntoIterator<Item = Arc<ControllerRevision>>,
    owner: Owner<'_>,
) -> Vec<ControllerRevision> {
    let uid = owner.meta.uid.as_deref().unwrap_or_default();
    let mut out: Vec<ControllerRevision> = candidates
        .into_iter()
        .filter(|r| r.metadata.namespace == owner.meta.namespace)
        .filter(|r| {
            let labels = r.metadata.labels.clone().unwrap_or_default();
            owner.selector.matches(&labels)
        })
        .filter(|r| controller_uid(&r.metadata).is_none_or(|u| u == uid))
        .map(|r| (*r).clone())
        .collect();
    sort(&mut out);
    out
}

/// Some revision in `revisions` has no controller: adopting it needs a
/// fresh read showing the owner alive (upstream's `canAdopt`).
pub fn has_orphans(revisions: &[ControllerRevision]) -> bool {
    revisions
        .iter()
        .any(|r| controller_uid(&r.metadata).is_none())
}

/// Upstream's `AdoptControllerRevision` for every orphan in `revisions`:
/// adds `owner.reference`, pinned to the revision's uid and version.
/// Returns the list with adopted revisions as written (gone ones dropped).
pub async fn adopt_orphans(
    api: &Api<ControllerRevision>,
    owner: Owner<'_>,
    revisions: Vec<ControllerRevision>,
) -> Result<Vec<ControllerRevision>> {
    let mut out = Vec::with_capacity(revisions.len());
    for r in revisions {
        if controller_uid(&r.metadata).is_some() {
            out.push(r);
            continue;
        }
        let mut refs = r.metadata.owner_references.clone().unwrap_or_default();
        refs.push(owner.reference.clone());
        let patch = json!({"metadata": {
            "ownerReferences": refs,
            "uid": r.metadata.uid,
            "resourceVersion": r.metadata.resource_version,
        }});
        let name = r.metadata.name.clone().unwrap_or_default();
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(adopted) => out.push(adopted),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(anyhow!("adopting controller revision {name}: {e}")),
        }
    }
    Ok(out)
}

/// Upstream's `SortControllerRevisions`: by revision number, then age,
/// then name.
pub fn sort(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let at =
                    |r: &ControllerRevision| r.metadata.creation_timestamp.clone().map(|t| t.0);
                at(a).cmp(&at(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// Upstream's `EqualRevision`: the same data.
pub fn equal(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    data_of(a) == data_of(b)
}

/// The number the next revision gets: one past the highest (1 for the
/// first).
pub fn next_revision(revisions: &[ControllerRevision]) -> i64 {
    revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// Upstream's `CreateControllerRevision`: creates `revision` named after
/// its data and `collision_count`; when the name is taken by a revision
/// with the same data that one is returned, by different data the count
/// is bumped (the caller writes it to the owner's status) and the next
/// name tried.
pub async fn create(
    api: &Api<ControllerRevision>,
    owner_name: &str,
    revision: &ControllerRevision,
    collision_count: &mut i32,
) -> Result<ControllerRevision> {
    let data = data_of(revision);
    let mut clone = revision.clone();
    for _ in 0..MAX_COLLISIONS {
        let name = revision_name(owner_name, &hash(&data, Some(*collision_count)));
        clone.metadata.name = Some(name.clone());
        match api.create(&PostParams::default(), &clone).await {
            Ok(created) => return Ok(created),
            Err(kube::Error::Api(e)) if e.code == 409 && e.reason == "AlreadyExists" => {
                let existing = api.get(&name).await?;
                if data_of(&existing) == data {
                    return Ok(existing);
                }
                *collision_count = collision_count.saturating_add(1);
            }
            Err(e) => return Err(anyhow!("creating controller revision {name}: {e}")),
        }
    }
    bail!(
        "no free name for a controller revision of {owner_name} after {MAX_COLLISIONS} collisions"
    )
}

/// Upstream's `UpdateControllerRevision`: gives `revision` the number
/// `number` (a rollback makes an old revision the newest again).
pub async fn renumber(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
    number: i64,
) -> Result<ControllerRevision> {
    if revision.revision == number {
        return Ok(revision.clone());
    }
    let name = revision.metadata.name.clone().unwrap_or_default();
    let patch = json!({"revision": number});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|e| anyhow!("renumbering controller revision {name}: {e}"))
}

/// Upstream's revision choice on every sync: the revision for `candidate`
/// (built by [`new_revision`] numbered [`next_revision`]). The newest of
/// `revisions` (sorted) if it has the same data; an older equal one,
/// renumbered to be the newest (a rollback); else a new one, created
/// through [`create`].
pub async fn update_revision(
    api: &Api<ControllerRevision>,
    owner_name: &str,
    revisions: &[ControllerRevision],
    candidate: ControllerRevision,
    collision_count: &mut i32,
) -> Result<ControllerRevision> {
    let equals: Vec<&ControllerRevision> =
        revisions.iter().filter(|r| equal(r, &candidate)).collect();
    match (equals.last(), revisions.last()) {
        (Some(eq), Some(newest)) if equal(eq, newest) => Ok(newest.clone()),
        (Some(eq), _) => renumber(api, eq, candidate.revision).await,
        (None, _) => create(api, owner_name, &candidate, collision_count).await,
    }
}

/// Upstream's `truncateHistory` choice: the oldest of `revisions` (sorted)
/// not in `live` (the current and update revisions and those pods still
/// run), beyond `limit` of them.
pub fn beyond_limit<'a>(
    revisions: &'a [ControllerRevision],
    live: &HashSet<&str>,
    limit: i32,
) -> Vec<&'a ControllerRevision> {
    let history: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    let limit = limit.max(0) as usize;
    let excess = history.len().saturating_sub(limit);
    history.into_iter().take(excess).collect()
}

/// Deletes the revisions [`beyond_limit`] picks.
pub async fn truncate(
    api: &Api<ControllerRevision>,
    revisions: &[ControllerRevision],
    live: &HashSet<&str>,
    limit: i32,
) -> Result<()> {
    for r in beyond_limit(revisions, live, limit) {
        let name = r.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: r.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => tracing::debug!(revision = name, "deleted old controller revision"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(anyhow!("deleting controller revision {name}: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }))
        .unwrap()
    }

    fn owner_meta() -> ObjectMeta {
        serde_json::from_value(json!({
            "name": "web", "namespace": "ns", "uid": "u1",
            "annotations": {"kubernetes.io/change-cause": "v1"},
        }))
        .unwrap()
    }

    fn reference() -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: "web".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn revision(
        name: &str,
        number: i64,
        image: &str,
        owner_uid: Option<&str>,
    ) -> ControllerRevision {
        let refs = owner_uid.map(|u| {
            json!([{"apiVersion": "apps/v1", "kind": "StatefulSet",
            "name": "web", "uid": u, "controller": true}])
        });
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"},
                         "ownerReferences": refs},
            "data": template_patch(&template(image)),
            "revision": number,
        }))
        .unwrap()
    }

    #[test]
    fn data_is_upstreams_replace_patch_and_round_trips() {
        let t = template("nginx:1");
        let data = template_patch(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            data["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1"
        );
        let bytes = serde_json::to_string(&data).unwrap();
        assert!(bytes.starts_with(r#"{"spec":{"template":{"$patch":"replace","metadata""#));
        let r = revision("web-x", 1, "nginx:1", Some("u1"));
        assert_eq!(template_of(&r), Some(t));
    }

    #[test]
    fn new_revisions_are_named_after_data_and_collision_count() {
        let (meta, r, sel) = (
            owner_meta(),
            reference(),
            Selector::from_iter([("app", "web")]),
        );
        let owner = Owner {
            meta: &meta,
            reference: &r,
            selector: &sel,
        };
        let t = template("nginx:1");
        let a = new_revision(
            owner,
            t.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            template_patch(&t),
            3,
            0,
        );
        let h = hash(&template_patch(&t), Some(0));
        assert_eq!(
            a.metadata.name.as_deref(),
            Some(format!("web-{h}").as_str())
        );
        let labels = a.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(CONTROLLER_REVISION_HASH), Some(&h));
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(a.revision, 3);
        assert!(
            a.metadata
                .annotations
                .is_some_and(|a| a.contains_key("kubernetes.io/change-cause"))
        );
        assert_ne!(h, hash(&template_patch(&t), Some(1)));
        assert_ne!(h, hash(&template_patch(&template("nginx:2")), Some(0)));
        assert_eq!(revision_name(&"x".repeat(300), "h").len(), 225);
    }

    #[test]
    fn owned_keeps_the_owners_and_orphans_sorted_by_number() {
        let (meta, r, sel) = (
            owner_meta(),
            reference(),
            Selector::from_iter([("app", "web")]),
        );
        let owner = Owner {
            meta: &meta,
            reference: &r,
            selector: &sel,
        };
        let mut other = revision("web-o", 1, "a", Some("someone-else"));
        other.metadata.name = Some("other".into());
        let mut unlabelled = revision("web-u", 1, "a", None);
        unlabelled.metadata.labels = None;
        let list = owned(
            [
                revision("web-b", 2, "b", Some("u1")),
                revision("web-a", 1, "a", None),
                other,
                unlabelled,
            ]
            .map(Arc::new),
            owner,
        );
        let names: Vec<_> = list
            .iter()
            .filter_map(|r| r.metadata.name.as_deref())
            .collect();
        assert_eq!(names, ["web-a", "web-b"]);
        assert!(has_orphans(&list));
        assert_eq!(next_revision(&list), 3);
        assert_eq!(next_revision(&[]), 1);
        assert!(equal(&list[0], &revision("zzz", 9, "a", None)));
        assert!(!equal(&list[0], &list[1]));
    }

    #[test]
    fn truncation_drops_the_oldest_history_and_keeps_live_revisions() {
        let revs: Vec<_> = (1..=5)
            .map(|i| revision(&format!("web-{i}"), i, &format!("img:{i}"), Some("u1")))
            .collect();
        let live: HashSet<&str> = ["web-1", "web-5"].into();
        let names = |v: Vec<&ControllerRevision>| -> Vec<String> {
            v.iter().filter_map(|r| r.metadata.name.clone()).collect()
        };
        assert_eq!(names(beyond_limit(&revs, &live, 1)), ["web-2", "web-3"]);
        assert!(beyond_limit(&revs, &live, 10).is_empty());
        assert_eq!(beyond_limit(&revs, &live, 0).len(), 3);
    }
}
