//! Creating and deleting a Job's pods, with expectations recorded before
//! each request (so watch lag never makes it act twice) and Events as
//! upstream's `PodControl` records them.

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::api::{Api, DeleteParams, PostParams};

use super::pods;
use crate::controllers::replicaset::expectations::Expectations;
use crate::recorder::EventSink;

/// Creates one pod per entry of `indexes` (`None` for a NonIndexed Job).
pub async fn create(
    api: &Api<Pod>,
    expectations: &Expectations,
    events: &EventSink,
    key: &str,
    job: &Job,
    indexes: &[Option<i32>],
) -> anyhow::Result<()> {
    expectations.expect_creations(key, indexes.len());
    let regarding = job.object_ref(&());
    let results = join_all(indexes.iter().map(|i| async move {
        match pods::from_template(job, *i) {
            Some(pod) => api
                .create(&PostParams::default(), &pod)
                .await
                .map_err(anyhow::Error::from),
            None => Err(anyhow::anyhow!("the Job has no name, uid or pod template")),
        }
    }))
    .await;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(p) => events.normal(
                regarding.clone(),
                "SuccessfulCreate",
                "Create",
                format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
            ),
            Err(e) => {
                expectations.creations_observed(key, 1);
                events.warning(
                    regarding.clone(),
                    "FailedCreate",
                    "Create",
                    format!("Error creating: {e}"),
                );
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Deletes `victims` (pods of `job`).
pub async fn delete(
    api: &Api<Pod>,
    expectations: &Expectations,
    events: &EventSink,
    key: &str,
    job: &Job,
    victims: &[Arc<Pod>],
) -> anyhow::Result<()> {
    if victims.is_empty() {
        return Ok(());
    }
    expectations.expect_deletions(
        key,
        victims
            .iter()
            .map(|p| crate::controllers::replicaset::pods::key(p)),
    );
    let regarding = job.object_ref(&());
    let results = join_all(victims.iter().map(|p| async move {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        (p, api.delete(name, &DeleteParams::default()).await)
    }))
    .await;
    let mut first_error = None;
    for (pod, result) in results {
        let name = pod.metadata.name.clone().unwrap_or_default();
        match result {
            Ok(_) => events.normal(
                regarding.clone(),
                "SuccessfulDelete",
                "Delete",
                format!("Deleted pod: {name}"),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 => {
                expectations
                    .deletion_observed(key, &crate::controllers::replicaset::pods::key(pod));
            }
            Err(e) => {
                expectations
                    .deletion_observed(key, &crate::controllers::replicaset::pods::key(pod));
                events.warning(
                    regarding.clone(),
                    "FailedDelete",
                    "Delete",
                    format!("Error deleting: {e}"),
                );
                first_error.get_or_insert(anyhow::Error::from(e));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
