//! Upstream's `manageReplicas`: one step toward `spec.replicas` — create
//! the missing pods from the template in slow-start batches (1, 2, 4, …,
//! stopping at the first failure so a broken template or quota does not
//! cause a storm), or delete the surplus in deletion order — with
//! expectations recorded before each request.

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};

use super::expectations::Expectations;
use super::kind::Replicated;
use super::status::ManageFailure;
use super::{pods, ranking};
use crate::recorder::EventSink;

/// At most this many pods are created or deleted in one sync (upstream's
/// `BurstReplicas`).
const BURST_REPLICAS: usize = 500;

/// Creates or deletes pods so that `owned` (its active pods) moves to
/// `spec.replicas`.
pub async fn manage<K: Replicated>(
    client: &kube::Client,
    expectations: &Expectations,
    events: &EventSink,
    key: &str,
    owner: &K,
    owned: &[Arc<Pod>],
) -> Result<(), ManageFailure> {
    let report = Report {
        events,
        regarding: owner.object_ref(&()),
    };
    let want = owner.replicas().max(0) as usize;
    let ns = owner.meta().namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    if owned.len() < want {
        let n = (want - owned.len()).min(BURST_REPLICAS);
        let pod = pod_from_template(owner).ok_or_else(|| ManageFailure {
            reason: "FailedCreate",
            message: "the pod template is missing".into(),
        })?;
        expectations.expect_creations(key, n);
        create_in_batches(&api, expectations, &report, key, &pod, n).await
    } else if owned.len() > want {
        let n = (owned.len() - want).min(BURST_REPLICAS);
        let victims: Vec<Arc<Pod>> = ranking::deletion_order(owned, owned)
            .into_iter()
            .take(n)
            .collect();
        expectations.expect_deletions(key, victims.iter().map(|p| pods::key(p)));
        delete_all(&api, expectations, &report, key, &victims).await
    } else {
        Ok(())
    }
}

/// The pod the template describes, named `<owner>-<random>` by the
/// apiserver, controlled by `owner`.
pub fn pod_from_template<K: Replicated>(owner: &K) -> Option<Pod> {
    let template = owner.template()?;
    let meta = owner.meta();
    let tmeta = template.metadata.clone().unwrap_or_default();
    Some(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", meta.name.as_deref()?)),
            namespace: meta.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![super::claim::controller_ref(owner)?]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    })
}

/// A create refused because the namespace is going away: expected, and
/// not retried (upstream's `NamespaceTerminatingCause`).
fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"))
}

/// Where the outcome of each pod request is reported, as upstream's
/// `PodControl` does.
struct Report<'a> {
    events: &'a EventSink,
    regarding: k8s_openapi::api::core::v1::ObjectReference,
}

impl Report<'_> {
    fn created(&self, result: &kube::Result<Pod>) {
        match result {
            Ok(p) => self.events.normal(
                self.regarding.clone(),
                "SuccessfulCreate",
                "Create",
                format!(
                    "Created pod: {}",
                    p.metadata.name.as_deref().unwrap_or_default()
                ),
            ),
            Err(e) => self.events.warning(
                self.regarding.clone(),
                "FailedCreate",
                "Create",
                format!("Error creating: {e}"),
            ),
        }
    }

    fn deleted(&self, pod: &str, result: Result<(), &kube::Error>) {
        match result {
            Ok(()) => self.events.normal(
                self.regarding.clone(),
                "SuccessfulDelete",
                "Delete",
                format!("Deleted pod: {pod}"),
            ),
            Err(e) => self.events.warning(
                self.regarding.clone(),
                "FailedDelete",
                "Delete",
                format!("Error deleting: {e}"),
            ),
        }
    }
}

async fn create_in_batches(
    api: &Api<Pod>,
    expectations: &Expectations,
    report: &Report<'_>,
    key: &str,
    pod: &Pod,
    n: usize,
) -> Result<(), ManageFailure> {
    let pp = PostParams::default();
    let mut remaining = n;
    let mut batch = 1.min(remaining);
    while batch > 0 {
        let results = join_all((0..batch).map(|_| api.create(&pp, pod))).await;
        let mut first_error = None;
        for result in results {
            report.created(&result);
            if let Err(e) = result {
                // This creation will never be observed.
                expectations.creations_observed(key, 1);
                if !namespace_terminating(&e) && first_error.is_none() {
                    first_error = Some(e.to_string());
                }
            }
        }
        remaining -= batch;
        if let Some(message) = first_error {
            // Nor will the skipped ones.
            expectations.creations_observed(key, remaining);
            return Err(ManageFailure {
                reason: "FailedCreate",
                message,
            });
        }
        batch = (batch * 2).min(remaining);
    }
    Ok(())
}

async fn delete_all(
    api: &Api<Pod>,
    expectations: &Expectations,
    report: &Report<'_>,
    key: &str,
    victims: &[Arc<Pod>],
) -> Result<(), ManageFailure> {
    let results = join_all(victims.iter().map(|p| async move {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        (p, api.delete(name, &DeleteParams::default()).await)
    }))
    .await;
    let mut first_error = None;
    for (pod, result) in results {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        match result {
            Ok(_) => report.deleted(name, Ok(())),
            Err(e) => {
                expectations.deletion_observed(key, &pods::key(pod));
                let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
                if !gone {
                    report.deleted(name, Err(&e));
                    if first_error.is_none() {
                        first_error = Some(e.to_string());
                    }
                }
            }
        }
    }
    match first_error {
        None => Ok(()),
        Some(message) => Err(ManageFailure {
            reason: "FailedDelete",
            message,
        }),
    }
}
