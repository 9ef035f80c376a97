//! The DaemonSet controller against a real apiserver, etcd, scheduler and
//! controller-manager, with hollow nodes playing the kubelets (pods are
//! reported Running without containers). A daemon pod lands on every node
//! the template fits, bound there by the scheduler; it follows nodes that
//! come, get tainted or lose a pod; `kubectl set image` rolls it out no
//! faster than `maxUnavailable`, and `kubectl rollout undo` brings the old
//! template back from its ControllerRevision.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use capstan_tests::fixture::{ControlPlane, Process};
use capstan_tests::hollow::{HollowNodes, NEVER_READY, node};
use capstan_tests::table::printed_table;
use capstan_tests::wait;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(60);

struct Cluster {
    cp: ControlPlane,
    client: kube::Client,
    _scheduler: Process,
    _cm: Process,
}

async fn cluster() -> Result<Cluster> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let (scheduler, _) = cp.start_scheduler(&["--leader-elect=false"])?;
    let (cm, _) =
        cp.start_controller_manager(&["--leader-elect=false", "--controllers=daemonset"])?;
    Ok(Cluster {
        cp,
        client,
        _scheduler: scheduler,
        _cm: cm,
    })
}

/// The DaemonSet `agent` in `default`, with `template_spec` merged into
/// its pod spec and `strategy` as its update strategy.
fn manifest(template_spec: serde_json::Value, strategy: serde_json::Value) -> String {
    let mut spec = json!({"containers": [{"name": "c", "image": "registry.example/agent:1"}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), template_spec.as_object()) {
        s.extend(extra.clone());
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": strategy,
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec},
        },
    })
    .to_string()
}

/// Live (neither terminating nor finished) daemon pods by node: (name, image, ready).
async fn pods_by_node(pods: &Api<Pod>) -> Option<BTreeMap<String, Vec<(String, String, bool)>>> {
    let list = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .ok()?;
    let mut out: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
    for p in list {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        if p.metadata.deletion_timestamp.is_some() || matches!(phase, Some("Failed" | "Succeeded"))
        {
            continue;
        }
        let spec = p.spec.as_ref()?;
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        out.entry(spec.node_name.clone().unwrap_or_default())
            .or_default()
            .push((
                p.metadata.name.clone().unwrap_or_default(),
                spec.containers
                    .first()
                    .and_then(|c| c.image.clone())
                    .unwrap_or_default(),
                ready,
            ));
    }
    Some(out)
}

/// Waits until exactly `nodes` each run one ready daemon pod of `image`.
async fn wait_for_ready_pods(
    pods: &Api<Pod>,
    nodes: &[&str],
    image: &str,
) -> Result<BTreeMap<String, Vec<(String, String, bool)>>> {
    let what = format!("one ready {image} pod on each of {nodes:?}");
    wait::until(&what, CONVERGE, || async {
        let by_node = pods_by_node(pods).await?;
        let placed: Vec<&str> = by_node.keys().map(String::as_str).collect();
        let all_good = placed == nodes
            && by_node
                .values()
                .all(|v| v.len() == 1 && v[0].1 == image && v[0].2);
        all_good.then_some(by_node)
    })
    .await
}

/// `kubectl rollout status ds/agent`; on failure the DaemonSet is shown.
fn rollout_status(cp: &ControlPlane) -> Result<String> {
    cp.kubectl(&["rollout", "status", "ds/agent", "--timeout=60s"])
        .map_err(|e| {
            let shown = cp.kubectl(&["get", "ds", "agent", "-o", "yaml"]);
            let pods = cp.kubectl(&[
                "get",
                "pods",
                "-o",
                "wide",
                "-L",
                "controller-revision-hash",
            ]);
            let revisions = cp.kubectl(&["get", "controllerrevisions"]);
            e.context(format!("{shown:?}\n{pods:?}\n{revisions:?}"))
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_pod_runs_on_every_eligible_node_and_follows_the_nodes() -> Result<()> {
    let c = cluster().await?;
    let mut cordoned = node("n4", json!({}), json!([]))?;
    cordoned.spec.get_or_insert_default().unschedulable = Some(true);
    let _hollow = HollowNodes::start(
        c.client.clone(),
        vec![
            node("n1", json!({}), json!([]))?,
            node("n2", json!({"disk": "ssd"}), json!([]))?,
            node(
                "n3",
                json!({}),
                json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
            )?,
            cordoned,
        ],
    )
    .await?;
    let path = c.cp.write("ds.yaml", &manifest(json!({}), json!({})))?;
    c.cp.kubectl(&["apply", "-f", &path])?;
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());

    // The tainted node gets none; the cordoned one does (daemon pods
    // tolerate `unschedulable`), each bound by the scheduler.
    let placed =
        wait_for_ready_pods(&pods, &["n1", "n2", "n4"], "registry.example/agent:1").await?;
    let ds = Api::<DaemonSet>::default_namespaced(c.client.clone())
        .get("agent")
        .await?;
    let pod = pods.get(&placed["n1"][0].0).await?;
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .context("no controller reference")?;
    assert_eq!(
        (owner.kind.as_str(), Some(&owner.uid)),
        ("DaemonSet", ds.metadata.uid.as_ref())
    );
    assert!(
        pod.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("controller-revision-hash")),
        "no controller-revision-hash label: {:?}",
        pod.metadata.labels
    );
    let keys: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.key)
        .collect();
    assert!(keys.contains(&"node.kubernetes.io/unschedulable".to_string()));

    let table = wait::until("kubectl get ds to show 3 of 3", CONVERGE, || async {
        let out = c.cp.kubectl(&["get", "ds", "agent"]).ok()?;
        let rows = printed_table(
            &out,
            &[
                "NAME",
                "DESIRED",
                "CURRENT",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "NODE SELECTOR",
                "AGE",
            ],
        );
        (rows.first().map(|r| &r[1..6]) == Some(&["3", "3", "3", "3", "3"].map(String::from)[..]))
            .then_some(out)
    })
    .await?;
    assert!(table.contains("<none>"), "{table}");

    // A new node gets its pod.
    let _more =
        HollowNodes::start(c.client.clone(), vec![node("n5", json!({}), json!([]))?]).await?;
    wait_for_ready_pods(&pods, &["n1", "n2", "n4", "n5"], "registry.example/agent:1").await?;

    // A NoExecute taint the pod does not tolerate takes it off the node.
    let nodes: Api<Node> = Api::all(c.client.clone());
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [
                {"key": "maintenance", "value": "true", "effect": "NoExecute"}]}})),
        )
        .await?;
    let after = wait_for_ready_pods(&pods, &["n2", "n4", "n5"], "registry.example/agent:1").await?;

    // A deleted pod comes back on the same node.
    let victim = after["n2"][0].0.clone();
    pods.delete(&victim, &DeleteParams::default()).await?;
    let back = wait_for_ready_pods(&pods, &["n2", "n4", "n5"], "registry.example/agent:1").await?;
    assert_ne!(back["n2"][0].0, victim);

    // A failed pod is replaced, with a warning on the DaemonSet.
    let failed = back["n5"][0].0.clone();
    pods.patch_status(
        &failed,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed"}})),
    )
    .await?;
    let replaced =
        wait_for_ready_pods(&pods, &["n2", "n4", "n5"], "registry.example/agent:1").await?;
    assert_ne!(replaced["n5"][0].0, failed);
    let events = wait::until("a FailedDaemonPod event", CONVERGE, || async {
        let out =
            c.cp.kubectl(&[
                "get",
                "events",
                "--field-selector",
                "reason=FailedDaemonPod",
            ])
            .ok()?;
        out.contains(&failed).then_some(out)
    })
    .await?;
    assert!(events.contains("will try to kill it"), "{events}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn set_image_rolls_within_max_unavailable_and_rollout_undo_restores_the_template()
-> Result<()> {
    let c = cluster().await?;
    let _hollow = HollowNodes::start(
        c.client.clone(),
        vec![
            node("n1", json!({}), json!([]))?,
            node("n2", json!({}), json!([]))?,
            node("n3", json!({}), json!([]))?,
        ],
    )
    .await?;
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}});
    let path = c.cp.write("ds.yaml", &manifest(json!({}), strategy))?;
    c.cp.kubectl(&["apply", "-f", &path])?;
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    let all = ["n1", "n2", "n3"];
    wait_for_ready_pods(&pods, &all, "registry.example/agent:1").await?;
    let out = rollout_status(&c.cp)?;
    assert!(
        out.contains("daemon set \"agent\" successfully rolled out"),
        "{out}"
    );

    // A template whose pods never get ready: one node's pod is replaced
    // and the rollout stops there, the others keep the old image.
    let bad = format!("registry.example/agent:{NEVER_READY}");
    c.cp.kubectl(&["set", "image", "ds/agent", &format!("c={bad}")])?;
    let dsets: Api<DaemonSet> = Api::default_namespaced(c.client.clone());
    let most_updated = std::sync::atomic::AtomicUsize::new(0);
    wait::until("the rollout to stall after one pod", CONVERGE, || async {
        let by_node = pods_by_node(&pods).await?;
        let updated = by_node.values().flatten().filter(|p| p.1 == bad).count();
        most_updated.fetch_max(updated, std::sync::atomic::Ordering::Relaxed);
        let status = dsets.get("agent").await.ok()?.status?;
        (status.updated_number_scheduled == Some(1)
            && status.number_unavailable == Some(1)
            && status.number_available == Some(2)
            && by_node.len() == 3)
            .then_some(())
    })
    .await?;
    assert_eq!(
        most_updated.into_inner(),
        1,
        "more than maxUnavailable pods were replaced"
    );
    let history = c.cp.kubectl(&["rollout", "history", "ds/agent"])?;
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, vec!["1", "2"], "{history}");

    // Undo brings back the first template, which becomes revision 3.
    let out = c.cp.kubectl(&["rollout", "undo", "ds/agent"])?;
    assert!(out.contains("rolled back"), "{out}");
    wait_for_ready_pods(&pods, &all, "registry.example/agent:1").await?;
    let out = rollout_status(&c.cp)?;
    assert!(out.contains("successfully rolled out"), "{out}");
    let history = c.cp.kubectl(&["rollout", "history", "ds/agent"])?;
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, vec!["2", "3"], "{history}");

    // A good image rolls all the way.
    c.cp.kubectl(&["set", "image", "ds/agent", "c=registry.example/agent:2"])?;
    let out = rollout_status(&c.cp)?;
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_for_ready_pods(&pods, &all, "registry.example/agent:2").await?;
    let status = dsets.get("agent").await?.status.context("no status")?;
    assert_eq!(
        (
            status.desired_number_scheduled,
            status.updated_number_scheduled,
            status.number_ready
        ),
        (3, Some(3), 3)
    );
    Ok(())
}
