//! Node lifecycle against a real apiserver, etcd and controller-manager,
//! the test playing two kubelets: one keeps renewing its Lease, one goes
//! silent. The silent node turns Unknown (NotReady in `kubectl get
//! nodes`), gets the unreachable taints, and its pods are evicted when
//! their tolerations run out; when it reports again the taints go. With
//! the scheduler and the ReplicaSet controller, a lost node's pods come
//! back on a healthy one.

use std::time::Duration;

use anyhow::Result;
use capstan_tests::fixture::ControlPlane;
use capstan_tests::wait;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(30);

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Registers a Ready node with a Lease, as a kubelet does.
async fn register(nodes: &Api<Node>, leases: &Api<Lease>, name: &str) -> Result<()> {
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}}))?,
        )
        .await?;
    report(nodes, name).await?;
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now()}}))?;
    leases.create(&PostParams::default(), &lease).await?;
    Ok(())
}

/// Posts Ready=True with a fresh heartbeat, as a kubelet does.
async fn report(nodes: &Api<Node>, name: &str) -> Result<()> {
    let t = now();
    let status = json!({"status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "kubelet is posting ready status", "lastHeartbeatTime": t, "lastTransitionTime": t}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(status))
        .await?;
    Ok(())
}

async fn renew(leases: &Api<Lease>, name: &str) -> Result<()> {
    leases
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"renewTime": now()}})),
        )
        .await?;
    Ok(())
}

fn taint_keys(node: &Node) -> Vec<String> {
    let mut keys: Vec<String> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_silent_node_is_tainted_and_its_pods_evicted_by_their_tolerations() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let (_cm, _) = cp.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers=node-lifecycle",
        "--node-monitor-period=1s",
        "--node-monitor-grace-period=4s",
    ])?;
    let client = cp.client().await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    register(&nodes, &leases, "alive").await?;
    register(&nodes, &leases, "silent").await?;
    let pod = |name: &str, node: &str, tolerations: serde_json::Value| -> Result<Pod> {
        Ok(serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": {"nodeName": node,
            "tolerations": tolerations, "containers": [{"name": "c", "image": "registry.example/app:1"}]}}),
        )?)
    };
    let brief = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]);
    pods.create(&PostParams::default(), &pod("brief", "silent", brief)?)
        .await?;
    pods.create(
        &PostParams::default(),
        &pod("patient", "silent", json!([{"operator": "Exists"}]))?,
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &pod("elsewhere", "alive", json!([]))?,
    )
    .await?;

    // The test keeps one kubelet alive: its Lease is renewed throughout.
    let renewer = keep_alive(&leases, "alive");

    let silent = wait::until("the silent node to be tainted", CONVERGE, || async {
        let n = nodes.get("silent").await.ok()?;
        (taint_keys(&n).len() == 2).then_some(n)
    })
    .await?;
    assert_eq!(
        taint_keys(&silent),
        [
            "node.kubernetes.io/unreachable:NoExecute",
            "node.kubernetes.io/unreachable:NoSchedule"
        ]
    );
    let ready = silent
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready");
    assert_eq!(
        ready.map(|c| (c.status, c.reason.unwrap_or_default())),
        Some(("Unknown".to_string(), "NodeStatusUnknown".to_string()))
    );
    let table = cp.kubectl(&["get", "node", "silent"])?;
    assert!(table.contains("NotReady"), "{table}");

    // The pod tolerating two seconds is evicted (deleted; with no kubelet
    // to confirm, it stays Terminating, as upstream); the one tolerating
    // forever stays.
    let deleting = |p: Option<Pod>| p.is_some_and(|p| p.metadata.deletion_timestamp.is_some());
    wait::until(
        "the briefly tolerating pod to be evicted",
        CONVERGE,
        || async { deleting(pods.get_opt("brief").await.ok()?).then_some(()) },
    )
    .await?;
    assert!(!deleting(pods.get_opt("patient").await?));
    assert!(!deleting(pods.get_opt("elsewhere").await?));
    assert!(
        taint_keys(&nodes.get("alive").await?).is_empty(),
        "the renewing node stays untainted"
    );

    // The silent kubelet comes back: the taints go.
    renew(&leases, "silent").await?;
    report(&nodes, "silent").await?;
    wait::until("the taints to be removed", CONVERGE, || async {
        taint_keys(&nodes.get("silent").await.ok()?)
            .is_empty()
            .then_some(())
    })
    .await?;
    renewer.abort();
    Ok(())
}

/// Renews `name`'s Lease every half second until aborted, as a live
/// kubelet does.
fn keep_alive(leases: &Api<Lease>, name: &'static str) -> tokio::task::JoinHandle<()> {
    let leases = leases.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let _ = renew(&leases, name).await;
        }
    })
}

/// Where the ReplicaSet's live (not terminating) pods are bound.
async fn live_pod_nodes(pods: &Api<Pod>) -> Option<Vec<String>> {
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .ok()?;
    let mut nodes: Vec<String> = list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.spec.and_then(|s| s.node_name).unwrap_or_default())
        .collect();
    nodes.sort();
    Some(nodes)
}

#[tokio::test]
async fn pods_of_a_lost_node_are_recreated_on_a_healthy_one() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let (_cm, _) = cp.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers=replicaset,node-lifecycle",
        "--node-monitor-period=1s",
        "--node-monitor-grace-period=4s",
    ])?;
    let (_scheduler, _) = cp.start_scheduler(&["--leader-elect=false"])?;
    let client = cp.client().await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let pods: Api<Pod> = Api::default_namespaced(client.clone());

    // One node at first, so both replicas land on it.
    register(&nodes, &leases, "doomed").await?;
    let doomed = keep_alive(&leases, "doomed");
    let rs: ReplicaSet = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}],
            "containers": [{"name": "c", "image": "registry.example/app:1"}]}}}}),
    )?;
    Api::<ReplicaSet>::default_namespaced(client.clone())
        .create(&PostParams::default(), &rs)
        .await?;
    wait::until("both replicas on the first node", CONVERGE, || async {
        (live_pod_nodes(&pods).await? == ["doomed", "doomed"]).then_some(())
    })
    .await?;

    // A second node joins; the first one's kubelet goes silent.
    register(&nodes, &leases, "healthy").await?;
    let healthy = keep_alive(&leases, "healthy");
    doomed.abort();
    wait::until(
        "the replicas to be recreated on the healthy node",
        Duration::from_secs(60),
        || async { (live_pod_nodes(&pods).await? == ["healthy", "healthy"]).then_some(()) },
    )
    .await?;
    let lost = nodes.get("doomed").await?;
    assert!(taint_keys(&lost).contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string()));
    healthy.abort();
    Ok(())
}
