//! The garbage collector against a real apiserver, etcd and
//! controller-manager: `kubectl delete --cascade=background|foreground|
//! orphan` of a ReplicaSet does to its pods what it does upstream, and
//! objects of any kind whose owners are gone are deleted, while those
//! with another live owner only lose the dangling reference.

use std::time::Duration;

use anyhow::Result;
use capstan_tests::fixture::{ControlPlane, Process};
use capstan_tests::wait;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(30);

struct Cluster {
    cp: ControlPlane,
    client: kube::Client,
    _cm: Process,
}

async fn cluster() -> Result<Cluster> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let (cm, _) = cp.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers=replicaset,garbagecollector",
    ])?;
    Ok(Cluster {
        cp,
        client,
        _cm: cm,
    })
}

impl Cluster {
    /// A ReplicaSet `name` with `replicas` pods, once they exist.
    async fn replicaset(&self, name: &str, replicas: usize) -> Result<()> {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "registry.example/app:1"}]}}}
        }))?;
        Api::<ReplicaSet>::default_namespaced(self.client.clone())
            .create(&PostParams::default(), &rs)
            .await?;
        wait::until("the pods to be created", CONVERGE, || async {
            (self.pods(name).await.ok()?.len() == replicas).then_some(())
        })
        .await
    }

    async fn pods(&self, app: &str) -> Result<Vec<Pod>> {
        let api: Api<Pod> = Api::default_namespaced(self.client.clone());
        Ok(api
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await?
            .items)
    }

    async fn replicaset_exists(&self, name: &str) -> Result<bool> {
        Ok(Api::<ReplicaSet>::default_namespaced(self.client.clone())
            .get_opt(name)
            .await?
            .is_some())
    }
}

#[tokio::test]
async fn kubectl_delete_cascades_background_foreground_and_orphan() -> Result<()> {
    let c = cluster().await?;

    // Background: the ReplicaSet goes at once, its pods after.
    c.replicaset("bg", 2).await?;
    c.cp.kubectl(&["delete", "rs", "bg"])?;
    assert!(!c.replicaset_exists("bg").await?);
    wait::until(
        "the background delete to remove the pods",
        CONVERGE,
        || async { c.pods("bg").await.ok()?.is_empty().then_some(()) },
    )
    .await?;

    // Foreground: kubectl waits until the pods and then the ReplicaSet are gone.
    c.replicaset("fg", 2).await?;
    c.cp.kubectl(&[
        "delete",
        "rs",
        "fg",
        "--cascade=foreground",
        "--timeout=60s",
    ])?;
    assert!(!c.replicaset_exists("fg").await?);
    assert!(c.pods("fg").await?.is_empty(), "pods go before their owner");

    // While a foreground deletion waits, the owner shows the finalizer.
    c.replicaset("held", 1).await?;
    let pod = c.pods("held").await?.remove(0);
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    c.cp.kubectl(&[
        "patch",
        "pod",
        &pod_name,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])?;
    c.cp.kubectl(&[
        "delete",
        "rs",
        "held",
        "--cascade=foreground",
        "--wait=false",
    ])?;
    let finalizers = wait::until("the pod to be deleting", CONVERGE, || async {
        let rs = Api::<ReplicaSet>::default_namespaced(c.client.clone())
            .get("held")
            .await
            .ok()?;
        let pods = c.pods("held").await.ok()?;
        pods.first()?.metadata.deletion_timestamp.as_ref()?;
        Some(rs.metadata.finalizers.unwrap_or_default())
    })
    .await?;
    assert_eq!(finalizers, ["foregroundDeletion"]);
    c.cp.kubectl(&[
        "patch",
        "pod",
        &pod_name,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])?;
    wait::until("the owner to follow its pod", CONVERGE, || async {
        (!c.replicaset_exists("held").await.ok()?).then_some(())
    })
    .await?;

    // Orphan: the pods stay, without their owner reference.
    c.replicaset("orphans", 2).await?;
    c.cp.kubectl(&["delete", "rs", "orphans", "--cascade=orphan"])?;
    assert!(!c.replicaset_exists("orphans").await?);
    let pods = c.pods("orphans").await?;
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter().all(|p| p
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(|r| r.is_empty())),
        "orphaned pods lose the reference"
    );
    Ok(())
}

#[tokio::test]
async fn objects_of_any_kind_follow_their_owners() -> Result<()> {
    let c = cluster().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client.clone());
    let make = |name: &str, owners: serde_json::Value| -> Result<ConfigMap> {
        Ok(serde_json::from_value(
            json!({"metadata": {"name": name, "ownerReferences": owners}}),
        )?)
    };
    let owner = cms
        .create(&PostParams::default(), &make("owner", json!([]))?)
        .await?;
    let other = cms
        .create(&PostParams::default(), &make("other", json!([]))?)
        .await?;
    let reference = |cm: &ConfigMap| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": cm.metadata.name, "uid": cm.metadata.uid});
    cms.create(
        &PostParams::default(),
        &make("dependent", json!([reference(&owner)]))?,
    )
    .await?;
    cms.create(
        &PostParams::default(),
        &make("shared", json!([reference(&owner), reference(&other)]))?,
    )
    .await?;
    // An owner that never existed.
    let ghost = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}]);
    cms.create(&PostParams::default(), &make("haunted", ghost)?)
        .await?;
    wait::until("the ghost's dependent to be deleted", CONVERGE, || async {
        cms.get_opt("haunted").await.ok()?.is_none().then_some(())
    })
    .await?;

    c.cp.kubectl(&["delete", "configmap", "owner"])?;
    wait::until("the dependent to be deleted", CONVERGE, || async {
        cms.get_opt("dependent").await.ok()?.is_none().then_some(())
    })
    .await?;
    let shared = wait::until(
        "the shared object to lose the dangling reference",
        CONVERGE,
        || async {
            let cm = cms.get("shared").await.ok()?;
            (cm.metadata.owner_references.as_ref()?.len() == 1).then_some(cm)
        },
    )
    .await?;
    assert_eq!(
        shared.metadata.owner_references.unwrap_or_default()[0].name,
        "other"
    );
    assert!(cms.get_opt("other").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn pod_gc_keeps_the_newest_terminated_pods_and_removes_pods_of_gone_nodes() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let (_cm, _) = cp.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers=pod-garbage-collector",
        "--terminated-pod-gc-threshold=2",
    ])?;
    let pods: Api<Pod> = Api::default_namespaced(cp.client().await?);
    let pod = |name: &str, node: Option<&str>| -> Result<Pod> {
        let mut spec = json!({"containers": [{"name": "c", "image": "registry.example/app:1"}]});
        if let Some(node) = node {
            spec["nodeName"] = json!(node);
        }
        Ok(serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": spec}),
        )?)
    };
    // Created in this order; same-second ties are broken by name.
    for name in ["done-a", "done-b", "done-c", "done-d"] {
        pods.create(&PostParams::default(), &pod(name, None)?)
            .await?;
        pods.patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
        )
        .await?;
    }
    pods.create(&PostParams::default(), &pod("running", None)?)
        .await?;
    pods.create(
        &PostParams::default(),
        &pod("stranded", Some("ghost-node"))?,
    )
    .await?;
    let mut left = wait::until(
        "the oldest terminated pods to be deleted",
        Duration::from_secs(60),
        || async {
            let names: Vec<String> = pods
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .filter(|n| n.starts_with("done-"))
                .collect();
            (names.len() == 2).then_some(names)
        },
    )
    .await?;
    left.sort();
    assert_eq!(left, ["done-c", "done-d"]);
    assert!(pods.get_opt("running").await?.is_some());
    // A pod bound to a node that does not exist goes after the quarantine.
    wait::until(
        "the stranded pod to be deleted",
        Duration::from_secs(120),
        || async { pods.get_opt("stranded").await.ok()?.is_none().then_some(()) },
    )
    .await?;
    Ok(())
}
