//! The pods `eviction` subresource (policy/v1 Eviction): delete a pod
//! unless that would break the PodDisruptionBudget selecting it, which
//! answers 429 as upstream. `kubectl drain` evicts through it.

use serde_json::{Value, json};

use super::Registry;
use super::meta;
use super::store::{Backend, DeleteOptions, ListOptions, Part, Patch, WriteOptions};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::selectors::LabelSelector;

/// What an eviction asks for, from its body.
#[derive(Debug, Clone, Default)]
pub struct Eviction {
    /// `deleteOptions` for the pod's deletion.
    pub delete: DeleteOptions,
}

fn budget_refusal(pdb: &Value) -> ApiError {
    let name = meta::name(pdb);
    let desired = meta::int_at(pdb, "/status/desiredHealthy");
    let current = meta::int_at(pdb, "/status/currentHealthy");
    ApiError::too_many_requests(
        "Cannot evict pod as it would violate the pod's disruption budget.",
        vec![FieldError {
            reason: "DisruptionBudget",
            field: String::new(),
            message: format!(
                "The disruption budget {name} needs {desired} healthy pods and has {current} currently"
            ),
        }],
    )
}

/// Whether the disruption controller has seen the budget's latest spec;
/// until it has, the budget's counts cannot be trusted.
fn status_is_current(pdb: &Value) -> bool {
    meta::int_at(pdb, "/status/observedGeneration") >= meta::int_at(pdb, "/metadata/generation")
}

/// Whether a pod that is not Ready may be evicted without spending a
/// disruption: always under `unhealthyPodEvictionPolicy: AlwaysAllow`, and
/// under the default `IfHealthyBudget` while the budget's healthy pods
/// suffice (so a crash-looping pod never blocks a drain), as upstream.
fn unhealthy_may_go(pod: &Value, pdb: &Value) -> bool {
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c.get("type") == Some(&json!("Ready")) && c.get("status") == Some(&json!("True")));
    if ready {
        return false;
    }
    match pdb
        .pointer("/spec/unhealthyPodEvictionPolicy")
        .and_then(Value::as_str)
    {
        Some("AlwaysAllow") => true,
        _ => {
            let current = meta::int_at(pdb, "/status/currentHealthy");
            let desired = meta::int_at(pdb, "/status/desiredHealthy");
            status_is_current(pdb) && current >= desired && desired > 0
        }
    }
}

/// Evicts `pod` in `ns`: checks its budget, takes one disruption from it,
/// then deletes the pod.
pub async fn evict(
    backend: &Backend,
    registry: &Registry,
    ns: &str,
    pod: &str,
    eviction: &Eviction,
) -> ApiResult<()> {
    let pods_info = registry
        .lookup("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let pdbs_info = registry
        .lookup("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not served"))?;
    let pods = backend.store(pods_info)?;
    let pdbs = backend.store(pdbs_info)?;
    loop {
        let obj = pods.get(ns, pod).await?;
        // Pods that are done, not yet running or already going need no
        // budget, as upstream.
        let phase = obj
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending");
        let exempt =
            meta::is_terminating(&obj) || matches!(phase, "Succeeded" | "Failed" | "Pending");
        if !exempt {
            let labels = meta::labels(&obj);
            let listed = pdbs.list(ns, &ListOptions::default()).await?;
            let matching: Vec<&Value> = listed
                .items
                .iter()
                .map(|o| &o.value)
                .filter(|pdb| {
                    pdb.pointer("/spec/selector")
                        .map(LabelSelector::from_json)
                        .is_some_and(|s| s.is_ok_and(|s| s.matches_labels(&labels)))
                })
                .collect();
            if matching.len() > 1 {
                return Err(ApiError::internal_visible(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(pdb) = matching.first().filter(|pdb| !unhealthy_may_go(&obj, pdb)) {
                let allowed = meta::int_at(pdb, "/status/disruptionsAllowed");
                if !status_is_current(pdb) || allowed <= 0 {
                    return Err(budget_refusal(pdb));
                }
                // Take one disruption, pinned to the budget we read: a
                // concurrent eviction makes this a conflict and we re-check.
                let take = json!({
                    "metadata": {"resourceVersion": meta::meta_str(pdb, "resourceVersion")},
                    "status": {"disruptionsAllowed": allowed - 1, "disruptedPods": {pod: meta::now_rfc3339()}},
                });
                let opts = WriteOptions {
                    dry_run: eviction.delete.dry_run,
                    ..Default::default()
                };
                match pdbs
                    .patch(
                        ns,
                        meta::name(pdb),
                        &Patch::Merge(take),
                        Part::Status,
                        &opts,
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.reason == "Conflict" => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        pods.delete(ns, pod, &eviction.delete).await?;
        return Ok(());
    }
}
