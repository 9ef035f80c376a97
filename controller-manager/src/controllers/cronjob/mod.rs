//! The CronJob controller (upstream's `cronjob`, its v2): starts Jobs from
//! `jobTemplate` at the schedule's times in `spec.timeZone`, honouring
//! `suspend`, `startingDeadlineSeconds` and `concurrencyPolicy`, keeps
//! `status.active`, `lastScheduleTime` and `lastSuccessfulTime`, and
//! prunes finished Jobs past the history limits.

mod history;
mod jobs;
mod plan;
mod schedule;

use std::sync::Arc;

use anyhow::{Result, anyhow};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::controllers::replicaset::pods::controller_of;
use crate::informer;
use crate::metrics::Metrics;
use crate::recorder::EventSink;
use crate::runner::{self, Outcome, Runner};
use jobs::State;
use schedule::Schedule;

/// What every worker shares.
struct Shared {
    client: kube::Client,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    events: EventSink,
}

/// Watches CronJobs and Jobs and runs each CronJob with `workers`
/// workers.
pub async fn run(
    client: kube::Client,
    metrics: Metrics,
    workers: usize,
    identity: &str,
) -> Result<()> {
    let runner = Runner::new("cronjob", &metrics);
    let queue = runner.queue();
    let cronjobs = informer::spawn(
        Api::<CronJob>::all(client.clone()),
        watcher::Config::default(),
        informer::enqueue_own_key(queue),
    );
    let queue = runner.queue();
    let jobs = informer::spawn(
        Api::<Job>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            if let Some(j) = informer::object(event)
                && let Some(r) = controller_of(&j.metadata)
                && r.kind == "CronJob"
            {
                queue.add(runner::key(j.metadata.namespace.as_deref(), &r.name));
            }
        },
    );
    cronjobs.wait_until_ready().await?;
    jobs.wait_until_ready().await?;
    let shared = Arc::new(Shared {
        events: EventSink::new(client.clone(), "cronjob-controller", identity),
        client,
        cronjobs,
        jobs,
    });
    runner
        .run(workers, move |key| reconcile(shared.clone(), key))
        .await;
    Err(anyhow!("the workers stopped"))
}

/// One level-triggered sync of the CronJob `key`.
async fn reconcile(shared: Arc<Shared>, key: String) -> Outcome {
    let (ns, name) = runner::split_key(&key);
    let Some(cj) = shared.cronjobs.get(&ObjectRef::new(name).within(ns)) else {
        return Ok(None);
    };
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let regarding = cj.object_ref(&());
    let children: Vec<Arc<Job>> = shared
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(ns))
        .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.kind == "CronJob" && r.uid == uid))
        .collect();
    let job_api: Api<Job> = Api::namespaced(shared.client.clone(), ns);
    let mut st = cj.status.clone().unwrap_or_default();
    account(&shared, &job_api, &cj, &children, &mut st).await?;

    // Prune history (best effort: a failure is retried next sync).
    for old in history::surplus(&cj, &children) {
        let job_name = old.metadata.name.clone().unwrap_or_default();
        match job_api.delete(&job_name, &DeleteParams::background()).await {
            Ok(_) => shared.events.normal(
                regarding.clone(),
                "SuccessfulDelete",
                "Delete",
                format!("Deleted job {job_name}"),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }

    let spec = cj.spec.clone().unwrap_or_default();
    if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
        write_status(&shared, &cj, st).await?;
        return Ok(None);
    }
    let schedule = match Schedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(s) => s,
        Err(invalid) => {
            shared
                .events
                .warning(regarding, invalid.reason, "Sync", invalid.message);
            write_status(&shared, &cj, st).await?;
            return Ok(None);
        }
    };
    let active = st.active.as_ref().map_or(0, Vec::len);
    let now = jiff::Timestamp::now();
    let mut as_of = (*cj).clone();
    as_of.status = Some(st.clone());
    let decision = plan::decide(&as_of, &schedule, active, now);
    for (warning, reason, message) in decision.notes {
        if warning {
            shared
                .events
                .warning(regarding.clone(), reason, "Sync", message);
        } else {
            shared
                .events
                .normal(regarding.clone(), reason, "Sync", message);
        }
    }
    if let Some(scheduled) = decision.start {
        if decision.replace_active {
            for r in st.active.take().unwrap_or_default() {
                let job_name = r.name.unwrap_or_default();
                match job_api.delete(&job_name, &DeleteParams::background()).await {
                    Ok(_) => shared.events.normal(
                        regarding.clone(),
                        "SuccessfulDelete",
                        "Delete",
                        format!("Deleted job {job_name}"),
                    ),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let job = jobs::from_template(&cj, scheduled, schedule.render(scheduled))
            .ok_or_else(|| anyhow!("the CronJob has no name or uid"))?;
        let created = match job_api.create(&PostParams::default(), &job).await {
            Ok(j) => {
                shared.events.normal(
                    regarding.clone(),
                    "SuccessfulCreate",
                    "Create",
                    format!(
                        "Created job {}",
                        j.metadata.name.as_deref().unwrap_or_default()
                    ),
                );
                j
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                job_api
                    .get(job.metadata.name.as_deref().unwrap_or_default())
                    .await?
            }
            Err(e) => {
                shared.events.warning(
                    regarding.clone(),
                    "FailedCreate",
                    "Create",
                    format!("Error creating job: {e}"),
                );
                return Err(e.into());
            }
        };
        let mine = controller_of(&created.metadata).is_some_and(|r| r.uid == uid);
        let listed = st
            .active
            .iter()
            .flatten()
            .any(|r| r.uid == created.metadata.uid);
        if mine && !listed && jobs::state(&created) == State::Active {
            st.active
                .get_or_insert_with(Vec::new)
                .push(jobs::reference(&created));
        }
        st.last_schedule_time = Some(Time(scheduled));
    }
    write_status(&shared, &cj, st).await?;
    Ok(decision.requeue)
}

/// Brings `status.active` in line with the children (finished ones
/// leave; a listed one missing from the cache leaves only once the
/// apiserver says it is gone) and moves `lastSuccessfulTime` forward.
/// As upstream, a running child the list does not name (a crash between
/// create and status write, or `kubectl create job --from`) is not
/// adopted into it.
async fn account(
    shared: &Shared,
    api: &Api<Job>,
    cj: &CronJob,
    children: &[Arc<Job>],
    st: &mut CronJobStatus,
) -> kube::Result<()> {
    let regarding = cj.object_ref(&());
    let mut active = st.active.take().unwrap_or_default();
    for job in children {
        let listed = active.iter().position(|r| r.uid == job.metadata.uid);
        let job_name = job.metadata.name.clone().unwrap_or_default();
        let finished = jobs::state(job);
        if finished == State::Active {
            continue;
        }
        if let Some(i) = listed {
            active.remove(i);
            shared.events.normal(
                regarding.clone(),
                "SawCompletedJob",
                "Sync",
                format!(
                    "Saw completed job: {job_name}, condition: {}",
                    if finished == State::Succeeded {
                        "Complete"
                    } else {
                        "Failed"
                    }
                ),
            );
        }
        if finished == State::Succeeded
            && let Some(done) = job.status.as_ref().and_then(|s| s.completion_time.clone())
            && st
                .last_successful_time
                .as_ref()
                .is_none_or(|t| t.0 < done.0)
        {
            st.last_successful_time = Some(done);
        }
    }
    let mut kept = Vec::new();
    for r in active {
        if children.iter().any(|j| j.metadata.uid == r.uid) {
            kept.push(r);
            continue;
        }
        // Not in the cache: deleted, or created too recently to be seen.
        match api.get_opt(r.name.as_deref().unwrap_or_default()).await? {
            Some(j) if j.metadata.uid == r.uid && jobs::state(&j) == State::Active => kept.push(r),
            _ => {}
        }
    }
    st.active = (!kept.is_empty()).then_some(kept);
    Ok(())
}

/// Writes `st` when it differs from what `cj` shows.
async fn write_status(shared: &Shared, cj: &CronJob, st: CronJobStatus) -> kube::Result<()> {
    if cj.status.clone().unwrap_or_default() == st {
        return Ok(());
    }
    let mut updated = cj.clone();
    updated.status = Some(st);
    let api: Api<CronJob> = Api::namespaced(
        shared.client.clone(),
        cj.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let name = cj.metadata.name.as_deref().unwrap_or_default();
    match api
        .replace_status(name, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
