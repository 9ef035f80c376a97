//! The disruption controller against a real apiserver, etcd and
//! controller-manager: a PodDisruptionBudget's status follows its pods'
//! readiness and their controller's scale, and the eviction subresource
//! lets one pod go and refuses the next with 429, as upstream.

use std::time::Duration;

use anyhow::Result;
use capstan_tests::fixture::ControlPlane;
use capstan_tests::wait;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(30);

/// (expected, currentHealthy, desiredHealthy, disruptionsAllowed).
fn counts(pdb: &PodDisruptionBudget) -> Option<(i32, i32, i32, i32)> {
    let s = pdb.status.as_ref()?;
    s.observed_generation?;
    Some((
        s.expected_pods,
        s.current_healthy,
        s.desired_healthy,
        s.disruptions_allowed,
    ))
}

#[tokio::test]
async fn budgets_count_healthy_pods_and_evictions_honour_them() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let (_cm, _) = cp.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers=replicaset,disruption",
    ])?;
    let client = cp.client().await?;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let rs: ReplicaSet = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "registry.example/app:1"}]}}}}),
    )?;
    Api::<ReplicaSet>::default_namespaced(client.clone())
        .create(&PostParams::default(), &rs)
        .await?;
    let names = wait::until("three pods", CONVERGE, || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        (names.len() == 3).then_some(names)
    })
    .await?;
    let ready = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    for name in &names {
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&ready))
            .await?;
    }
    let budgets: Api<PodDisruptionBudget> = Api::default_namespaced(client.clone());
    let budget: PodDisruptionBudget = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}))?;
    budgets.create(&PostParams::default(), &budget).await?;
    let by_scale: PodDisruptionBudget =
        serde_json::from_value(json!({"metadata": {"name": "by-scale"},
        "spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}}}))?;
    budgets.create(&PostParams::default(), &by_scale).await?;
    wait::until("the budget's status", CONVERGE, || async {
        (counts(&budgets.get("web").await.ok()?) == Some((3, 3, 2, 1))).then_some(())
    })
    .await?;
    // maxUnavailable 50% of the ReplicaSet's 3 replicas rounds up to 2.
    wait::until("the scale-based budget's status", CONVERGE, || async {
        (counts(&budgets.get("by-scale").await.ok()?) == Some((3, 3, 1, 2))).then_some(())
    })
    .await?;
    let table = cp.kubectl(&["get", "pdb", "web"])?;
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().nth(3) == Some("1")),
        "{table}"
    );

    // Two budgets over one pod: upstream's eviction refuses to choose.
    match pods.evict(&names[0], &EvictParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(
            (e.code, e.message.as_str()),
            (
                500,
                "Internal error occurred: This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
            )
        ),
        other => panic!("eviction under two budgets must fail, got {other:?}"),
    }
    budgets.delete("by-scale", &Default::default()).await?;

    // One eviction is allowed; then the budget is spent until the
    // replacement is ready.
    pods.evict(&names[0], &EvictParams::default()).await?;
    wait::until("the budget to be spent", CONVERGE, || async {
        let c = counts(&budgets.get("web").await.ok()?)?;
        (c.3 == 0).then_some(())
    })
    .await?;
    match pods.evict(&names[1], &EvictParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(
            (e.code, e.reason.as_str()),
            (429, "TooManyRequests"),
            "{e:?}"
        ),
        other => panic!("the second eviction must be refused, got {other:?}"),
    }
    Ok(())
}
