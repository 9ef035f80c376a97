//! The Jobs a CronJob creates (upstream's `getJobFromTemplate2`): named
//! `<cronjob>-<scheduled time in minutes since the epoch>` so each start
//! time makes one Job at most, carrying the
//! `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation and the
//! CronJob as controller; and which of them are finished.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::controllers::job::status::has_condition;

/// The annotation holding the start time a Job was created for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// The Job's name for a start time.
pub fn name(cronjob: &str, scheduled: jiff::Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// The Job `cj` starts at `scheduled` (`rendered` in its time zone).
pub fn from_template(cj: &CronJob, scheduled: jiff::Timestamp, rendered: String) -> Option<Job> {
    let cj_name = cj.metadata.name.as_deref()?;
    let template = cj.spec.as_ref()?.job_template.clone();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rendered);
    Some(Job {
        metadata: ObjectMeta {
            name: Some(name(cj_name, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: cj_name.to_string(),
                uid: cj.metadata.uid.clone()?,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    })
}

/// How a child Job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Still running.
    Active,
    /// Ended with `Complete`.
    Succeeded,
    /// Ended with `Failed`.
    Failed,
}

/// The state of `job`.
pub fn state(job: &Job) -> State {
    let s = job.status.as_ref();
    if has_condition(s, "Complete") {
        State::Succeeded
    } else if has_condition(s, "Failed") {
        State::Failed
    } else {
        State::Active
    }
}

/// The reference `status.active` keeps to a Job.
pub fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_is_named_for_its_start_minute_and_annotated() {
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "backup", "namespace": "ns", "uid": "u"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {
                "metadata": {"labels": {"app": "b"}},
                "spec": {"template": {}}}},
        }))
        .unwrap();
        let t: jiff::Timestamp = "2024-01-01T00:05:00Z".parse().unwrap();
        let job = from_template(&cj, t, "2024-01-01T00:05:00Z".into()).unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("backup-28401125"));
        assert_eq!(
            job.metadata
                .annotations
                .unwrap()
                .get(SCHEDULED_TIMESTAMP)
                .map(String::as_str),
            Some("2024-01-01T00:05:00Z")
        );
        assert_eq!(job.metadata.owner_references.unwrap()[0].kind, "CronJob");
        assert_eq!(state(&Job::default()), State::Active);
    }
}
