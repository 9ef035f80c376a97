//! The conditions upstream's namespace controller writes while it
//! empties a namespace, so `kubectl get ns -o yaml` says what is holding
//! a Terminating namespace.

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::content::Report;

/// (type, status, reason, message) of each condition, in upstream's order.
fn wanted(report: &Report) -> Vec<(&'static str, bool, &'static str, String)> {
    let discovery = match &report.discovery_error {
        Some(e) => (true, "DiscoveryFailed", format!("Discovery failed: {e}")),
        None => (
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".to_string(),
        ),
    };
    let content = if report.failures.is_empty() {
        (
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".to_string(),
        )
    } else {
        (
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                report.failures.len(),
                report.failures.join(", ")
            ),
        )
    };
    let remaining = if report.remaining.is_empty() {
        (
            false,
            "ContentRemoved",
            "All content successfully removed".to_string(),
        )
    } else {
        let parts: Vec<String> = report
            .remaining
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        (
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", parts.join(", ")),
        )
    };
    let finalizers = if report.finalizers.is_empty() {
        (
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".to_string(),
        )
    } else {
        let parts: Vec<String> = report
            .finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        (
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                parts.join(", ")
            ),
        )
    };
    vec![
        (
            "NamespaceDeletionDiscoveryFailure",
            discovery.0,
            discovery.1,
            discovery.2,
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".to_string(),
        ),
        (
            "NamespaceDeletionContentFailure",
            content.0,
            content.1,
            content.2,
        ),
        (
            "NamespaceContentRemaining",
            remaining.0,
            remaining.1,
            remaining.2,
        ),
        (
            "NamespaceFinalizersRemaining",
            finalizers.0,
            finalizers.1,
            finalizers.2,
        ),
    ]
}

/// Writes the conditions through the status subresource when they differ
/// from what the namespace shows (a transition time moves only when a
/// condition's status does).
pub async fn update(api: &Api<Namespace>, ns: &Namespace, report: &Report) -> kube::Result<()> {
    let current: Vec<NamespaceCondition> = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    let mut changed = false;
    let mut next = Vec::new();
    for (type_, status, reason, message) in wanted(report) {
        let status = if status { "True" } else { "False" };
        let old = current.iter().find(|c| c.type_ == type_);
        let same = old.is_some_and(|c| {
            c.status == status
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str())
        });
        changed |= !same;
        let since = old
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        next.push(NamespaceCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message),
            last_transition_time: Some(since),
        });
    }
    if !changed {
        return Ok(());
    }
    let name = ns.metadata.name.as_deref().unwrap_or_default();
    match api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": next}})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
