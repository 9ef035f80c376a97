//! Pruning finished Jobs beyond `successfulJobsHistoryLimit` and
//! `failedJobsHistoryLimit` (upstream's `cleanupFinishedJobs`): the
//! oldest by start time go first.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::{CronJob, Job};

use super::jobs::{State, state};

/// The finished Jobs among `children` that are over their history limit.
pub fn surplus(cj: &CronJob, children: &[Arc<Job>]) -> Vec<Arc<Job>> {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (wanted, limit) in [
        (State::Succeeded, spec.successful_jobs_history_limit),
        (State::Failed, spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<Arc<Job>> = children
            .iter()
            .filter(|j| state(j) == wanted)
            .cloned()
            .collect();
        finished.sort_by_key(|j| {
            let started = j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0);
            let created = j.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (started.or(created), j.metadata.name.clone())
        });
        let keep = limit.max(0) as usize;
        let n = finished.len().saturating_sub(keep);
        out.extend(finished.into_iter().take(n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(name: &str, start: &str, condition: &str) -> Arc<Job> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"startTime": start, "conditions": [{"type": condition, "status": "True"}]},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn the_oldest_finished_jobs_over_each_limit_go() {
        let cj: CronJob = serde_json::from_value(json!({
            "spec": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 1,
                     "failedJobsHistoryLimit": 1, "jobTemplate": {"spec": {"template": {}}}},
        }))
        .unwrap();
        let children = vec![
            job("new-ok", "2024-01-01T00:03:00Z", "Complete"),
            job("old-ok", "2024-01-01T00:01:00Z", "Complete"),
            job("failed", "2024-01-01T00:02:00Z", "Failed"),
            job("running", "2024-01-01T00:00:00Z", "Suspended"),
        ];
        let names: Vec<String> = surplus(&cj, &children)
            .iter()
            .filter_map(|j| j.metadata.name.clone())
            .collect();
        assert_eq!(names, vec!["old-ok".to_string()]);
    }
}
