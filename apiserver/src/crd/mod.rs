//! CustomResourceDefinitions made live: the controller that turns the
//! stored CRDs into served resources, upstream's naming, establishing and
//! finalizing controllers in one loop.
//!
//! On every change to a CRD it (1) decides which CRDs' names are accepted
//! (first come, first served within a group, never a built-in resource's
//! names) and writes their status conditions (`NamesAccepted`,
//! `Established`, `Terminating`), `acceptedNames` and `storedVersions`;
//! (2) builds a [`ResourceInfo`](crate::registry::ResourceInfo) for every
//! served version of every accepted CRD ([`custom`]), starts the watch
//! caches they need and swaps in a new [`Served`] snapshot, so discovery,
//! OpenAPI and the REST paths change together with no restart; and (3) for
//! a CRD being deleted, deletes every custom object and then removes the
//! cleanup finalizer so the CRD itself goes.

pub mod cel;
pub mod custom;
pub mod jsonpath;
pub mod schema;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::handlers::AppState;
use crate::registry::meta;
use crate::registry::store::{DeleteOptions, ListOptions, Part, WriteOptions};
use crate::registry::strategies::crd::CLEANUP_FINALIZER;
use crate::registry::{Registry, ResourceInfo};
use crate::served::Served;

/// Storage key segment of CRDs, as upstream's layout.
pub const CRD_STORAGE: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// How often a CRD being deleted is looked at again while objects remain
/// (their own deletions are events of another resource).
const CLEANUP_RETRY: Duration = Duration::from_secs(1);

/// What the served set was last built from: the accepted CRDs' names and
/// specs. The same fingerprint means nothing to re-render.
#[derive(Default, PartialEq)]
pub struct Fingerprint(String);

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `spec.names` with upstream's defaults: the names the CRD is served by.
fn accepted_names(crd: &Value) -> Value {
    let names = &crd["spec"]["names"];
    let kind = text(names, "/kind");
    let mut out = names.clone();
    if text(names, "/singular").is_empty() {
        out["singular"] = json!(kind.to_ascii_lowercase());
    }
    if text(names, "/listKind").is_empty() {
        out["listKind"] = json!(format!("{kind}List"));
    }
    out
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": if ok { "True" } else { "False" }, "reason": reason, "message": message})
}

/// The CRD's status as it should be; `conflict` names a taken name.
fn desired_status(crd: &Value, conflict: Option<String>) -> Value {
    let mut conditions = Vec::new();
    match &conflict {
        None => {
            conditions.push(condition(
                "NamesAccepted",
                true,
                "NoConflicts",
                "no conflicts found",
            ));
            conditions.push(condition(
                "Established",
                true,
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ));
        }
        Some(why) => {
            conditions.push(condition("NamesAccepted", false, "NameConflict", why));
            conditions.push(condition(
                "Established",
                false,
                "NotAccepted",
                "not all names are accepted",
            ));
        }
    }
    if meta::is_terminating(crd) {
        conditions.push(condition(
            "Terminating",
            true,
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        ));
    }
    // Keep each unchanged condition's transition time.
    let now = meta::now_rfc3339();
    let previous = crd.pointer("/status/conditions").and_then(Value::as_array);
    for c in &mut conditions {
        let before = previous
            .into_iter()
            .flatten()
            .find(|p| p["type"] == c["type"] && p["status"] == c["status"]);
        c["lastTransitionTime"] = before
            .and_then(|p| p.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now));
    }
    let mut stored: BTreeSet<String> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if let Some(v) = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == true)
    {
        stored.insert(text(v, "/name").to_string());
    }
    let accepted = if conflict.is_none() {
        accepted_names(crd)
    } else {
        crd.pointer("/status/acceptedNames")
            .cloned()
            .unwrap_or_else(|| json!({"plural": "", "kind": ""}))
    };
    json!({"conditions": conditions, "acceptedNames": accepted, "storedVersions": stored})
}

/// Names already served in each group, to find a CRD's conflicts.
struct TakenNames {
    resources: HashSet<(String, String)>,
    kinds: HashSet<(String, String)>,
}

impl TakenNames {
    fn builtin() -> Self {
        let registry = Registry::builtin();
        TakenNames {
            resources: registry
                .all()
                .iter()
                .flat_map(|r| {
                    [r.plural.to_string(), r.singular()]
                        .into_iter()
                        .chain(r.short_names.iter().map(|s| s.to_string()))
                        .map(|n| (r.group.to_string(), n))
                })
                .collect(),
            kinds: registry
                .all()
                .iter()
                .flat_map(|r| [r.kind, r.list_kind].map(|k| (r.group.to_string(), k.to_string())))
                .collect(),
        }
    }

    /// Claims the CRD's names, or says which one is taken.
    fn claim(&mut self, crd: &Value) -> Option<String> {
        let group = text(crd, "/spec/group").to_string();
        let names = accepted_names(crd);
        let mut resource_names: Vec<String> = vec![
            text(&names, "/plural").to_string(),
            text(&names, "/singular").to_string(),
        ];
        resource_names.extend(
            names["shortNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
        let kinds = [
            text(&names, "/kind").to_string(),
            text(&names, "/listKind").to_string(),
        ];
        if let Some(taken) = resource_names
            .iter()
            .find(|n| self.resources.contains(&(group.clone(), (*n).clone())))
        {
            return Some(format!("{taken:?} is already in use"));
        }
        if let Some(taken) = kinds
            .iter()
            .find(|k| self.kinds.contains(&(group.clone(), (*k).clone())))
        {
            return Some(format!("{taken:?} is already in use"));
        }
        self.resources
            .extend(resource_names.into_iter().map(|n| (group.clone(), n)));
        self.kinds
            .extend(kinds.into_iter().map(|k| (group.clone(), k)));
        None
    }
}

/// Writes `status` if it differs from the CRD's (conditions compared
/// without their transition times).
async fn write_status(
    state: &AppState,
    info: &Arc<ResourceInfo>,
    crd: &Value,
    status: Value,
) -> ApiResult<()> {
    let strip = |s: &Value| {
        let mut s = s.clone();
        for c in s["conditions"].as_array_mut().into_iter().flatten() {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastTransitionTime");
            }
        }
        s
    };
    if crd.get("status").map(strip) == Some(strip(&status)) {
        return Ok(());
    }
    let mut updated = crd.clone();
    updated["status"] = status;
    meta::remove_meta(&mut updated, "resourceVersion");
    let store = state.backend.store(info)?;
    store
        .update(
            "",
            meta::name(crd),
            updated,
            Part::Status,
            &WriteOptions::default(),
        )
        .await
        .map(|_| ())
}

/// Deletes the custom objects of a CRD being deleted; once none is left,
/// removes the cleanup finalizer. `Ok(true)` when the CRD may go.
async fn clean_up(state: &AppState, crd_info: &Arc<ResourceInfo>, crd: &Value) -> ApiResult<bool> {
    if !meta::finalizers(crd).iter().any(|f| f == CLEANUP_FINALIZER) {
        return Ok(true);
    }
    let storage = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == true);
    if let Some(version) = storage
        && let Ok(info) = custom::resource_info(crd, version)
    {
        let info = Arc::new(info);
        state.backend.ensure_cache(info.storage_resource);
        let store = state.backend.store(&info)?;
        let listing = store.list("", &ListOptions::default()).await?;
        if !listing.items.is_empty() {
            for obj in &listing.items {
                let (ns, name) = (meta::namespace(&obj.value), meta::name(&obj.value));
                match store.delete(ns, name, &DeleteOptions::default()).await {
                    Ok(_) => {}
                    Err(e) if e.reason == "NotFound" => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(false);
        }
    }
    let mut updated = crd.clone();
    let rest: Vec<String> = meta::finalizers(crd)
        .into_iter()
        .filter(|f| f != CLEANUP_FINALIZER)
        .collect();
    meta::set_meta(&mut updated, "finalizers", json!(rest));
    let store = state.backend.store(crd_info)?;
    store
        .update(
            "",
            meta::name(crd),
            updated,
            Part::Main,
            &WriteOptions::default(),
        )
        .await?;
    Ok(true)
}

/// One pass over every CRD (see the module docs). Returns whether work
/// remains that no CRD event will announce (objects still being deleted).
pub async fn sync(state: &AppState, last: &mut Fingerprint) -> ApiResult<bool> {
    let served = state.served.get();
    let Some(crd_info) = served
        .registry
        .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .cloned()
    else {
        return Ok(false);
    };
    let mut crds: Vec<Value> = state
        .backend
        .cached_list(CRD_STORAGE)
        .await
        .iter()
        .map(|o| o.value.clone())
        .collect();
    crds.sort_by(|a, b| {
        (meta::meta_str(a, "creationTimestamp"), meta::name(a))
            .cmp(&(meta::meta_str(b, "creationTimestamp"), meta::name(b)))
    });
    let mut taken = TakenNames::builtin();
    let mut rows = Vec::new();
    let mut fingerprint = String::new();
    let mut verdicts = Vec::new();
    for crd in &crds {
        let conflict = taken.claim(crd);
        if conflict.is_none() {
            let name = meta::name(crd);
            let terminating = meta::is_terminating(crd);
            fingerprint.push_str(
                &serde_json::to_string(&(name, &crd["spec"], terminating)).unwrap_or_default(),
            );
            for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
                if version["served"] != true {
                    continue;
                }
                match custom::resource_info(crd, version) {
                    Ok(info) => rows.push(info),
                    Err(e) => tracing::warn!(crd = name, error = %e, "not serving a CRD version"),
                }
            }
        }
        verdicts.push(conflict);
    }
    let mut pending = false;
    // Serve first, then say Established, so a client that waits for the
    // condition finds the resource.
    let fingerprint = Fingerprint(fingerprint);
    if fingerprint != *last {
        for info in &rows {
            state
                .backend
                .ensure_cache(info.storage_resource)
                .wait_synced()
                .await;
        }
        let started = std::time::Instant::now();
        let rendered =
            tokio::task::spawn_blocking(move || Served::render(Registry::with_custom(rows))).await;
        match rendered {
            Ok(Ok(next)) => {
                state.served.replace(next);
                *last = fingerprint;
                tracing::info!(
                    crds = crds.len(),
                    render_ms = started.elapsed().as_millis() as u64,
                    "serving custom resources"
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "rendering documents for custom resources");
                pending = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "rendering documents for custom resources");
                pending = true;
            }
        }
    }
    for (crd, conflict) in crds.iter().zip(verdicts) {
        let name = meta::name(crd);
        if let Err(e) = write_status(state, &crd_info, crd, desired_status(crd, conflict)).await {
            tracing::warn!(crd = name, error = %e, "writing CRD status");
            pending = true;
        }
        if meta::is_terminating(crd) {
            match clean_up(state, &crd_info, crd).await {
                Ok(done) => pending |= !done,
                Err(e) => {
                    tracing::warn!(crd = name, error = %e, "deleting custom objects");
                    pending = true;
                }
            }
        }
    }
    Ok(pending)
}

/// Runs [`sync`] on every change to a CRD, for as long as the server runs.
pub async fn run(state: Arc<AppState>, mut last: Fingerprint) {
    let Some(cache) = state.backend.cache(CRD_STORAGE) else {
        tracing::error!("no watch cache for CRDs; custom resources are not served");
        return;
    };
    loop {
        // Subscribe before syncing, so no change slips between the two.
        let mut events = match cache.watch(cache.revision()).await {
            Ok((_, _, rx)) => rx,
            Err(_) => {
                tokio::time::sleep(CLEANUP_RETRY).await;
                continue;
            }
        };
        let pending = sync(&state, &mut last).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "syncing CRDs");
            true
        });
        let changed = async {
            !matches!(
                events.recv().await,
                Err(tokio::sync::broadcast::error::RecvError::Closed)
            )
        };
        if pending {
            tokio::select! {
                open = changed => if !open { return },
                _ = tokio::time::sleep(CLEANUP_RETRY) => {}
            }
        } else if !changed.await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(group: &str, plural: &str, kind: &str) -> Value {
        json!({"metadata": {"name": format!("{plural}.{group}")}, "spec": {"group": group, "names": {"plural": plural, "kind": kind},
            "versions": [{"name": "v1", "served": true, "storage": true}]}})
    }

    #[test]
    fn names_are_first_come_first_served_and_never_builtin() {
        let mut taken = TakenNames::builtin();
        assert_eq!(
            taken.claim(&crd("stable.example.com", "crontabs", "CronTab")),
            None
        );
        assert_eq!(
            taken.claim(&crd("stable.example.com", "crontabs", "Other")),
            Some("\"crontabs\" is already in use".into())
        );
        assert_eq!(
            taken.claim(&crd("other.example.com", "crontabs", "CronTab")),
            None
        );
        assert!(taken.claim(&crd("apps", "deployments", "Deploy")).is_some());
    }

    #[test]
    fn status_says_established_and_keeps_transition_times() {
        let c = crd("stable.example.com", "crontabs", "CronTab");
        let status = desired_status(&c, None);
        assert_eq!(status["conditions"][1]["type"], "Established");
        assert_eq!(status["conditions"][1]["status"], "True");
        assert_eq!(status["acceptedNames"]["listKind"], "CronTabList");
        assert_eq!(status["acceptedNames"]["singular"], "crontab");
        assert_eq!(status["storedVersions"], json!(["v1"]));
        let mut again = c.clone();
        again["status"] = status.clone();
        again["status"]["conditions"][0]["lastTransitionTime"] = json!("2001-01-01T00:00:00Z");
        let next = desired_status(&again, None);
        assert_eq!(
            next["conditions"][0]["lastTransitionTime"],
            "2001-01-01T00:00:00Z"
        );
    }
}
