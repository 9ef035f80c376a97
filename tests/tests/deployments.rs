//! The Deployment controller against a real apiserver and etcd, driven by
//! the real kubectl (1.33, and 1.28 for pause/resume/scale/undo), with the
//! ReplicaSet controller making the pods and the test playing the kubelet
//! (marking pods Ready) where readiness matters: create and rollout
//! status, set image within maxSurge and maxUnavailable, history and undo
//! (also of a rollout stuck on a bad image), pause/resume/restart, the
//! progress deadline, Recreate, proportional scaling mid-rollout,
//! minReadySeconds, revisionHistoryLimit, adoption and release, a
//! controller-manager restarted mid-rollout, ReplicaFailure, a canary
//! beside a stable Deployment, and cascading deletion.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use capstan_tests::fixture::{ControlPlane, KUBECTL_1_28, Process};
use capstan_tests::wait;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// How long the controllers may take to converge in these small clusters.
const CONVERGE: Duration = Duration::from_secs(30);

struct Cluster {
    cp: ControlPlane,
    client: kube::Client,
    cm: Process,
}

async fn cluster() -> Result<Cluster> {
    cluster_with("--controllers=deployment,replicaset").await
}

/// A control plane with a controller-manager running `controllers`.
async fn cluster_with(controllers: &str) -> Result<Cluster> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let (cm, _) = cp.start_controller_manager(&["--leader-elect=false", controllers])?;
    Ok(Cluster { cp, client, cm })
}

/// A Deployment `web` (`app=web`, image `registry.example/app:1`) with
/// `spec` merged over the defaults.
fn manifest(replicas: i32, spec: serde_json::Value) -> serde_json::Value {
    let mut base = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
        },
    });
    if let (Some(b), Some(s)) = (base.as_object_mut(), spec.as_object()) {
        b.extend(s.clone());
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": base})
}

fn name_of(rs: &ReplicaSet) -> String {
    rs.metadata.name.clone().unwrap_or_default()
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn image_of(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn revision_of(rs: &ReplicaSet) -> Option<String> {
    rs.metadata
        .annotations
        .as_ref()?
        .get("deployment.kubernetes.io/revision")
        .cloned()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn owner_name(p: &Pod) -> Option<String> {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.name.clone())
}

impl Cluster {
    fn rs_api(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn create(&self, manifest: &serde_json::Value) -> Result<()> {
        let path = self.cp.write("deploy.json", &manifest.to_string())?;
        self.cp.kubectl(&["create", "-f", &path])?;
        Ok(())
    }

    /// The ReplicaSets in `default`, by name.
    async fn replicasets(&self) -> Result<Vec<ReplicaSet>> {
        let mut list = self.rs_api().list(&ListParams::default()).await?.items;
        list.sort_by_key(name_of);
        Ok(list)
    }

    /// Active (not terminating) pods in `default`.
    async fn active_pods(&self) -> Result<Vec<Pod>> {
        let list = self.pods().list(&ListParams::default()).await?.items;
        Ok(list
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect())
    }

    /// Plays the kubelet for every pod of ReplicaSet `rs` not yet Ready.
    async fn make_ready(&self, rs: &str) -> Result<usize> {
        let now = jiff::Timestamp::now().to_string();
        let mut n = 0;
        for p in self.active_pods().await? {
            if owner_name(&p).as_deref() != Some(rs) || is_ready(&p) {
                continue;
            }
            let name = p.metadata.name.clone().unwrap_or_default();
            self.pods()
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {
                        "phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                    }})),
                )
                .await?;
            n += 1;
        }
        Ok(n)
    }

    /// Waits for the ReplicaSet running `image` to exist; returns it.
    async fn rs_with_image(&self, image: &str) -> Result<ReplicaSet> {
        wait::until(
            &format!("a ReplicaSet running {image}"),
            CONVERGE,
            || async {
                let rss = self.replicasets().await.ok()?;
                rss.into_iter().find(|rs| image_of(rs) == image)
            },
        )
        .await
        .with_context(|| self.cm.log_tail())
    }

    /// Keeps marking pods of `rs` Ready until the Deployment reports
    /// `replicas` updated and available with no old pods left.
    async fn roll_to_completion(&self, rs: &str, replicas: i32) -> Result<Deployment> {
        wait::until(
            &format!("the rollout to {rs} to finish"),
            CONVERGE,
            || async {
                self.make_ready(rs).await.ok()?;
                let d = self.deployments().get("web").await.ok()?;
                let s = d.status.clone()?;
                let done = s.observed_generation >= d.metadata.generation
                    && s.replicas == Some(replicas)
                    && s.updated_replicas == Some(replicas)
                    && s.available_replicas == Some(replicas);
                done.then_some(d)
            },
        )
        .await
        .with_context(|| self.cm.log_tail())
    }

    /// The Deployment's condition of `type_` as (status, reason, message).
    async fn condition(&self, type_: &str) -> Result<Option<(String, String, String)>> {
        let d = self.deployments().get("web").await?;
        Ok(d.status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .map(|c| {
                (
                    c.status,
                    c.reason.unwrap_or_default(),
                    c.message.unwrap_or_default(),
                )
            }))
    }
}

#[tokio::test]
async fn kubectl_create_deployment_rolls_out_and_rollout_status_succeeds() -> Result<()> {
    let c = cluster().await?;
    c.cp.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=registry.example/app:1",
        "--replicas=3",
    ])?;
    let rs = c.rs_with_image("registry.example/app:1").await?;
    let name = name_of(&rs);
    let hash = rs
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .cloned()
        .context("no pod-template-hash label")?;
    assert_eq!(name, format!("web-{hash}"));
    let spec = rs.spec.clone().context("no spec")?;
    assert_eq!(
        spec.selector
            .match_labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash")),
        Some(&hash)
    );
    let d = c.deployments().get("web").await?;
    let owner = rs
        .metadata
        .owner_references
        .iter()
        .flatten()
        .next()
        .context("no ownerReference")?;
    assert_eq!(
        (
            owner.kind.as_str(),
            &owner.uid,
            owner.controller,
            owner.block_owner_deletion
        ),
        (
            "Deployment",
            &d.metadata.uid.clone().unwrap_or_default(),
            Some(true),
            Some(true)
        )
    );
    assert_eq!(revision_of(&rs).as_deref(), Some("1"));
    let pods = wait::until("3 pods carrying the hash", CONVERGE, || async {
        let pods = c.active_pods().await.ok()?;
        (pods.len() == 3).then_some(pods)
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    for p in &pods {
        assert_eq!(
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash")),
            Some(&hash)
        );
    }

    let d = c.roll_to_completion(&name, 3).await?;
    let status = d.status.clone().context("no status")?;
    assert_eq!(status.ready_replicas, Some(3));
    assert_eq!(status.unavailable_replicas.unwrap_or(0), 0);
    let out =
        c.cp.kubectl(&["rollout", "status", "deployment/web", "--timeout=20s"])?;
    assert!(out.contains("successfully rolled out"), "{out}");
    let table = c.cp.kubectl(&["get", "deploy", "web"])?;
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], &["web", "3/3", "3", "3"], "{table}");
    assert_eq!(
        c.condition("Available").await?,
        Some((
            "True".into(),
            "MinimumReplicasAvailable".into(),
            "Deployment has minimum availability.".into()
        ))
    );
    assert_eq!(
        c.condition("Progressing").await?,
        Some((
            "True".into(),
            "NewReplicaSetAvailable".into(),
            format!("ReplicaSet \"{name}\" has successfully progressed.")
        ))
    );
    let described = wait::until("the ScalingReplicaSet event", CONVERGE, || async {
        let out = c.cp.kubectl(&["describe", "deploy", "web"]).ok()?;
        out.contains("ScalingReplicaSet").then_some(out)
    })
    .await?;
    assert!(
        described.contains(&format!("Scaled up replica set {name} to 3")),
        "{described}"
    );
    assert!(described.contains("deployment-controller"), "{described}");
    Ok(())
}

#[tokio::test]
async fn set_image_rolls_within_surge_and_unavailable_and_undo_reuses_the_old_replica_set()
-> Result<()> {
    let c = cluster().await?;
    let strategy = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}});
    c.create(&manifest(4, strategy))?;
    let first = name_of(&c.rs_with_image("registry.example/app:1").await?);
    c.roll_to_completion(&first, 4).await?;

    c.cp.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "app=registry.example/app:2",
    ])?;
    let second = name_of(&c.rs_with_image("registry.example/app:2").await?);
    assert_ne!(first, second);
    // Play the kubelet one new pod at a time and check the bounds at
    // every step: never more than 4+1 pods wanted, never fewer than 4-1
    // ready.
    let outcome = wait::until("the rollout to app:2 to finish", CONVERGE, || async {
        let rss = match c.replicasets().await {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let wanted: i32 = rss.iter().map(spec_replicas).sum();
        let pods = c.active_pods().await.ok()?;
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        let sizes: Vec<(String, i32)> = rss.iter().map(|r| (name_of(r), spec_replicas(r))).collect();
        if wanted > 5 || ready < 3 {
            return Some(Err(anyhow::anyhow!(
                "bounds broken: {wanted} wanted, {ready} ready: {sizes:?}"
            )));
        }
        let old = sizes.iter().find(|(n, _)| *n == first).map(|s| s.1);
        let new = sizes.iter().find(|(n, _)| *n == second).map(|s| s.1);
        // Mark one not-ready new pod Ready per step.
        if let Some(p) = pods
            .iter()
            .find(|p| owner_name(p).as_deref() == Some(&second) && !is_ready(p))
        {
            let now = jiff::Timestamp::now().to_string();
            let name = p.metadata.name.clone().unwrap_or_default();
            let _ = c
                .pods()
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}})),
                )
                .await;
        }
        (old == Some(0) && new == Some(4) && ready == 4).then_some(Ok(()))
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    outcome.with_context(|| c.cm.log_tail())?;
    c.roll_to_completion(&second, 4).await?;
    let out =
        c.cp.kubectl(&["rollout", "status", "deployment/web", "--timeout=20s"])?;
    assert!(out.contains("successfully rolled out"), "{out}");
    let old = c.rs_api().get(&first).await?;
    assert_eq!(
        spec_replicas(&old),
        0,
        "the old ReplicaSet is kept, scaled to 0"
    );
    // Every step shows as its own Event, as upstream's do.
    let described = wait::until("the rollout's scaling events", CONVERGE, || async {
        let out = c.cp.kubectl(&["describe", "deploy", "web"]).ok()?;
        let down = format!("Scaled down replica set {first} from ");
        let up = format!("Scaled up replica set {second} from ");
        (out.contains(&down) && out.contains(&up) && out.contains(" to 0")).then_some(out)
    })
    .await?;
    assert!(described.contains("ScalingReplicaSet"), "{described}");

    let history = c.cp.kubectl(&["rollout", "history", "deployment/web"])?;
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    let out = c.cp.kubectl(&["rollout", "undo", "deployment/web"])?;
    assert!(out.contains("rolled back"), "{out}");
    let back = wait::until(
        "the first ReplicaSet to become revision 3",
        CONVERGE,
        || async {
            let rs = c.rs_api().get(&first).await.ok()?;
            (revision_of(&rs).as_deref() == Some("3")).then_some(rs)
        },
    )
    .await
    .with_context(|| c.cm.log_tail())?;
    assert_eq!(image_of(&back), "registry.example/app:1");
    c.roll_to_completion(&first, 4).await?;
    let rss = c.replicasets().await?;
    assert_eq!(rss.len(), 2, "undo reused the old ReplicaSet: {rss:?}");
    let d = c.deployments().get("web").await?;
    assert_eq!(
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .map(String::as_str),
        Some("3")
    );
    let history = c.cp.kubectl(&["rollout", "history", "deployment/web"])?;
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    Ok(())
}

#[tokio::test]
async fn pause_holds_a_template_change_until_resume_and_restart_makes_a_revision() -> Result<()> {
    let c = cluster().await?;
    c.create(&manifest(2, json!({})))?;
    let first = name_of(&c.rs_with_image("registry.example/app:1").await?);
    c.roll_to_completion(&first, 2).await?;

    c.cp.kubectl_ok(KUBECTL_1_28, &["rollout", "pause", "deployment/web"])?;
    c.cp.kubectl_ok(
        KUBECTL_1_28,
        &[
            "set",
            "image",
            "deployment/web",
            "app=registry.example/app:2",
        ],
    )?;
    wait::until("the paused change to be observed", CONVERGE, || async {
        let d = c.deployments().get("web").await.ok()?;
        (d.status?.observed_generation >= d.metadata.generation).then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    assert_eq!(
        c.condition("Progressing").await?.map(|c| (c.0, c.1)),
        Some(("Unknown".into(), "DeploymentPaused".into()))
    );
    assert_eq!(c.replicasets().await?.len(), 1, "no rollout while paused");
    // Scaling still works while paused.
    c.cp.kubectl_ok(KUBECTL_1_28, &["scale", "deployment/web", "--replicas=3"])?;
    wait::until("the paused Deployment to scale", CONVERGE, || async {
        let rs = c.rs_api().get(&first).await.ok()?;
        (spec_replicas(&rs) == 3).then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;

    c.cp.kubectl_ok(KUBECTL_1_28, &["rollout", "resume", "deployment/web"])?;
    let second = name_of(&c.rs_with_image("registry.example/app:2").await?);
    c.roll_to_completion(&second, 3).await?;
    let out = c.cp.kubectl_ok(
        KUBECTL_1_28,
        &["rollout", "status", "deployment/web", "--timeout=20s"],
    )?;
    assert!(out.contains("successfully rolled out"), "{out}");

    c.cp.kubectl(&["rollout", "restart", "deployment/web"])?;
    let third = wait::until("a ReplicaSet for the restart", CONVERGE, || async {
        let rss = c.replicasets().await.ok()?;
        rss.into_iter()
            .find(|rs| revision_of(rs).as_deref() == Some("3"))
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    let third = name_of(&third);
    assert!(
        third != first && third != second,
        "restart made a new ReplicaSet"
    );
    c.roll_to_completion(&third, 3).await?;
    Ok(())
}

#[tokio::test]
async fn a_rollout_that_never_gets_ready_exceeds_its_progress_deadline() -> Result<()> {
    let c = cluster().await?;
    c.create(&manifest(2, json!({"progressDeadlineSeconds": 2})))?;
    let rs = name_of(&c.rs_with_image("registry.example/app:1").await?);
    let cond = wait::until("ProgressDeadlineExceeded", CONVERGE, || async {
        let cond = c.condition("Progressing").await.ok()??;
        (cond.1 == "ProgressDeadlineExceeded").then_some(cond)
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    assert_eq!(cond.0, "False");
    assert_eq!(
        cond.2,
        format!("ReplicaSet \"{rs}\" has timed out progressing.")
    );
    let err =
        c.cp.kubectl_err(&["rollout", "status", "deployment/web", "--timeout=10s"])?;
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    assert_eq!(
        c.condition("Available").await?.map(|c| (c.0, c.1)),
        Some(("False".into(), "MinimumReplicasUnavailable".into()))
    );
    // Pods becoming ready afterwards complete the rollout.
    c.roll_to_completion(&rs, 2).await?;
    wait::until("NewReplicaSetAvailable", CONVERGE, || async {
        let cond = c.condition("Progressing").await.ok()??;
        (cond.1 == "NewReplicaSetAvailable").then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    Ok(())
}

#[tokio::test]
async fn recreate_never_runs_old_and_new_pods_together() -> Result<()> {
    let c = cluster().await?;
    c.create(&manifest(3, json!({"strategy": {"type": "Recreate"}})))?;
    let first = name_of(&c.rs_with_image("registry.example/app:1").await?);
    c.roll_to_completion(&first, 3).await?;
    c.cp.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "app=registry.example/app:2",
    ])?;
    let outcome = wait::until("the Recreate rollout", CONVERGE, || async {
        let pods = c.active_pods().await.ok()?;
        let owners: BTreeSet<String> = pods.iter().filter_map(owner_name).collect();
        if owners.len() > 1 {
            return Some(Err(anyhow::anyhow!(
                "old and new pods together: {owners:?}"
            )));
        }
        let rss = c.replicasets().await.ok()?;
        let new = rss
            .iter()
            .find(|rs| image_of(rs) == "registry.example/app:2")?;
        let done = pods.len() == 3 && owners.contains(&name_of(new));
        done.then(|| Ok(name_of(new)))
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    let second = outcome?;
    c.roll_to_completion(&second, 3).await?;
    let old = c.rs_api().get(&first).await?;
    assert_eq!(spec_replicas(&old), 0);
    Ok(())
}

#[tokio::test]
async fn kubectl_scale_mid_rollout_scales_old_and_new_proportionally() -> Result<()> {
    let c = cluster().await?;
    let strategy = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}});
    c.create(&manifest(10, strategy))?;
    let first = name_of(&c.rs_with_image("registry.example/app:1").await?);
    c.roll_to_completion(&first, 10).await?;
    // The new template never becomes ready: the rollout stalls at
    // 8 old + 5 new (10 + 3 surge, 10 - 2 available).
    c.cp.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "app=registry.example/app:bad",
    ])?;
    let second = name_of(&c.rs_with_image("registry.example/app:bad").await?);
    let sizes = |want: (i32, i32)| {
        let (first, second) = (first.clone(), second.clone());
        let c = &c;
        async move {
            wait::until(&format!("old/new at {want:?}"), CONVERGE, || async {
                let old = spec_replicas(&c.rs_api().get(&first).await.ok()?);
                let new = spec_replicas(&c.rs_api().get(&second).await.ok()?);
                ((old, new) == want).then_some(())
            })
            .await
            .with_context(|| c.cm.log_tail())
        }
    };
    sizes((8, 5)).await?;
    let out =
        c.cp.kubectl(&["scale", "deployment/web", "--replicas=20"])?;
    assert!(out.contains("scaled"), "{out}");
    // 23 allowed (20 + 3 surge), shared 8:5 → 14 old, 9 new.
    sizes((14, 9)).await?;
    let d = c.deployments().get("web").await?;
    if d.spec.and_then(|s| s.replicas) != Some(20) {
        bail!("the Deployment was not scaled");
    }
    Ok(())
}

#[tokio::test]
async fn a_controller_manager_restarted_mid_rollout_finishes_it() -> Result<()> {
    let mut c = cluster().await?;
    let strategy = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}});
    c.create(&manifest(3, strategy))?;
    let first = name_of(&c.rs_with_image("registry.example/app:1").await?);
    c.roll_to_completion(&first, 3).await?;
    c.cp.kubectl(&[
        "set",
        "image",
        "deployment/web",
        "app=registry.example/app:2",
    ])?;
    let second = name_of(&c.rs_with_image("registry.example/app:2").await?);
    // One new pod ready, then the controller-manager goes away mid-rollout.
    wait::until("one new pod ready", CONVERGE, || async {
        (c.make_ready(&second).await.ok()? > 0).then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    c.cm.stop();
    let (cm, _) = c.cp.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers=deployment,replicaset",
    ])?;
    c.cm = cm;
    c.roll_to_completion(&second, 3).await?;
    let rss = c.replicasets().await?;
    let sizes: Vec<(String, i32)> = rss.iter().map(|r| (name_of(r), spec_replicas(r))).collect();
    let mut want = vec![(first, 0), (second, 3)];
    want.sort();
    assert_eq!(sizes, want, "no third ReplicaSet, the old one scaled to 0");
    let out =
        c.cp.kubectl(&["rollout", "status", "deployment/web", "--timeout=20s"])?;
    assert!(out.contains("successfully rolled out"), "{out}");
    Ok(())
}

#[tokio::test]
async fn old_replica_sets_beyond_the_revision_history_limit_are_deleted() -> Result<()> {
    let c = cluster().await?;
    c.create(&manifest(1, json!({"revisionHistoryLimit": 1})))?;
    let mut names = vec![name_of(&c.rs_with_image("registry.example/app:1").await?)];
    c.roll_to_completion(&names[0], 1).await?;
    for tag in ["2", "3"] {
        let image = format!("registry.example/app:{tag}");
        c.cp.kubectl(&["set", "image", "deployment/web", &format!("app={image}")])?;
        let rs = name_of(&c.rs_with_image(&image).await?);
        c.roll_to_completion(&rs, 1).await?;
        names.push(rs);
    }
    // Revision 1 goes; revision 2 stays as the one kept for undo.
    let left = wait::until("the oldest ReplicaSet to be deleted", CONVERGE, || async {
        let rss = c.replicasets().await.ok()?;
        let left: Vec<String> = rss.iter().map(name_of).collect();
        (left.len() == 2).then_some(left)
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    let mut want = vec![names[1].clone(), names[2].clone()];
    want.sort();
    assert_eq!(left, want);
    let history = c.cp.kubectl(&["rollout", "history", "deployment/web"])?;
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    // Undo to an explicit revision still works from what is kept.
    c.cp.kubectl(&["rollout", "undo", "deployment/web", "--to-revision=2"])?;
    let back = wait::until(
        "revision 2's ReplicaSet to become revision 4",
        CONVERGE,
        || async {
            let rs = c.rs_api().get(&names[1]).await.ok()?;
            (revision_of(&rs).as_deref() == Some("4")).then_some(rs)
        },
    )
    .await
    .with_context(|| c.cm.log_tail())?;
    assert_eq!(image_of(&back), "registry.example/app:2");
    Ok(())
}

#[tokio::test]
async fn rollout_undo_recovers_a_rollout_stuck_on_a_bad_image() -> Result<()> {
    let c = cluster().await?;
    let spec = json!({
        "progressDeadlineSeconds": 2,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    });
    c.create(&manifest(3, spec))?;
    let good = name_of(&c.rs_with_image("registry.example/app:1").await?);
    c.roll_to_completion(&good, 3).await?;
    c.cp.kubectl_ok(
        KUBECTL_1_28,
        &[
            "set",
            "image",
            "deployment/web",
            "app=registry.example/app:missing",
        ],
    )?;
    let bad = name_of(&c.rs_with_image("registry.example/app:missing").await?);
    // Its pods never become ready: the rollout stalls and times out,
    // with every old pod still serving.
    wait::until("ProgressDeadlineExceeded", CONVERGE, || async {
        let cond = c.condition("Progressing").await.ok()??;
        (cond.1 == "ProgressDeadlineExceeded").then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    assert_eq!(spec_replicas(&c.rs_api().get(&good).await?), 3);
    assert_eq!(spec_replicas(&c.rs_api().get(&bad).await?), 1);
    let err =
        c.cp.kubectl_err(&["rollout", "status", "deployment/web", "--timeout=10s"])?;
    assert!(err.contains("exceeded its progress deadline"), "{err}");

    let out =
        c.cp.kubectl_ok(KUBECTL_1_28, &["rollout", "undo", "deployment/web"])?;
    assert!(out.contains("rolled back"), "{out}");
    wait::until("the bad ReplicaSet scaled to 0", CONVERGE, || async {
        let rs = c.rs_api().get(&bad).await.ok()?;
        (spec_replicas(&rs) == 0).then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    c.roll_to_completion(&good, 3).await?;
    let out = c.cp.kubectl_ok(
        KUBECTL_1_28,
        &["rollout", "status", "deployment/web", "--timeout=20s"],
    )?;
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(
        c.condition("Progressing").await?.map(|c| c.1),
        Some("NewReplicaSetAvailable".into())
    );
    assert_eq!(
        c.replicasets().await?.len(),
        2,
        "undo made no new ReplicaSet"
    );
    Ok(())
}

#[tokio::test]
async fn an_orphan_replica_set_is_adopted_and_a_relabelled_one_released() -> Result<()> {
    let c = cluster().await?;
    let legacy = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "legacy", "labels": {"app": "web"}},
        "spec": manifest(2, json!({}))["spec"].clone(),
    });
    let path = c.cp.write("legacy.json", &legacy.to_string())?;
    c.cp.kubectl(&["create", "-f", &path])?;
    let pods = wait::until("the orphan's 2 pods", CONVERGE, || async {
        let pods = c.active_pods().await.ok()?;
        (pods.len() == 2).then_some(pods)
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    let before: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();

    // Same template: the Deployment adopts it as its new ReplicaSet and
    // keeps its pods.
    c.create(&manifest(2, json!({})))?;
    let adopted = wait::until("the orphan to be adopted", CONVERGE, || async {
        let rs = c.rs_api().get("legacy").await.ok()?;
        let owner = rs.metadata.owner_references.as_ref()?.first()?.clone();
        let revision = revision_of(&rs);
        (owner.kind == "Deployment" && owner.controller == Some(true) && revision.is_some())
            .then_some(rs)
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    assert_eq!(revision_of(&adopted).as_deref(), Some("1"));
    c.roll_to_completion("legacy", 2).await?;
    assert_eq!(c.replicasets().await?.len(), 1, "no second ReplicaSet");
    let after: BTreeSet<String> = c
        .active_pods()
        .await?
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(before, after, "the same pods serve");

    // Relabelled out of the selector, it is released and replaced.
    c.cp.kubectl(&["label", "rs", "legacy", "app=other", "--overwrite"])?;
    wait::until(
        "the relabelled ReplicaSet to be released",
        CONVERGE,
        || async {
            let rs = c.rs_api().get("legacy").await.ok()?;
            rs.metadata
                .owner_references
                .is_none_or(|r| r.is_empty())
                .then_some(())
        },
    )
    .await
    .with_context(|| c.cm.log_tail())?;
    let replacement = wait::until("a replacement ReplicaSet", CONVERGE, || async {
        let rss = c.replicasets().await.ok()?;
        rss.into_iter().find(|rs| name_of(rs).starts_with("web-"))
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    c.roll_to_completion(&name_of(&replacement), 2).await?;
    Ok(())
}

#[tokio::test]
async fn pods_the_apiserver_refuses_show_as_replica_failure_on_the_deployment() -> Result<()> {
    let c = cluster().await?;
    // Pods of this template are refused until their PriorityClass exists.
    let template = json!({"template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "priorityClassName": "urgent",
            "containers": [{"name": "app", "image": "registry.example/app:1"}],
        },
    }});
    c.create(&manifest(2, template))?;
    let cond = wait::until("ReplicaFailure on the Deployment", CONVERGE, || async {
        c.condition("ReplicaFailure").await.ok()?
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    assert_eq!((cond.0.as_str(), cond.1.as_str()), ("True", "FailedCreate"));
    assert!(
        cond.2
            .contains("no PriorityClass with name urgent was found"),
        "{cond:?}"
    );
    let described = c.cp.kubectl(&["describe", "deploy", "web"])?;
    assert!(described.contains("ReplicaFailure"), "{described}");

    c.cp.kubectl(&["create", "priorityclass", "urgent", "--value=1000"])?;
    let rs = name_of(&c.rs_with_image("registry.example/app:1").await?);
    c.roll_to_completion(&rs, 2).await?;
    wait::until("ReplicaFailure to clear", CONVERGE, || async {
        c.condition("ReplicaFailure")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    Ok(())
}

#[tokio::test]
async fn a_canary_and_a_stable_deployment_sharing_labels_keep_their_own_pods() -> Result<()> {
    let c = cluster().await?;
    for (track, replicas, tag) in [("stable", 3, "1"), ("canary", 1, "2")] {
        let d = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": format!("web-{track}")},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web", "track": track}},
                "template": {
                    "metadata": {"labels": {"app": "web", "track": track}},
                    "spec": {"containers": [{"name": "app", "image": format!("registry.example/app:{tag}")}]},
                },
            },
        });
        let path = c.cp.write(&format!("{track}.json"), &d.to_string())?;
        c.cp.kubectl(&["create", "-f", &path])?;
    }
    // What a Service selecting app=web would see: 3 stable and 1 canary.
    let owners = wait::until("4 pods labelled app=web", CONVERGE, || async {
        let out =
            c.cp.kubectl(&["get", "pods", "-l", "app=web", "-o", "name"])
                .ok()?;
        if out.lines().count() != 4 {
            return None;
        }
        let pods = c.active_pods().await.ok()?;
        Some(pods.iter().filter_map(owner_name).collect::<Vec<_>>())
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    let stable = owners
        .iter()
        .filter(|o| o.starts_with("web-stable-"))
        .count();
    let canary = owners
        .iter()
        .filter(|o| o.starts_with("web-canary-"))
        .count();
    assert_eq!((stable, canary), (3, 1), "{owners:?}");
    let rss = c.replicasets().await?;
    assert_eq!(rss.len(), 2, "one ReplicaSet each");
    for rs in &rss {
        let owner = rs
            .metadata
            .owner_references
            .as_ref()
            .and_then(|r| r.first())
            .map(|r| r.name.clone());
        assert!(
            owner.is_some_and(|o| name_of(rs).starts_with(&format!("{o}-"))),
            "{} is owned by its own Deployment",
            name_of(rs)
        );
    }
    Ok(())
}

#[tokio::test]
async fn min_ready_seconds_delays_availability_and_the_rollout() -> Result<()> {
    let c = cluster().await?;
    c.create(&manifest(2, json!({"minReadySeconds": 5})))?;
    let rs = c.rs_with_image("registry.example/app:1").await?;
    assert_eq!(
        rs.spec.as_ref().and_then(|s| s.min_ready_seconds),
        Some(5),
        "the ReplicaSet judges availability the same way"
    );
    let name = name_of(&rs);
    let d = wait::until("2 ready replicas", CONVERGE, || async {
        c.make_ready(&name).await.ok()?;
        let d = c.deployments().get("web").await.ok()?;
        (d.status.as_ref()?.ready_replicas == Some(2)).then_some(d)
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    let status = d.status.context("no status")?;
    assert!(
        status.available_replicas.unwrap_or(0) < 2,
        "not available before minReadySeconds: {status:?}"
    );
    c.roll_to_completion(&name, 2).await?;
    let table = c.cp.kubectl(&["get", "deploy", "web"])?;
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], &["web", "2/2", "2", "2"], "{table}");
    Ok(())
}

#[tokio::test]
async fn delete_cascade_orphan_keeps_the_replica_set_for_the_next_deployment() -> Result<()> {
    let c = cluster_with("--controllers=deployment,replicaset,garbagecollector").await?;
    c.create(&manifest(2, json!({})))?;
    let rs = name_of(&c.rs_with_image("registry.example/app:1").await?);
    c.roll_to_completion(&rs, 2).await?;
    let pods: BTreeSet<String> = c
        .active_pods()
        .await?
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();

    // Orphaned: the Deployment goes, its ReplicaSet and pods stay.
    c.cp.kubectl(&["delete", "deployment", "web", "--cascade=orphan"])?;
    wait::until("the ReplicaSet to be orphaned", CONVERGE, || async {
        let got = c.rs_api().get(&rs).await.ok()?;
        let gone = c.deployments().get_opt("web").await.ok()?.is_none();
        (gone && got.metadata.owner_references.is_none_or(|r| r.is_empty())).then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;

    // The same Deployment again adopts it: no new ReplicaSet, same pods.
    c.create(&manifest(2, json!({})))?;
    wait::until("the ReplicaSet to be adopted", CONVERGE, || async {
        let got = c.rs_api().get(&rs).await.ok()?;
        let adopted = got
            .metadata
            .owner_references?
            .iter()
            .any(|r| r.kind == "Deployment");
        adopted.then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    c.roll_to_completion(&rs, 2).await?;
    assert_eq!(c.replicasets().await?.len(), 1);
    let after: BTreeSet<String> = c
        .active_pods()
        .await?
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(pods, after, "the same pods serve");

    // Deleted for real, everything it owns goes with it.
    c.cp.kubectl(&["delete", "deployment", "web"])?;
    wait::until(
        "the ReplicaSet and pods to be collected",
        CONVERGE,
        || async {
            let rss = c.replicasets().await.ok()?;
            let pods = c.active_pods().await.ok()?;
            (rss.is_empty() && pods.is_empty()).then_some(())
        },
    )
    .await
    .with_context(|| c.cm.log_tail())?;
    Ok(())
}
