//! The Job, CronJob and TTL-after-finished controllers against a real
//! apiserver and etcd, driven with the real kubectl. There is no kubelet:
//! the test plays it by writing pod status (phase Succeeded or Failed with
//! a terminated container and its exit code).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use capstan_tests::fixture::{ControlPlane, Process};
use capstan_tests::table::printed_table;
use capstan_tests::wait;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// How long the controllers may take to converge in these small clusters.
const CONVERGE: Duration = Duration::from_secs(30);
/// Longer than the first pod-failure back-off (10 s).
const AFTER_BACKOFF: Duration = Duration::from_secs(45);
/// The job-tracking finalizer the controller puts on its pods.
const TRACKING: &str = "batch.kubernetes.io/job-tracking";

struct Cluster {
    cp: ControlPlane,
    client: kube::Client,
    cm: Process,
}

/// A control plane and a controller-manager (no leader election).
async fn cluster() -> Result<Cluster> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let (cm, _) = cp.start_controller_manager(&["--leader-elect=false"])?;
    Ok(Cluster { cp, client, cm })
}

fn name_of(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Running as far as the Job is concerned: not finished, not deleted.
fn running(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && !matches!(phase(p), Some("Succeeded" | "Failed"))
}

impl Cluster {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Applies a Job manifest whose pod runs one container `main`.
    fn apply_job(&self, name: &str, spec: serde_json::Value) -> Result<()> {
        let mut full = json!({
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "registry.example/task:1"}],
            }},
        });
        if let (Some(s), Some(e)) = (full.as_object_mut(), spec.as_object()) {
            s.extend(e.clone());
        }
        let manifest = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name}, "spec": full});
        let path = self
            .cp
            .write(&format!("{name}.json"), &manifest.to_string())?;
        self.cp.kubectl(&["apply", "-f", &path])?;
        Ok(())
    }

    /// The Job's pods (by its `job-name` label).
    async fn pods_of(&self, job: &str) -> Result<Vec<Pod>> {
        let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
        Ok(self.pods().list(&lp).await?.items)
    }

    /// Waits until the Job has exactly `n` running pods; returns them.
    async fn running_pods(&self, job: &str, n: usize) -> Result<Vec<Pod>> {
        wait::until(
            &format!("{n} running pods of {job}"),
            AFTER_BACKOFF,
            || async {
                let pods = self.pods_of(job).await.ok()?;
                let running: Vec<Pod> = pods.into_iter().filter(running).collect();
                (running.len() == n).then_some(running)
            },
        )
        .await
    }

    /// Plays the kubelet: the pod's container exits with `code`.
    async fn finish(&self, pod: &str, code: i32) -> Result<()> {
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        let now = jiff::Timestamp::now().to_string();
        self.pods()
            .patch_status(
                pod,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "phase": phase,
                    "containerStatuses": [{
                        "name": "main", "image": "registry.example/task:1", "imageID": "",
                        "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": code, "startedAt": now, "finishedAt": now}},
                    }],
                }})),
            )
            .await
            .with_context(|| format!("finishing {pod}"))?;
        Ok(())
    }

    /// Waits for a condition with `kubectl wait`.
    fn kubectl_wait(&self, what: &str, condition: &str) -> Result<String> {
        self.cp.kubectl(&[
            "wait",
            &format!("--for=condition={condition}"),
            what,
            "--timeout=45s",
        ])
    }

    async fn job(&self, name: &str) -> Result<Job> {
        Ok(self.jobs().get(name).await?)
    }

    /// The reason of the Job's `Failed` condition.
    async fn failed_reason(&self, name: &str) -> Result<Option<String>> {
        let job = self.job(name).await?;
        Ok(job
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Failed" && c.status == "True")
            .and_then(|c| c.reason))
    }
}

#[tokio::test]
async fn a_job_of_three_completions_two_at_a_time_completes_as_its_pods_succeed() -> Result<()> {
    let c = cluster().await?;
    c.apply_job("count", json!({"completions": 3, "parallelism": 2}))?;
    let first = c.running_pods("count", 2).await?;
    let pod = &first[0];
    let owner = pod
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.controller == Some(true));
    assert_eq!(
        owner.map(|r| (r.kind, r.name, r.block_owner_deletion)),
        Some(("Job".into(), "count".into(), Some(true)))
    );
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("job-name").map(String::as_str), Some("count"));
    assert!(labels.contains_key("batch.kubernetes.io/controller-uid"));
    assert!(
        pod.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == TRACKING)
    );
    // Once status shows the two, the controller leaves it alone.
    let settled = wait::until("status.active 2", CONVERGE, || async {
        let job = c.job("count").await.ok()?;
        (job.status.as_ref()?.active == Some(2)).then_some(job)
    })
    .await?;
    c.cp.kubectl(&["get", "job", "count"])?;
    let again = c.job("count").await?;
    assert_eq!(
        again.metadata.resource_version,
        settled.metadata.resource_version
    );

    // Two succeed; only one more is needed, so one more pod runs.
    c.finish(&name_of(&first[0]), 0).await?;
    c.finish(&name_of(&first[1]), 0).await?;
    let last = c.running_pods("count", 1).await?;
    c.finish(&name_of(&last[0]), 0).await?;
    c.kubectl_wait("job/count", "complete")?;

    let out = c.cp.kubectl(&["get", "job", "count"])?;
    let rows = printed_table(&out, &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    assert_eq!(rows[0][..3], ["count", "Complete", "3/3"]);
    let status = c.job("count").await?.status.unwrap_or_default();
    assert_eq!((status.succeeded, status.failed), (Some(3), Some(0)));
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    let described = wait::until("the Completed event", CONVERGE, || async {
        let out = c.cp.kubectl(&["describe", "job", "count"]).ok()?;
        out.contains("Completed").then_some(out)
    })
    .await?;
    assert!(described.contains("SuccessfulCreate"), "{described}");
    assert!(described.contains("job-controller"), "{described}");
    // Counted pods no longer carry the finalizer, and no extra pod ran.
    let pods = c.pods_of("count").await?;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| {
        !p.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == TRACKING)
    }));
    Ok(())
}

#[tokio::test]
async fn a_job_fails_once_its_backoff_limit_is_exceeded() -> Result<()> {
    let c = cluster().await?;
    c.apply_job("flaky", json!({"backoffLimit": 1}))?;
    let first = c.running_pods("flaky", 1).await?;
    c.finish(&name_of(&first[0]), 1).await?;
    // One retry is allowed, after the back-off delay.
    let retry = c.running_pods("flaky", 1).await?;
    assert_ne!(name_of(&retry[0]), name_of(&first[0]));
    c.finish(&name_of(&retry[0]), 1).await?;
    c.kubectl_wait("job/flaky", "failed")?;
    assert_eq!(
        c.failed_reason("flaky").await?.as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(c.job("flaky").await?.status.and_then(|s| s.failed), Some(2));
    assert_eq!(c.pods_of("flaky").await?.len(), 2, "no third attempt");
    let out = c.cp.kubectl(&["get", "job", "flaky"])?;
    let rows = printed_table(&out, &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    assert_eq!(rows[0][..3], ["flaky", "Failed", "0/1"]);
    Ok(())
}

#[tokio::test]
async fn a_job_past_its_active_deadline_fails_and_its_pods_are_deleted() -> Result<()> {
    let c = cluster().await?;
    c.apply_job(
        "slow",
        json!({"parallelism": 2, "completions": 4, "activeDeadlineSeconds": 3}),
    )?;
    c.running_pods("slow", 2).await?;
    c.kubectl_wait("job/slow", "failed")?;
    assert_eq!(
        c.failed_reason("slow").await?.as_deref(),
        Some("DeadlineExceeded")
    );
    wait::until("the deadline's pods deleted", CONVERGE, || async {
        c.pods_of("slow").await.ok()?.is_empty().then_some(())
    })
    .await?;
    let status = c.job("slow").await?.status.unwrap_or_default();
    assert_eq!((status.active, status.failed), (Some(0), Some(2)));
    Ok(())
}

#[tokio::test]
async fn an_indexed_job_runs_each_index_once_and_reports_completed_indexes() -> Result<()> {
    let c = cluster().await?;
    c.apply_job(
        "shards",
        json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
    )?;
    let pods = c.running_pods("shards", 3).await?;
    let index = |p: &Pod| {
        p.metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .get("batch.kubernetes.io/job-completion-index")
            .cloned()
            .unwrap_or_default()
    };
    let indexes: BTreeSet<String> = pods.iter().map(index).collect();
    assert_eq!(indexes, ["0", "1", "2"].map(String::from).into());
    for p in &pods {
        let i = index(p);
        let hostname = p.spec.as_ref().and_then(|s| s.hostname.clone());
        assert_eq!(hostname, Some(format!("shards-{i}")));
        let label = p.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            label.get("batch.kubernetes.io/job-completion-index"),
            Some(&i)
        );
    }
    let by_index = |i: &str| {
        pods.iter()
            .find(|p| index(p) == i)
            .map(name_of)
            .unwrap_or_default()
    };
    c.finish(&by_index("0"), 0).await?;
    c.finish(&by_index("2"), 0).await?;
    wait::until("completedIndexes 0,2", CONVERGE, || async {
        let s = c.job("shards").await.ok()?.status?;
        (s.completed_indexes.as_deref() == Some("0,2")).then_some(())
    })
    .await?;
    // A failed index is retried under the same index.
    c.finish(&by_index("1"), 1).await?;
    let retry = c.running_pods("shards", 1).await?;
    assert_eq!(index(&retry[0]), "1");
    c.finish(&name_of(&retry[0]), 0).await?;
    c.kubectl_wait("job/shards", "complete")?;
    let status = c.job("shards").await?.status.unwrap_or_default();
    assert_eq!(status.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(status.succeeded, Some(3));
    Ok(())
}

#[tokio::test]
async fn a_pod_failure_policy_fails_the_job_at_once_on_a_fatal_exit_code() -> Result<()> {
    let c = cluster().await?;
    c.apply_job(
        "strict",
        json!({"backoffLimit": 6, "parallelism": 2, "completions": 2, "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        ]}}),
    )?;
    let pods = c.running_pods("strict", 2).await?;
    c.finish(&name_of(&pods[0]), 42).await?;
    c.kubectl_wait("job/strict", "failed")?;
    assert_eq!(
        c.failed_reason("strict").await?.as_deref(),
        Some("PodFailurePolicy")
    );
    // The other pod is stopped, and nothing is retried.
    wait::until("the other pod deleted", CONVERGE, || async {
        let pods = c.pods_of("strict").await.ok()?;
        (pods.len() == 1).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_suspended_job_stops_its_pods_without_counting_failures_and_resumes() -> Result<()> {
    let c = cluster().await?;
    c.apply_job("paused", json!({"parallelism": 2, "completions": 2}))?;
    c.running_pods("paused", 2).await?;
    c.cp.kubectl(&[
        "patch",
        "job",
        "paused",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ])?;
    c.kubectl_wait("job/paused", "suspended")?;
    wait::until("the suspended job's pods gone", CONVERGE, || async {
        c.pods_of("paused").await.ok()?.is_empty().then_some(())
    })
    .await?;
    let job = c.job("paused").await?;
    let status = job.status.clone().unwrap_or_default();
    assert_eq!((status.active, status.failed), (Some(0), Some(0)));
    let out = c.cp.kubectl(&["get", "job", "paused"])?;
    let rows = printed_table(&out, &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    assert_eq!(rows[0][..3], ["paused", "Suspended", "0/2"]);
    // Settled: the controller is not rewriting the status meanwhile.
    let again = c.job("paused").await?;
    assert_eq!(
        again.metadata.resource_version,
        job.metadata.resource_version
    );

    c.cp.kubectl(&[
        "patch",
        "job",
        "paused",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ])?;
    let pods = c.running_pods("paused", 2).await?;
    for p in &pods {
        c.finish(&name_of(p), 0).await?;
    }
    c.kubectl_wait("job/paused", "complete")?;
    Ok(())
}

#[tokio::test]
async fn pods_that_finish_and_are_deleted_while_the_controller_is_down_still_count() -> Result<()> {
    let mut c = cluster().await?;
    c.apply_job("durable", json!({"completions": 2, "parallelism": 2}))?;
    let pods = c.running_pods("durable", 2).await?;
    c.cm.stop();
    for p in &pods {
        c.finish(&name_of(p), 0).await?;
        c.cp.kubectl(&["delete", "pod", &name_of(p), "--wait=false"])?;
    }
    // The job-tracking finalizer keeps them until they are counted.
    for p in &pods {
        let kept = c.pods().get_opt(&name_of(p)).await?;
        assert!(kept.is_some_and(|k| k.metadata.deletion_timestamp.is_some()));
    }
    let (cm, _) = c.cp.start_controller_manager(&["--leader-elect=false"])?;
    c.cm = cm;
    c.kubectl_wait("job/durable", "complete")?;
    let status = c.job("durable").await?.status.unwrap_or_default();
    assert_eq!((status.succeeded, status.failed), (Some(2), Some(0)));
    wait::until("the counted pods released", CONVERGE, || async {
        c.pods_of("durable").await.ok()?.is_empty().then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_failure_the_pod_failure_policy_ignores_is_replaced_without_counting() -> Result<()> {
    let c = cluster().await?;
    c.apply_job(
        "tolerant",
        json!({"backoffLimit": 0, "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]}}),
    )?;
    let first = c.running_pods("tolerant", 1).await?;
    let name = name_of(&first[0]);
    // Evicted, as the kubelet would report it: Failed with DisruptionTarget.
    c.pods()
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Failed",
                "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}],
            }})),
        )
        .await?;
    let replacement = c.running_pods("tolerant", 1).await?;
    assert_ne!(name_of(&replacement[0]), name);
    let status = c.job("tolerant").await?.status.unwrap_or_default();
    assert_eq!(
        status.failed.unwrap_or(0),
        0,
        "backoffLimit 0 and still running"
    );
    c.finish(&name_of(&replacement[0]), 0).await?;
    c.kubectl_wait("job/tolerant", "complete")?;
    Ok(())
}

#[tokio::test]
async fn a_finished_job_is_deleted_after_ttl_seconds_after_finished() -> Result<()> {
    let c = cluster().await?;
    c.apply_job("brief", json!({"ttlSecondsAfterFinished": 2}))?;
    let pods = c.running_pods("brief", 1).await?;
    c.finish(&name_of(&pods[0]), 0).await?;
    c.kubectl_wait("job/brief", "complete")?;
    wait::until("the finished job deleted", CONVERGE, || async {
        c.jobs()
            .get_opt("brief")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await?;
    let out = c.cp.kubectl(&["get", "jobs"])?;
    assert!(!out.contains("brief"), "{out}");
    Ok(())
}

/// Applies a CronJob running every minute with `extra` spec fields.
fn apply_cronjob(c: &Cluster, name: &str, extra: serde_json::Value) -> Result<()> {
    let mut spec = json!({
        "schedule": "* * * * *",
        "jobTemplate": {
            "metadata": {"labels": {"app": name}},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "registry.example/task:1"}],
            }}},
        },
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let manifest = json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name}, "spec": spec});
    let path = c.cp.write(&format!("{name}.json"), &manifest.to_string())?;
    c.cp.kubectl(&["apply", "-f", &path])?;
    Ok(())
}

/// Sets the CronJob's `status.lastScheduleTime` five minutes back, as if
/// the controller had been down: the latest missed start time is due now.
async fn rewind(c: &Cluster, cronjob: &str) -> Result<()> {
    let cronjobs: Api<CronJob> = Api::namespaced(c.client.clone(), "default");
    let earlier = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(5);
    cronjobs
        .patch_status(
            cronjob,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastScheduleTime": earlier.to_string()}})),
        )
        .await?;
    Ok(())
}

/// The uids `status.active` lists.
async fn active_uids(c: &Cluster, cronjob: &str) -> Option<Vec<String>> {
    let cronjobs: Api<CronJob> = Api::namespaced(c.client.clone(), "default");
    let status = cronjobs.get(cronjob).await.ok()?.status?;
    Some(
        status
            .active
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.uid)
            .collect(),
    )
}

/// The CronJob's Jobs, by name.
async fn jobs_of(c: &Cluster, cronjob: &str) -> Result<BTreeSet<String>> {
    let lp = ListParams::default().labels(&format!("app={cronjob}"));
    Ok(c.jobs()
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect())
}

/// Completes every running pod of `job` and waits for it to complete.
async fn complete(c: &Cluster, job: &str) -> Result<()> {
    for p in c.running_pods(job, 1).await? {
        c.finish(&name_of(&p), 0).await?;
    }
    c.kubectl_wait(&format!("job/{job}"), "complete")?;
    Ok(())
}

#[tokio::test]
async fn a_cronjob_starts_missed_jobs_forbids_overlap_and_prunes_its_history() -> Result<()> {
    let c = cluster().await?;
    apply_cronjob(
        &c,
        "nightly",
        json!({"concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 1}),
    )?;
    let cronjobs: Api<CronJob> = Api::namespaced(c.client.clone(), "default");

    // The template path, by hand: kubectl makes a Job from the template.
    c.cp.kubectl(&["create", "job", "by-hand", "--from=cronjob/nightly"])?;
    complete(&c, "by-hand").await?;

    // As if the controller had been down for five minutes: the latest
    // missed start time runs now.
    rewind(&c, "nightly").await?;
    let scheduled = wait::until("a scheduled job", CONVERGE, || async {
        let names = jobs_of(&c, "nightly").await.ok()?;
        names.into_iter().find(|n| n != "by-hand")
    })
    .await?;
    let minutes: i64 = scheduled
        .strip_prefix("nightly-")
        .and_then(|m| m.parse().ok())
        .context("job name is <cronjob>-<minutes since epoch>")?;
    let job = c.job(&scheduled).await?;
    let stamp = job
        .metadata
        .annotations
        .unwrap_or_default()
        .get("batch.kubernetes.io/cronjob-scheduled-timestamp")
        .cloned()
        .unwrap_or_default();
    let stamp: jiff::Timestamp = stamp.parse()?;
    assert_eq!(stamp.as_second() / 60, minutes);
    let status = wait::until("the job listed as active", CONVERGE, || async {
        let s = cronjobs.get("nightly").await.ok()?.status?;
        (s.active.as_ref()?.len() == 1).then_some(s)
    })
    .await?;
    assert_eq!(
        status.last_schedule_time.map(|t| t.0.as_second() / 60),
        Some(minutes)
    );
    let out = c.cp.kubectl(&["get", "cronjob", "nightly"])?;
    let rows = printed_table(
        &out,
        &[
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
        ],
    );
    assert_eq!(
        rows[0][..5],
        ["nightly", "* * * * *", "<none>", "False", "1"]
    );

    // Forbid: with that job running, a missed start time does not start
    // another.
    rewind(&c, "nightly").await?;
    wait::until("JobAlreadyActive in kubectl describe", CONVERGE, || async {
        let out = c.cp.kubectl(&["describe", "cronjob", "nightly"]).ok()?;
        out.contains("JobAlreadyActive").then_some(())
    })
    .await?;
    assert_eq!(jobs_of(&c, "nightly").await?.len(), 2);

    // Once it succeeds, history keeps only the newest successful job (a
    // new minute may meanwhile have started another, still running).
    complete(&c, &scheduled).await?;
    wait::until("the older successful job pruned", CONVERGE, || async {
        let names = jobs_of(&c, "nightly").await.ok()?;
        (!names.contains("by-hand") && names.contains(&scheduled)).then_some(())
    })
    .await?;
    let status = cronjobs.get("nightly").await?.status.unwrap_or_default();
    let done = c
        .job(&scheduled)
        .await?
        .status
        .and_then(|s| s.completion_time);
    assert_eq!(status.last_successful_time, done);
    Ok(())
}

#[tokio::test]
async fn a_cronjob_every_minute_starts_a_job_within_the_minute_in_its_time_zone() -> Result<()> {
    let c = cluster().await?;
    apply_cronjob(&c, "minutely", json!({"timeZone": "Asia/Kolkata"}))?;
    let job = wait::until(
        "the first scheduled job",
        Duration::from_secs(75),
        || async { jobs_of(&c, "minutely").await.ok()?.into_iter().next() },
    )
    .await?;
    assert!(job.starts_with("minutely-"), "{job}");
    let stamp = c
        .job(&job)
        .await?
        .metadata
        .annotations
        .unwrap_or_default()
        .get("batch.kubernetes.io/cronjob-scheduled-timestamp")
        .cloned()
        .unwrap_or_default();
    assert!(stamp.ends_with(":00+05:30"), "{stamp}");
    c.running_pods(&job, 1).await?;
    let out = c.cp.kubectl(&["get", "cronjob", "minutely"])?;
    let rows = printed_table(
        &out,
        &[
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
        ],
    );
    assert_eq!(rows[0][2], "Asia/Kolkata");
    Ok(())
}

#[tokio::test]
async fn a_cronjob_with_concurrency_policy_replace_replaces_the_running_job() -> Result<()> {
    let c = cluster().await?;
    apply_cronjob(&c, "fresh", json!({"concurrencyPolicy": "Replace"}))?;
    rewind(&c, "fresh").await?;
    let first = wait::until("a first job listed as active", CONVERGE, || async {
        let uids = active_uids(&c, "fresh").await?;
        (uids.len() == 1).then(|| uids[0].clone())
    })
    .await?;
    rewind(&c, "fresh").await?;
    let second = wait::until("a second job replacing it", CONVERGE, || async {
        let uids = active_uids(&c, "fresh").await?;
        (uids.len() == 1 && uids[0] != first).then(|| uids[0].clone())
    })
    .await?;
    let uids: Vec<String> = c
        .jobs()
        .list(&ListParams::default().labels("app=fresh"))
        .await?
        .items
        .into_iter()
        .filter_map(|j| j.metadata.uid)
        .collect();
    assert_eq!(uids, vec![second], "the replaced job is gone");
    let described = c.cp.kubectl(&["describe", "cronjob", "fresh"])?;
    assert!(described.contains("SuccessfulDelete"), "{described}");
    Ok(())
}
