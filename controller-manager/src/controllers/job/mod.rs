//! The Job controller (upstream's `job`): runs a Job's pods until enough
//! succeed (`completions`, `parallelism`, Indexed completion mode), or it
//! fails (`backoffLimit`, `activeDeadlineSeconds`, `podFailurePolicy`),
//! counting finished pods through the job-tracking finalizer, and reports
//! it in `status` and the `Complete`/`Failed` conditions.

mod backoff;
mod failure_policy;
pub(crate) mod indexes;
mod manage;
mod plan;
mod pod_events;
mod pods;
pub(crate) mod status;
mod tracking;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::controllers::replicaset::expectations::Expectations;
use crate::controllers::replicaset::pods::is_ready;
use crate::informer;
use crate::metrics::Metrics;
use crate::recorder::EventSink;
use crate::runner::{self, Outcome, Runner};
use backoff::Backoff;
use status::Outcome as End;

/// What every worker shares.
struct Shared {
    client: kube::Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    expectations: Arc<Expectations>,
    backoff: Backoff,
    events: EventSink,
}

/// Watches Jobs and pods and runs each Job with `workers` workers.
pub async fn run(
    client: kube::Client,
    metrics: Metrics,
    workers: usize,
    identity: &str,
) -> Result<()> {
    let runner = Runner::new("job", &metrics);
    let expectations = Arc::new(Expectations::default());
    let queue = runner.queue();
    let jobs = informer::spawn(
        Api::<Job>::all(client.clone()),
        watcher::Config::default(),
        informer::enqueue_own_key(queue),
    );
    let handler = Arc::new(Mutex::new(pod_events::PodEvents::new(
        runner.queue(),
        expectations.clone(),
    )));
    let pods = informer::spawn(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            handler
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .handle(event)
        },
    );
    jobs.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    let shared = Arc::new(Shared {
        events: EventSink::new(client.clone(), "job-controller", identity),
        client,
        jobs,
        pods,
        expectations,
        backoff: Backoff::default(),
    });
    runner
        .run(workers, move |key| reconcile(shared.clone(), key))
        .await;
    Err(anyhow!("the workers stopped"))
}

/// The pods in the store whose controller reference names the Job `key`
/// (by name; `uid` narrows to one incarnation of it).
fn pods_of(shared: &Shared, key: &str, uid: Option<&str>) -> Vec<Arc<Pod>> {
    let (ns, name) = runner::split_key(key);
    shared
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| {
            crate::controllers::replicaset::pods::controller_of(&p.metadata).is_some_and(|r| {
                r.kind == "Job" && r.name == name && uid.is_none_or(|u| u == r.uid)
            })
        })
        .collect()
}

/// One level-triggered sync of the Job `key`.
async fn reconcile(shared: Arc<Shared>, key: String) -> Outcome {
    let (ns, name) = runner::split_key(&key);
    let pod_api: Api<Pod> = Api::namespaced(shared.client.clone(), ns);
    let Some(job) = shared.jobs.get(&ObjectRef::new(name).within(ns)) else {
        // Gone: let its pods go too (nothing will count them now).
        shared.expectations.delete(&key);
        shared.backoff.forget(&key);
        let orphans: Vec<Arc<Pod>> = pods_of(&shared, &key, None)
            .into_iter()
            .filter(|p| pods::tracked(p))
            .collect();
        tracking::untrack(&pod_api, &orphans).await?;
        return Ok(None);
    };
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let owned = pods_of(&shared, &key, Some(&uid));
    let job_api: Api<Job> = Api::namespaced(shared.client.clone(), ns);
    if status::finished(&job) {
        shared.backoff.forget(&key);
        let leftovers: Vec<Arc<Pod>> = owned.into_iter().filter(|p| pods::tracked(p)).collect();
        tracking::untrack(&pod_api, &leftovers).await?;
        return Ok(None);
    }
    let now = jiff::Timestamp::now();
    let spec = job.spec.clone().unwrap_or_default();
    let suspended = spec.suspend == Some(true);

    let (job, mut st, seen) = count_finished(&job_api, &pod_api, &job, &owned, now).await?;
    if seen.new_failures > 0 {
        shared.backoff.failed(&key);
    }

    let active: Vec<Arc<Pod>> = owned
        .iter()
        .filter(|p| !pods::finished(p))
        .cloned()
        .collect();
    if st.start_time.is_none() && !suspended {
        st.start_time = Some(Time(now));
    }
    let fail_job = seen
        .fail_job
        .clone()
        .or_else(|| status::failure_target(&st, "PodFailurePolicy"));
    let end = plan::outcome(&job, &st, active.len(), fail_job.as_deref(), now);
    let mut requeue = None;
    if let Some(end) = &end {
        // Whatever still runs is stopped (and, once failed, counted so).
        manage::delete(
            &pod_api,
            &shared.expectations,
            &shared.events,
            &key,
            &job,
            &active,
        )
        .await?;
        if matches!(end, End::Failed { .. }) {
            st.failed = Some(st.failed.unwrap_or(0) + active.len() as i32);
        }
        st.active = Some(0);
        st.ready = Some(0);
        status::finish(&mut st, end, now);
        record_end(&shared.events, &job, end);
    } else if suspended {
        // Pods stopped by suspension are not failures: untracked first,
        // they are never counted.
        tracking::untrack(&pod_api, &active).await?;
        manage::delete(
            &pod_api,
            &shared.expectations,
            &shared.events,
            &key,
            &job,
            &active,
        )
        .await?;
        st.active = Some(0);
        st.ready = Some(0);
        st.start_time = None;
        status::set_condition(
            &mut st,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        );
    } else {
        if status::has_condition(Some(&st), "Suspended") {
            status::set_condition(
                &mut st,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                now,
            );
        }
        st.active = Some(active.len() as i32);
        st.ready = Some(active.iter().filter(|p| is_ready(p)).count() as i32);
        requeue = plan::deadline_left(&job, &st, now).map(|d| d + Duration::from_millis(100));
        if shared.expectations.satisfied(&key) {
            let wait = shared.backoff.remaining(&key, st.failed.unwrap_or(0));
            let want = plan::want_active(&job, &st);
            if active.len() < want && !wait.is_zero() {
                requeue = Some(requeue.map_or(wait, |r: Duration| r.min(wait)));
            } else {
                scale(&shared, &pod_api, &key, &job, &st, &active, want).await?;
            }
        }
    }
    status::write_if_changed(&job_api, &job, st).await?;
    Ok(requeue)
}

/// Counts newly finished pods, crash-safely: their uids go to
/// `uncountedTerminatedPods` (written), their finalizers are removed,
/// then they move into the counts (in the returned status, written by
/// the caller). Returns the Job as stored after the first write.
async fn count_finished(
    job_api: &Api<Job>,
    pod_api: &Api<Pod>,
    job: &Job,
    owned: &[Arc<Pod>],
    now: jiff::Timestamp,
) -> Result<(Job, JobStatus, tracking::Observed)> {
    let mut st = job.status.clone().unwrap_or_default();
    let seen = tracking::observe(job, owned, &mut st);
    if let Some(message) = &seen.fail_job {
        // Written with the uncounted pod, so the verdict outlives the
        // pod's finalizer even if this sync stops halfway.
        status::set_condition(
            &mut st,
            "FailureTarget",
            "True",
            "PodFailurePolicy",
            message,
            now,
        );
    }
    let job = status::write_if_changed(job_api, job, st).await?;
    let mut st = job.status.clone().unwrap_or_default();
    let uncounted: BTreeSet<String> = st
        .uncounted_terminated_pods
        .iter()
        .flat_map(|u| {
            u.succeeded
                .iter()
                .flatten()
                .chain(u.failed.iter().flatten())
        })
        .cloned()
        .collect();
    let done: Vec<Arc<Pod>> = owned
        .iter()
        .filter(|p| pods::tracked(p) && pods::finished(p))
        .filter(|p| {
            let uid = pods::uid(p);
            uncounted.contains(&uid) || seen.ignored.contains(&uid)
        })
        .cloned()
        .collect();
    tracking::untrack(pod_api, &done).await?;
    let mut still_tracked = tracking::tracked_uids(owned);
    for p in &done {
        still_tracked.remove(&pods::uid(p));
    }
    tracking::settle(&job, &still_tracked, &mut st);
    Ok((job, st, seen))
}

/// Creates or deletes pods so `active` moves to `want`.
async fn scale(
    shared: &Shared,
    api: &Api<Pod>,
    key: &str,
    job: &Job,
    st: &JobStatus,
    active: &[Arc<Pod>],
    want: usize,
) -> Result<()> {
    if plan::indexed(job) {
        let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
        let done = indexes::parse(st.completed_indexes.as_deref().unwrap_or(""));
        let extra = indexes::redundant(active, completions, &done);
        if !extra.is_empty() {
            // Not failures either; the next sync sees what is left.
            tracking::untrack(api, &extra).await?;
            return manage::delete(api, &shared.expectations, &shared.events, key, job, &extra)
                .await;
        }
    }
    if active.len() < want {
        let n = want - active.len();
        let slots: Vec<Option<i32>> = if plan::indexed(job) {
            let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
            let done = indexes::parse(st.completed_indexes.as_deref().unwrap_or(""));
            let running: BTreeSet<i32> = active.iter().filter_map(|p| indexes::of(p)).collect();
            indexes::next_free(completions, &done, &running, n)
                .into_iter()
                .map(Some)
                .collect()
        } else {
            vec![None; n]
        };
        manage::create(api, &shared.expectations, &shared.events, key, job, &slots).await
    } else if active.len() > want {
        // The newest (or highest-index) pods go first.
        let mut victims = active.to_vec();
        victims.sort_by_key(|p| {
            (
                indexes::of(p),
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        });
        let surplus = victims.split_off(want);
        // Nor are pods stopped because fewer are wanted.
        tracking::untrack(api, &surplus).await?;
        manage::delete(
            api,
            &shared.expectations,
            &shared.events,
            key,
            job,
            &surplus,
        )
        .await
    } else {
        Ok(())
    }
}

/// The Event upstream records when a Job ends.
fn record_end(events: &EventSink, job: &Job, end: &End) {
    use kube::Resource;
    let regarding = job.object_ref(&());
    match end {
        End::Complete => events.normal(regarding, "Completed", "Sync", "Job completed".into()),
        End::Failed { reason, message } => {
            events.warning(regarding, reason, "Sync", message.clone())
        }
    }
}
