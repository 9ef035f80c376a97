//! The Job's status: conditions (`Complete`/`Failed`, preceded as in
//! upstream 1.33 by `SuccessCriteriaMet`/`FailureTarget`, and
//! `Suspended`), and writing the whole status through the status
//! subresource only when it changed (a replace carrying the
//! resourceVersion, so a concurrent change makes it retry rather than
//! lose counts).

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};

/// The condition `type_` is `True` on `status`.
pub fn has_condition(status: Option<&JobStatus>, type_: &str) -> bool {
    status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// The message of a `True` `FailureTarget` condition with `reason`: the
/// Job was already judged failed by an earlier, interrupted sync.
pub fn failure_target(status: &JobStatus, reason: &str) -> Option<String> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| {
            c.type_ == "FailureTarget" && c.status == "True" && c.reason.as_deref() == Some(reason)
        })
        .map(|c| c.message.clone().unwrap_or_default())
}

/// The Job has finished, one way or the other.
pub fn finished(job: &Job) -> bool {
    let s = job.status.as_ref();
    has_condition(s, "Complete") || has_condition(s, "Failed")
}

/// When the Job finished (the `Complete` or `Failed` condition's time).
pub fn finished_at(job: &Job) -> Option<jiff::Timestamp> {
    let s = job.status.as_ref()?;
    if let Some(t) = &s.completion_time {
        return Some(t.0);
    }
    s.conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Sets condition `type_` to `value`, keeping its transition time when
/// the status does not change, and leaving it untouched when nothing
/// about it changes.
pub fn set_condition(
    status: &mut JobStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        let same = c.status == value
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message);
        if same {
            // Unchanged: touching the probe time would make every sync
            // write status (and wake itself).
            return;
        }
        if c.status != value {
            c.last_transition_time = Some(Time(now));
        }
        c.status = value.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(Time(now));
        return;
    }
    conditions.push(JobCondition {
        type_: type_.into(),
        status: value.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
}

/// Marks the Job finished: `SuccessCriteriaMet` then `Complete` (with
/// `completionTime`), or `FailureTarget` then `Failed`.
pub fn finish(status: &mut JobStatus, outcome: &Outcome, now: jiff::Timestamp) {
    match outcome {
        Outcome::Complete => {
            let reason = "CompletionsReached";
            let msg = "Reached expected number of succeeded pods";
            set_condition(status, "SuccessCriteriaMet", "True", reason, msg, now);
            set_condition(status, "Complete", "True", reason, msg, now);
            status.completion_time = Some(Time(now));
        }
        Outcome::Failed { reason, message } => {
            set_condition(status, "FailureTarget", "True", reason, message, now);
            set_condition(status, "Failed", "True", reason, message, now);
        }
    }
}

/// How a Job ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Enough pods succeeded.
    Complete,
    /// It failed: `BackoffLimitExceeded`, `DeadlineExceeded` or
    /// `PodFailurePolicy`, with upstream's message.
    Failed {
        /// The condition reason.
        reason: &'static str,
        /// The condition message.
        message: String,
    },
}

/// Writes `status` when it differs from what `job` shows; returns the
/// Job as stored afterwards.
pub async fn write_if_changed(api: &Api<Job>, job: &Job, status: JobStatus) -> kube::Result<Job> {
    if job.status.as_ref() == Some(&status) {
        return Ok(job.clone());
    }
    let mut updated = job.clone();
    updated.status = Some(status);
    let name = job.metadata.name.as_deref().unwrap_or_default();
    match api
        .replace_status(name, &PostParams::default(), &updated)
        .await
    {
        Ok(j) => Ok(j),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(updated),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let t0: jiff::Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let mut s = JobStatus::default();
        set_condition(&mut s, "Suspended", "True", "JobSuspended", "m", t0);
        set_condition(&mut s, "Suspended", "True", "JobSuspended", "m", t1);
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(c.last_transition_time, Some(Time(t0)));
        finish(&mut s, &Outcome::Complete, t1);
        let job = Job {
            status: Some(s),
            ..Default::default()
        };
        assert!(finished(&job));
        let mut s = JobStatus::default();
        set_condition(
            &mut s,
            "FailureTarget",
            "True",
            "PodFailurePolicy",
            "exit 42",
            t0,
        );
        assert_eq!(
            failure_target(&s, "PodFailurePolicy").as_deref(),
            Some("exit 42")
        );
        assert_eq!(finished_at(&job), Some(t1));
    }
}
