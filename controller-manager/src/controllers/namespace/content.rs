//! Deleting everything in a namespace: every namespaced resource the
//! apiserver's discovery lists with the `delete` verb, by
//! `deletecollection` where served and one by one otherwise, then counting
//! what is left (and which finalizers hold it).

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};

/// What one pass over a namespace found.
#[derive(Debug, Default)]
pub struct Report {
    /// Discovery failed: nothing could be deleted.
    pub discovery_error: Option<String>,
    /// Deletions or lists that failed, one message each.
    pub failures: Vec<String>,
    /// `resource.group` → objects still present.
    pub remaining: BTreeMap<String, usize>,
    /// finalizer → objects it still holds.
    pub finalizers: BTreeMap<String, usize>,
}

/// Deletes the content of `namespace` once; reports what is left.
pub async fn delete_all(client: &kube::Client, namespace: &str) -> Report {
    let mut report = Report::default();
    let discovery = match Discovery::new(client.clone()).run().await {
        Ok(d) => d,
        Err(e) => {
            report.discovery_error = Some(e.to_string());
            return report;
        }
    };
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if deletable(&caps) {
                delete_resource(client, namespace, &ar, &caps, &mut report).await;
            }
        }
    }
    report
}

/// Namespaced, listable and deletable (upstream's filter).
fn deletable(caps: &ApiCapabilities) -> bool {
    caps.scope == Scope::Namespaced
        && caps.supports_operation(verbs::DELETE)
        && caps.supports_operation(verbs::LIST)
}

/// `resource.group`, as upstream's messages name a resource.
fn resource_name(ar: &ApiResource) -> String {
    format!("{}.{}", ar.plural, ar.group)
}

/// A failure that only means the object or the verb is gone.
fn ignorable(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 405)
}

async fn delete_resource(
    client: &kube::Client,
    namespace: &str,
    ar: &ApiResource,
    caps: &ApiCapabilities,
    report: &mut Report,
) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    let dp = DeleteParams::background();
    let lp = ListParams::default();
    if caps.supports_operation(verbs::DELETE_COLLECTION) {
        if let Err(e) = api.delete_collection(&dp, &lp).await
            && !ignorable(&e)
        {
            report.failures.push(format!("{}: {e}", resource_name(ar)));
        }
    } else {
        match api.list(&lp).await {
            Ok(list) => {
                for obj in list.items {
                    let Some(name) = obj.metadata.name.as_deref() else {
                        continue;
                    };
                    if obj.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    if let Err(e) = api.delete(name, &dp).await
                        && !ignorable(&e)
                    {
                        report
                            .failures
                            .push(format!("{} {name}: {e}", resource_name(ar)));
                    }
                }
            }
            Err(e) if ignorable(&e) => {}
            Err(e) => report.failures.push(format!("{}: {e}", resource_name(ar))),
        }
    }
    match api.list(&lp).await {
        Ok(list) if !list.items.is_empty() => {
            report.remaining.insert(resource_name(ar), list.items.len());
            for obj in &list.items {
                for f in obj.metadata.finalizers.iter().flatten() {
                    *report.finalizers.entry(f.clone()).or_default() += 1;
                }
            }
        }
        Ok(_) => {}
        Err(e) if ignorable(&e) => {}
        Err(e) => report.failures.push(format!("{}: {e}", resource_name(ar))),
    }
}
