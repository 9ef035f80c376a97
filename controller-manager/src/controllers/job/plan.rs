//! What a Job should do next, from its spec and counts (pure): whether it
//! has finished and how, and how many pods should be active.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobStatus};

use super::indexes;
use super::status::Outcome;

/// The Job is Indexed.
pub fn indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

/// The Job's end, if it has reached one at `now` with `active` pods.
pub fn outcome(
    job: &Job,
    status: &JobStatus,
    active: usize,
    fail_job: Option<&str>,
    now: jiff::Timestamp,
) -> Option<Outcome> {
    let spec = job.spec.clone().unwrap_or_default();
    if let Some(message) = fail_job {
        return Some(Outcome::Failed {
            reason: "PodFailurePolicy",
            message: message.to_string(),
        });
    }
    let succeeded = status.succeeded.unwrap_or(0);
    let complete = match spec.completions {
        _ if indexed(job) => {
            let done = indexes::parse(status.completed_indexes.as_deref().unwrap_or(""));
            done.len() as i32 >= spec.completions.unwrap_or(1)
        }
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active == 0,
    };
    if complete {
        return Some(Outcome::Complete);
    }
    if status.failed.unwrap_or(0) > spec.backoff_limit.unwrap_or(6) {
        return Some(Outcome::Failed {
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit".into(),
        });
    }
    if deadline_left(job, status, now).is_some_and(|d| d.is_zero()) {
        return Some(Outcome::Failed {
            reason: "DeadlineExceeded",
            message: "Job was active longer than specified deadline".into(),
        });
    }
    None
}

/// Time left before `activeDeadlineSeconds` runs out (zero once it has),
/// when the Job has a deadline and has started.
pub fn deadline_left(job: &Job, status: &JobStatus, now: jiff::Timestamp) -> Option<Duration> {
    let seconds = job.spec.as_ref()?.active_deadline_seconds?;
    let start = status.start_time.as_ref()?.0;
    let end = start + jiff::SignedDuration::from_secs(seconds);
    Some(Duration::try_from(end.duration_since(now)).unwrap_or(Duration::ZERO))
}

/// How many pods should be active (upstream's `wantActive`):
/// `min(parallelism, what is left to do)`.
pub fn want_active(job: &Job, status: &JobStatus) -> usize {
    let spec = job.spec.clone().unwrap_or_default();
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let succeeded = status.succeeded.unwrap_or(0);
    let left = match spec.completions {
        _ if indexed(job) => {
            let done: BTreeSet<i32> =
                indexes::parse(status.completed_indexes.as_deref().unwrap_or(""));
            spec.completions.unwrap_or(1) - done.len() as i32
        }
        Some(c) => c - succeeded,
        None if succeeded > 0 => 0,
        None => parallelism,
    };
    parallelism.min(left).max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(spec: serde_json::Value) -> Job {
        serde_json::from_value(json!({"spec": spec})).unwrap()
    }

    fn counts(succeeded: i32, failed: i32) -> JobStatus {
        JobStatus {
            succeeded: Some(succeeded),
            failed: Some(failed),
            start_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2024-01-01T00:00:00Z".parse().unwrap(),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn parallelism_is_capped_by_what_is_left() {
        let j = job(json!({"completions": 3, "parallelism": 2, "template": {}}));
        assert_eq!(want_active(&j, &counts(0, 0)), 2);
        assert_eq!(want_active(&j, &counts(2, 5)), 1);
        assert_eq!(want_active(&j, &counts(3, 0)), 0);
        let work_queue = job(json!({"parallelism": 3, "template": {}}));
        assert_eq!(want_active(&work_queue, &counts(0, 0)), 3);
        assert_eq!(want_active(&work_queue, &counts(1, 0)), 0);
    }

    #[test]
    fn backoff_limit_deadline_and_completions_end_the_job() {
        let now: jiff::Timestamp = "2024-01-01T00:00:05Z".parse().unwrap();
        let j = job(
            json!({"completions": 2, "backoffLimit": 1, "activeDeadlineSeconds": 10, "template": {}}),
        );
        assert_eq!(outcome(&j, &counts(1, 1), 1, None, now), None);
        assert!(matches!(
            outcome(&j, &counts(1, 2), 0, None, now),
            Some(Outcome::Failed {
                reason: "BackoffLimitExceeded",
                ..
            })
        ));
        assert_eq!(
            outcome(&j, &counts(2, 1), 0, None, now),
            Some(Outcome::Complete)
        );
        let later: jiff::Timestamp = "2024-01-01T00:00:10Z".parse().unwrap();
        assert!(matches!(
            outcome(&j, &counts(0, 0), 1, None, later),
            Some(Outcome::Failed {
                reason: "DeadlineExceeded",
                ..
            })
        ));
        assert_eq!(
            deadline_left(&j, &counts(0, 0), now),
            Some(Duration::from_secs(5))
        );
    }
}
