//! Upstream's `PodControl`: creating and deleting a controller's pods
//! with an Event for each outcome and expectations kept in step, shared by
//! the ReplicaSet and DaemonSet controllers.

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};

use super::expectations::Expectations;
use super::pods;
use super::status::ManageFailure;
use crate::recorder::EventSink;

/// A create refused because the namespace is going away: expected, and
/// not retried (upstream's `NamespaceTerminatingCause`).
pub fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"))
}

/// Where the outcome of each pod request is reported, as upstream's
/// `PodControl` does.
pub struct Report<'a> {
    /// Where Events go.
    pub events: &'a EventSink,
    /// The controller object the Events are about.
    pub regarding: k8s_openapi::api::core::v1::ObjectReference,
}

impl Report<'_> {
    /// Reports one pod creation.
    pub fn created(&self, result: &kube::Result<Pod>) {
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

    /// Reports one pod deletion.
    pub fn deleted(&self, pod: &str, result: Result<(), &kube::Error>) {
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

/// Creates `pods` in slow-start batches (1, 2, 4, …), stopping at the
/// first failure; every creation that fails or is skipped is marked
/// observed in `expectations`, which the caller raised beforehand.
pub async fn create_in_batches(
    api: &Api<Pod>,
    expectations: &Expectations,
    report: &Report<'_>,
    key: &str,
    pods: Vec<Pod>,
) -> Result<(), ManageFailure> {
    let pp = PostParams::default();
    let mut remaining = pods.len();
    let mut pending = pods.iter();
    let mut batch = 1.min(remaining);
    while batch > 0 {
        let results = join_all(pending.by_ref().take(batch).map(|pod| api.create(&pp, pod))).await;
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

/// Deletes `victims` at once; each deletion that fails is marked observed
/// in `expectations` (a pod already gone is no failure).
pub async fn delete_all(
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
