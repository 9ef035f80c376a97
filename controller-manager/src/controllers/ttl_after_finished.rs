//! The TTL-after-finished controller (upstream's `ttl-after-finished`):
//! deletes a finished Job `ttlSecondsAfterFinished` seconds after it
//! finished, with background propagation and a uid precondition so a
//! re-created Job of the same name is never deleted by mistake.

use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::job::status::{finished, finished_at};
use crate::informer;
use crate::metrics::Metrics;
use crate::runner::{self, Outcome, Runner};

/// Watches Jobs and deletes the expired ones with `workers` workers.
pub async fn run(client: kube::Client, metrics: Metrics, workers: usize) -> Result<()> {
    let runner = Runner::new("ttl-after-finished", &metrics);
    let queue = runner.queue();
    let jobs = informer::spawn(
        Api::<Job>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            if let Some(j) = informer::object(event)
                && j.spec
                    .as_ref()
                    .and_then(|s| s.ttl_seconds_after_finished)
                    .is_some()
                && let Some(name) = j.metadata.name.as_deref()
            {
                queue.add(runner::key(j.metadata.namespace.as_deref(), name));
            }
        },
    );
    jobs.wait_until_ready().await?;
    runner
        .run(workers, move |key| {
            reconcile(client.clone(), jobs.clone(), key)
        })
        .await;
    Err(anyhow!("the workers stopped"))
}

/// How long until `job` expires (zero once it has); `None` when it has
/// no TTL or has not finished.
pub fn expires_in(job: &Job, now: jiff::Timestamp) -> Option<Duration> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if !finished(job) || job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let at = finished_at(job)? + jiff::SignedDuration::from_secs(ttl.into());
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

async fn reconcile(client: kube::Client, jobs: Store<Job>, key: String) -> Outcome {
    let (ns, name) = runner::split_key(&key);
    let Some(job) = jobs.get(&ObjectRef::new(name).within(ns)) else {
        return Ok(None);
    };
    match expires_in(&job, jiff::Timestamp::now()) {
        None => Ok(None),
        Some(left) if !left.is_zero() => Ok(Some(left)),
        Some(_) => {
            let api: Api<Job> = Api::namespaced(client, ns);
            let dp = DeleteParams::background().preconditions(Preconditions {
                uid: job.metadata.uid.clone(),
                resource_version: None,
            });
            tracing::info!(job = key, "deleting a finished job whose TTL expired");
            match api.delete(name, &dp).await {
                Ok(_) => Ok(None),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_finished_job_expires_ttl_seconds_after_it_finished() {
        let job: Job = serde_json::from_value(json!({
            "spec": {"ttlSecondsAfterFinished": 30, "template": {}},
            "status": {"completionTime": "2024-01-01T00:00:00Z",
                       "conditions": [{"type": "Complete", "status": "True"}]},
        }))
        .unwrap();
        let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            expires_in(&job, at("2024-01-01T00:00:10Z")),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            expires_in(&job, at("2024-01-01T00:01:00Z")),
            Some(Duration::ZERO)
        );
        let mut running = job.clone();
        running.status = None;
        assert_eq!(expires_in(&running, at("2024-01-01T00:01:00Z")), None);
    }
}
