//! The StatefulSet controller against a real apiserver and etcd, driven
//! by the `kube` crate and the real kubectl (1.33), with no kubelet: the
//! test plays the kubelet by marking pods Running and Ready. Ordered
//! creation with claims, `kubectl get`, scale down from the highest
//! ordinal, a partitioned rolling update from the top down, `kubectl
//! rollout status|history|undo`, and deleted or failed pods coming back
//! under their names.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use capstan_tests::fixture::{ControlPlane, Process};
use capstan_tests::table::printed_table;
use capstan_tests::wait;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;

/// How long the controller may take to converge in these small clusters.
const CONVERGE: Duration = Duration::from_secs(30);

struct Cluster {
    cp: ControlPlane,
    client: kube::Client,
    cm: Process,
}

async fn cluster() -> Result<Cluster> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let (cm, _) =
        cp.start_controller_manager(&["--leader-elect=false", "--controllers=statefulset"])?;
    Ok(Cluster { cp, client, cm })
}

/// A StatefulSet `web` (service `nginx`, `app=web`, image
/// `registry.example/app:1`, a `data` claim template) with `spec` merged
/// over the defaults.
fn manifest(replicas: i32, spec: serde_json::Value) -> serde_json::Value {
    let mut base = json!({
        "replicas": replicas,
        "serviceName": "nginx",
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1",
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]},
        },
        "volumeClaimTemplates": [{
            "metadata": {"name": "data", "labels": {"tier": "db"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }],
    });
    if let (Some(b), Some(s)) = (base.as_object_mut(), spec.as_object()) {
        b.extend(s.clone());
    }
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"}, "spec": base})
}

fn name_of(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

fn label<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn revision_of(p: &Pod) -> String {
    label(p, "controller-revision-hash")
        .unwrap_or_default()
        .to_string()
}

fn image_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Records the names of pods deleted, in order, from the moment it is
/// created.
struct Deletions(Arc<Mutex<Vec<String>>>);

impl Deletions {
    fn names(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Cluster {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn sets(&self) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn create(&self, manifest: &serde_json::Value) -> Result<()> {
        let path = self.cp.write("sts.json", &manifest.to_string())?;
        self.cp.kubectl(&["create", "-f", &path])?;
        Ok(())
    }

    /// The pod `name`, if it exists and is not terminating.
    async fn pod(&self, name: &str) -> Option<Pod> {
        let p = self.pods().get_opt(name).await.ok()??;
        p.metadata.deletion_timestamp.is_none().then_some(p)
    }

    /// Active pods, by name.
    async fn active_pods(&self) -> Result<Vec<Pod>> {
        let mut list: Vec<Pod> = self
            .pods()
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        list.sort_by_key(name_of);
        Ok(list)
    }

    /// Plays the kubelet: marks `name` Running and Ready.
    async fn make_ready(&self, name: &str) -> Result<()> {
        let now = jiff::Timestamp::now().to_string();
        self.set_status(
            name,
            json!({
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
            }),
        )
        .await
    }

    async fn set_status(&self, name: &str, status: serde_json::Value) -> Result<()> {
        self.pods()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
        Ok(())
    }

    /// Waits for the pod `name` to exist (not terminating); returns it.
    async fn wait_pod(&self, name: &str) -> Result<Pod> {
        wait::until(&format!("pod {name}"), CONVERGE, || self.pod(name))
            .await
            .with_context(|| self.cm.log_tail())
    }

    /// Keeps marking every active pod Ready until `done` holds for the set.
    async fn converge(
        &self,
        what: &str,
        done: impl Fn(&StatefulSet) -> bool,
    ) -> Result<StatefulSet> {
        wait::until(what, CONVERGE, || async {
            for p in self.active_pods().await.ok()? {
                if !is_ready(&p) {
                    self.make_ready(&name_of(&p)).await.ok()?;
                }
            }
            let s = self.sets().get("web").await.ok()?;
            done(&s).then_some(s)
        })
        .await
        .with_context(|| self.cm.log_tail())
    }

    /// Makes pods Ready until the set reports `n` ready replicas, all at
    /// the update revision, with the update revision current.
    async fn roll_out(&self, n: i32) -> Result<StatefulSet> {
        self.converge(&format!("{n} ready pods at the update revision"), |s| {
            let Some(st) = s.status.as_ref() else {
                return false;
            };
            st.observed_generation >= s.metadata.generation
                && st.replicas == n
                && st.ready_replicas == Some(n)
                && st.updated_replicas == Some(n)
                && st.current_revision.is_some()
                && st.current_revision == st.update_revision
        })
        .await
    }

    /// Starts recording pod deletions.
    async fn record_deletions(&self) -> Result<Deletions> {
        let rv = self
            .pods()
            .list(&ListParams::default())
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        let mut stream = self
            .pods()
            .watch(&WatchParams::default(), &rv)
            .await?
            .boxed();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                if let WatchEvent::Deleted(p) = event
                    && let Ok(mut v) = out.lock()
                {
                    v.push(name_of(&p));
                }
            }
        });
        Ok(Deletions(seen))
    }
}

#[tokio::test]
async fn pods_are_created_in_order_with_their_claims_each_after_its_predecessor_is_ready()
-> Result<()> {
    let c = cluster().await?;
    c.create(&manifest(3, json!({})))?;
    let web0 = c.wait_pod("web-0").await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let claim = claims.get("data-web-0").await.context("claim data-web-0")?;
    let claim_labels = claim.metadata.labels.clone().unwrap_or_default();
    assert_eq!(claim_labels.get("tier").map(String::as_str), Some("db"));
    assert_eq!(claim_labels.get("app").map(String::as_str), Some("web"));
    let spec = web0.spec.clone().context("no pod spec")?;
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "data")
        .context("no data volume")?;
    assert_eq!(
        volume
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some("data-web-0")
    );
    assert_eq!(
        label(&web0, "statefulset.kubernetes.io/pod-name"),
        Some("web-0")
    );
    assert_eq!(label(&web0, "apps.kubernetes.io/pod-index"), Some("0"));
    let owner = web0
        .metadata
        .owner_references
        .iter()
        .flatten()
        .next()
        .context("no owner")?;
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("StatefulSet", "web", Some(true))
    );
    // The pod's revision label names the set's update revision.
    let set = wait::until("the update revision in status", CONVERGE, || async {
        let s = c.sets().get("web").await.ok()?;
        s.status.as_ref()?.update_revision.is_some().then_some(s)
    })
    .await?;
    let update = set
        .status
        .and_then(|s| s.update_revision)
        .unwrap_or_default();
    assert_eq!(revision_of(&web0), update);

    // web-1 never exists while web-0 is not Ready.
    assert!(
        c.pod("web-1").await.is_none(),
        "web-1 was created before web-0 was Ready"
    );
    c.make_ready("web-0").await?;
    c.wait_pod("web-1").await?;
    assert!(
        c.pod("web-2").await.is_none(),
        "web-2 was created before web-1 was Ready"
    );
    c.make_ready("web-1").await?;
    c.wait_pod("web-2").await?;
    c.roll_out(3).await?;
    for i in 0..3 {
        claims
            .get(&format!("data-web-{i}"))
            .await
            .with_context(|| format!("claim data-web-{i}"))?;
    }

    let out = c.cp.kubectl(&["get", "statefulset", "web"])?;
    let rows = printed_table(&out, &["NAME", "READY", "AGE"]);
    assert_eq!(rows[0][..2], ["web".to_string(), "3/3".to_string()]);

    // Upstream's event wording.
    let events = wait::until("SuccessfulCreate events", CONVERGE, || async {
        let out = c.cp.kubectl(&["get", "events", "-o", "json"]).ok()?;
        // One event per pod and claim, not one folded series.
        let wanted = [
            "create Pod web-0 in StatefulSet web successful",
            "create Pod web-1 in StatefulSet web successful",
            "create Pod web-2 in StatefulSet web successful",
            "create Claim data-web-0 Pod web-0 in StatefulSet web success",
            "create Claim data-web-2 Pod web-2 in StatefulSet web success",
        ];
        wanted.iter().all(|w| out.contains(w)).then_some(out)
    })
    .await?;
    assert!(events.contains("SuccessfulCreate"));
    Ok(())
}

#[tokio::test]
async fn scale_down_removes_the_highest_ordinal_first() -> Result<()> {
    let c = cluster().await?;
    c.create(&manifest(3, json!({})))?;
    c.roll_out(3).await?;
    let deletions = c.record_deletions().await?;
    c.cp.kubectl(&["scale", "statefulset", "web", "--replicas=1"])?;
    c.converge("scale down to 1", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.replicas == 1 && st.ready_replicas == Some(1))
    })
    .await?;
    let names: Vec<String> = c.active_pods().await?.iter().map(name_of).collect();
    assert_eq!(names, ["web-0"]);
    wait::until("both deletions seen", CONVERGE, || async {
        (deletions.names().len() >= 2).then_some(())
    })
    .await?;
    assert_eq!(deletions.names(), ["web-2", "web-1"]);
    // Claims are retained by default.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    assert!(claims.get_opt("data-web-2").await?.is_some());

    // Scaling back up reuses the names.
    c.cp.kubectl(&["scale", "statefulset", "web", "--replicas=2"])?;
    c.converge("scale up to 2", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.ready_replicas == Some(2))
    })
    .await?;
    let names: Vec<String> = c.active_pods().await?.iter().map(name_of).collect();
    assert_eq!(names, ["web-0", "web-1"]);
    Ok(())
}

#[tokio::test]
async fn a_partitioned_rolling_update_goes_from_the_top_down_to_the_partition() -> Result<()> {
    let c = cluster().await?;
    c.create(&manifest(3, json!({})))?;
    let set = c.roll_out(3).await?;
    let old = set
        .status
        .and_then(|s| s.current_revision)
        .unwrap_or_default();
    let deletions = c.record_deletions().await?;
    c.sets()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "updateStrategy": {"rollingUpdate": {"partition": 1}},
                "template": {"spec": {"containers": [{"name": "app", "image": "registry.example/app:2",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
            }})),
        )
        .await?;
    // web-2 is replaced first; web-1 waits until it is Ready.
    let web2 = wait::until("web-2 at the new image", CONVERGE, || async {
        c.pod("web-2")
            .await
            .filter(|p| image_of(p) == "registry.example/app:2")
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    assert_ne!(revision_of(&web2), old);
    let web1 = c.pod("web-1").await.context("web-1")?;
    assert_eq!(
        image_of(&web1),
        "registry.example/app:1",
        "web-1 was updated before web-2 was Ready"
    );
    c.make_ready("web-2").await?;
    c.wait_pod("web-1").await?;
    wait::until("web-1 at the new image", CONVERGE, || async {
        c.pod("web-1")
            .await
            .filter(|p| image_of(p) == "registry.example/app:2")
    })
    .await?;
    let set = c
        .converge("two pods updated", |s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.updated_replicas == Some(2) && st.ready_replicas == Some(3))
        })
        .await?;
    let status = set.status.context("no status")?;
    assert_eq!(
        status.current_revision.as_deref(),
        Some(old.as_str()),
        "web-0 keeps the current revision"
    );
    assert_eq!(status.current_replicas, Some(1));
    let web0 = c.pod("web-0").await.context("web-0")?;
    assert_eq!(image_of(&web0), "registry.example/app:1");
    assert_eq!(deletions.names(), ["web-2", "web-1"]);
    let out =
        c.cp.kubectl(&["rollout", "status", "statefulset/web", "--timeout=20s"])?;
    assert!(
        out.contains("partitioned roll out complete: 2 new pods have been updated"),
        "{out}"
    );

    // Lowering the partition finishes the rollout.
    c.sets()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
        )
        .await?;
    let set = c.roll_out(3).await?;
    assert_ne!(set.status.and_then(|s| s.current_revision), Some(old));
    assert_eq!(deletions.names(), ["web-2", "web-1", "web-0"]);
    Ok(())
}

#[tokio::test]
async fn kubectl_rollout_status_history_and_undo_work_on_a_statefulset() -> Result<()> {
    let c = cluster().await?;
    c.create(&manifest(2, json!({"podManagementPolicy": "Parallel"})))?;
    c.roll_out(2).await?;
    let out =
        c.cp.kubectl(&["rollout", "status", "statefulset/web", "--timeout=20s"])?;
    assert!(out.contains("roll out complete"), "{out}");

    // The change cause is copied into the revision made for the change.
    c.cp.kubectl(&[
        "annotate",
        "statefulset/web",
        "kubernetes.io/change-cause=to v2",
    ])?;
    c.cp.kubectl(&[
        "set",
        "image",
        "statefulset/web",
        "app=registry.example/app:2",
    ])?;
    wait::until("web-1 at the new image", CONVERGE, || async {
        c.make_ready("web-1").await.ok();
        c.pod("web-1")
            .await
            .filter(|p| image_of(p) == "registry.example/app:2")
    })
    .await?;
    c.converge("both pods at v2", |s| {
        s.status.as_ref().is_some_and(|st| {
            st.updated_replicas == Some(2)
                && st.ready_replicas == Some(2)
                && st.current_revision == st.update_revision
        })
    })
    .await?;
    let history = c.cp.kubectl(&["rollout", "history", "statefulset/web"])?;
    let rows = printed_table(
        history.trim_start_matches(|ch| ch != '\n').trim_start(),
        &["REVISION", "CHANGE-CAUSE"],
    );
    let numbers: Vec<&str> = rows
        .iter()
        .map(|r| r[0].as_str())
        .filter(|n| !n.is_empty())
        .collect();
    assert_eq!(numbers, ["1", "2"], "{history}");
    let first =
        c.cp.kubectl(&["rollout", "history", "statefulset/web", "--revision=1"])?;
    assert!(first.contains("registry.example/app:1"), "{first}");

    let out = c.cp.kubectl(&["rollout", "undo", "statefulset/web"])?;
    assert!(out.contains("rolled back"), "{out}");
    let set = c
        .converge("both pods back at v1", |s| {
            let image = s
                .spec
                .as_ref()
                .and_then(|sp| sp.template.spec.as_ref())
                .and_then(|ps| ps.containers[0].image.clone());
            image.as_deref() == Some("registry.example/app:1")
                && s.status.as_ref().is_some_and(|st| {
                    st.observed_generation >= s.metadata.generation
                        && st.updated_replicas == Some(2)
                        && st.ready_replicas == Some(2)
                        && st.current_revision == st.update_revision
                })
        })
        .await?;
    for p in c.active_pods().await? {
        assert_eq!(image_of(&p), "registry.example/app:1");
    }
    // The first revision was reused, renumbered as the newest.
    let revisions: Api<ControllerRevision> = Api::namespaced(c.client.clone(), "default");
    let mut list: Vec<(String, i64)> = revisions
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|r| (r.metadata.name.unwrap_or_default(), r.revision))
        .collect();
    list.sort_by_key(|r| r.1);
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[1].1, 3);
    assert_eq!(
        set.status.and_then(|s| s.update_revision),
        Some(list[1].0.clone())
    );
    let history = c.cp.kubectl(&["rollout", "history", "statefulset/web"])?;
    assert!(history.contains("to v2"), "{history}");
    Ok(())
}

#[tokio::test]
async fn deleted_and_failed_pods_come_back_under_their_names() -> Result<()> {
    let c = cluster().await?;
    c.create(&manifest(2, json!({})))?;
    c.roll_out(2).await?;
    let old = c.pod("web-1").await.context("web-1")?;
    c.pods().delete("web-1", &DeleteParams::default()).await?;
    let back = wait::until("web-1 to come back", CONVERGE, || async {
        c.pod("web-1")
            .await
            .filter(|p| p.metadata.uid != old.metadata.uid)
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    assert_eq!(back.spec.and_then(|s| s.hostname).as_deref(), Some("web-1"));
    c.roll_out(2).await?;

    let failed = c.pod("web-0").await.context("web-0")?;
    c.set_status("web-0", json!({"phase": "Failed"})).await?;
    wait::until("web-0 to be recreated", CONVERGE, || async {
        c.pod("web-0")
            .await
            .filter(|p| p.metadata.uid != failed.metadata.uid)
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    let events = wait::until("the RecreatingFailedPod event", CONVERGE, || async {
        let out = c.cp.kubectl(&["get", "events"]).ok()?;
        out.contains("RecreatingFailedPod").then_some(out)
    })
    .await?;
    if !events.contains("recreating failed Pod web-0") {
        bail!("unexpected event text: {events}");
    }
    Ok(())
}

#[tokio::test]
async fn claims_follow_the_retention_policy_through_the_garbage_collector() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let (cm, _) = cp.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers=statefulset,garbagecollector",
    ])?;
    let c = Cluster { cp, client, cm };
    c.create(&manifest(
        2,
        json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"}}),
    ))?;
    let set = c.roll_out(2).await?;
    let set_uid = set.metadata.uid.clone().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let owners = |claim: &PersistentVolumeClaim| -> Vec<(String, String)> {
        claim
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|r| (r.kind.clone(), r.uid.clone()))
            .collect()
    };
    wait::until("the set to own its claims", CONVERGE, || async {
        let a = claims.get("data-web-0").await.ok()?;
        let b = claims.get("data-web-1").await.ok()?;
        let want = vec![("StatefulSet".to_string(), set_uid.clone())];
        (owners(&a) == want && owners(&b) == want).then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;

    // Scaled down: the condemned pod's claim goes with it.
    c.cp.kubectl(&["scale", "statefulset", "web", "--replicas=1"])?;
    wait::until("data-web-1 to be collected", CONVERGE, || async {
        claims
            .get_opt("data-web-1")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    assert!(claims.get_opt("data-web-0").await?.is_some());

    // Deleted: the remaining claims go with the set.
    c.cp.kubectl(&["delete", "statefulset", "web"])?;
    wait::until("data-web-0 to be collected", CONVERGE, || async {
        claims
            .get_opt("data-web-0")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    Ok(())
}
