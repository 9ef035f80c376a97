//! Counting finished pods so the counts survive the pods (upstream's
//! finalizer-based tracking): a newly finished pod's uid is first written
//! to `status.uncountedTerminatedPods`, then its
//! `batch.kubernetes.io/job-tracking` finalizer is removed, and only then
//! is it moved into `succeeded`/`failed`. A crash between any two steps
//! neither loses nor double-counts a pod.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::{Job, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::failure_policy::{self, Action};
use super::{indexes, pods};

/// What this sync learnt from newly finished pods.
#[derive(Debug, Default)]
pub struct Observed {
    /// A pod failure policy rule said to fail the Job, with its message.
    pub fail_job: Option<String>,
    /// New failures that count toward `backoffLimit`.
    pub new_failures: usize,
    /// Pods whose failure a rule ignores: untracked, never counted.
    pub ignored: HashSet<String>,
}

/// Adds the uids of tracked, newly finished `owned` pods to
/// `status.uncountedTerminatedPods` (and, for Indexed Jobs, succeeded
/// indexes to `completedIndexes`).
pub fn observe(job: &Job, owned: &[Arc<Pod>], status: &mut JobStatus) -> Observed {
    let spec = job.spec.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions.unwrap_or(1);
    let uncounted = status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default);
    let known: HashSet<String> = uncounted
        .succeeded
        .iter()
        .chain(uncounted.failed.iter())
        .flatten()
        .cloned()
        .collect();
    let mut completed = indexes::parse(status.completed_indexes.as_deref().unwrap_or(""));
    let mut out = Observed::default();
    for pod in owned {
        let uid = pods::uid(pod);
        if !pods::tracked(pod) || !pods::finished(pod) || known.contains(&uid) {
            continue;
        }
        if pods::succeeded(pod) {
            if indexed {
                match indexes::of(pod).filter(|i| *i < completions) {
                    Some(i) => {
                        completed.insert(i);
                    }
                    None => continue,
                }
            }
            uncounted.succeeded.get_or_insert_with(Vec::new).push(uid);
            continue;
        }
        match failure_policy::action(spec.pod_failure_policy.as_ref(), pod) {
            Action::Ignore => {
                out.ignored.insert(uid);
            }
            Action::FailJob(message) => {
                out.fail_job.get_or_insert(message);
                out.new_failures += 1;
                uncounted.failed.get_or_insert_with(Vec::new).push(uid);
            }
            Action::Count => {
                out.new_failures += 1;
                uncounted.failed.get_or_insert_with(Vec::new).push(uid);
            }
        }
    }
    if indexed {
        status.completed_indexes = Some(indexes::render(&completed));
    }
    out
}

/// The uids of `owned` pods that carry the tracking finalizer.
pub fn tracked_uids(owned: &[Arc<Pod>]) -> HashSet<String> {
    owned
        .iter()
        .filter(|p| pods::tracked(p))
        .map(|p| pods::uid(p))
        .collect()
}

/// Moves uncounted uids whose pods no longer carry the finalizer (not in
/// `still_tracked`, or gone) into the counts.
pub fn settle(job: &Job, still_tracked: &HashSet<String>, status: &mut JobStatus) {
    let Some(uncounted) = status.uncounted_terminated_pods.as_mut() else {
        return;
    };
    let take = |list: &mut Option<Vec<String>>| -> i32 {
        let before = list.as_ref().map_or(0, Vec::len);
        if let Some(l) = list.as_mut() {
            l.retain(|uid| still_tracked.contains(uid));
        }
        (before - list.as_ref().map_or(0, Vec::len)) as i32
    };
    let succeeded = take(&mut uncounted.succeeded);
    let failed = take(&mut uncounted.failed);
    // Empty lists are left out, as upstream shows them (`{}`).
    for list in [&mut uncounted.succeeded, &mut uncounted.failed] {
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
    }
    status.failed = Some(status.failed.unwrap_or(0) + failed);
    let indexed = job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed");
    status.succeeded = Some(if indexed {
        let done: BTreeSet<i32> = indexes::parse(status.completed_indexes.as_deref().unwrap_or(""));
        done.len() as i32
    } else {
        status.succeeded.unwrap_or(0) + succeeded
    });
}

/// Removes the tracking finalizer from `victims`; the pods whose removal
/// failed keep it (and stay uncounted) until the next sync.
pub async fn untrack(api: &Api<Pod>, victims: &[Arc<Pod>]) -> anyhow::Result<()> {
    let results = join_all(victims.iter().map(|p| untrack_one(api, p))).await;
    results.into_iter().collect::<kube::Result<Vec<()>>>()?;
    Ok(())
}

async fn untrack_one(api: &Api<Pod>, pod: &Pod) -> kube::Result<()> {
    let kept: Vec<&String> = pod
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != pods::TRACKING_FINALIZER)
        .collect();
    // The resourceVersion makes this a compare-and-swap of the list.
    let patch = json!({"metadata": {
        "finalizers": kept,
        "resourceVersion": pod.metadata.resource_version,
    }});
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, phase: &str, finalizer: bool, index: Option<i32>) -> Arc<Pod> {
        let finalizers = if finalizer {
            json!([pods::TRACKING_FINALIZER])
        } else {
            json!([])
        };
        let annotations = index.map(|i| json!({indexes::COMPLETION_INDEX: i.to_string()}));
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": uid, "uid": uid, "finalizers": finalizers, "annotations": annotations},
                "status": {"phase": phase},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn finished_pods_are_counted_once_through_uncounted() {
        let job: Job =
            serde_json::from_value(json!({"spec": {"completions": 3, "template": {}}})).unwrap();
        let mut status = JobStatus::default();
        let owned = vec![
            pod("a", "Succeeded", true, None),
            pod("b", "Failed", true, None),
            pod("c", "Running", true, None),
        ];
        let seen = observe(&job, &owned, &mut status);
        assert_eq!(seen.new_failures, 1);
        // A second look before the finalizers are gone adds nothing.
        assert_eq!(observe(&job, &owned, &mut status).new_failures, 0);
        settle(&job, &tracked_uids(&owned), &mut status);
        assert_eq!((status.succeeded, status.failed), (Some(0), Some(0)));
        let untracked = vec![pod("a", "Succeeded", false, None), owned[2].clone()];
        settle(&job, &tracked_uids(&untracked), &mut status);
        assert_eq!((status.succeeded, status.failed), (Some(1), Some(1)));
        assert_eq!(
            status.uncounted_terminated_pods,
            Some(UncountedTerminatedPods::default())
        );
        assert_eq!(observe(&job, &untracked, &mut status).new_failures, 0);
        settle(&job, &tracked_uids(&untracked), &mut status);
        assert_eq!((status.succeeded, status.failed), (Some(1), Some(1)));
    }

    #[test]
    fn indexed_successes_fill_completed_indexes() {
        let job: Job = serde_json::from_value(
            json!({"spec": {"completions": 5, "completionMode": "Indexed", "template": {}}}),
        )
        .unwrap();
        let mut status = JobStatus::default();
        let owned = vec![
            pod("a", "Succeeded", true, Some(0)),
            pod("b", "Succeeded", true, Some(2)),
            pod("c", "Succeeded", true, Some(1)),
            pod("d", "Succeeded", true, Some(4)),
        ];
        observe(&job, &owned, &mut status);
        assert_eq!(status.completed_indexes.as_deref(), Some("0-2,4"));
        settle(&job, &HashSet::new(), &mut status);
        assert_eq!(status.succeeded, Some(4));
    }
}
