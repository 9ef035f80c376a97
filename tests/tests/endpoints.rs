//! Service endpoints against a real apiserver, etcd, scheduler and
//! controller-manager, with hollow nodes playing the kubelets (each pod
//! gets its own IP): the EndpointSlice and Endpoints controllers follow a
//! Deployment as it scales, as pods go not-ready or terminate, resolve a
//! named targetPort per pod, split large Services into slices of 100,
//! and `kubectl get endpointslices`/`endpoints` show the addresses. Node
//! IPAM gives nodes distinct pod CIDRs that survive a controller-manager
//! restart and tells a node when the range is full, and the apiserver
//! keeps the `default/kubernetes` Service.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use capstan_tests::fixture::{ControlPlane, Process};
use capstan_tests::hollow::{HollowNodes, node};
use capstan_tests::wait;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(60);

struct Cluster {
    cp: ControlPlane,
    client: kube::Client,
    _scheduler: Process,
    _cm: Process,
    _hollow: HollowNodes,
}

/// A control plane, scheduler, the Deployment, ReplicaSet and both
/// endpoint controllers, and three hollow nodes in zones a, b, c.
async fn cluster() -> Result<Cluster> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let (scheduler, _) = cp.start_scheduler(&["--leader-elect=false"])?;
    let (cm, _) = cp.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers=deployment,replicaset,endpoint,endpointslice",
    ])?;
    let nodes = ["a", "b", "c"]
        .iter()
        .map(|z| {
            node(
                &format!("node-{z}"),
                json!({"topology.kubernetes.io/zone": format!("zone-{z}")}),
                json!([]),
            )
        })
        .collect::<Result<Vec<Node>>>()?;
    let hollow = HollowNodes::start(client.clone(), nodes).await?;
    Ok(Cluster {
        cp,
        client,
        _scheduler: scheduler,
        _cm: cm,
        _hollow: hollow,
    })
}

/// Service `web` (port 80 → the pods' port named `http`) and Deployment
/// `web` whose pods name 8080 `http`.
fn manifests(replicas: i32) -> String {
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    });
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/web:1",
                    "ports": [{"name": "http", "containerPort": 8080}]}]},
            },
        },
    });
    format!("{svc}\n---\n{deploy}\n")
}

/// The managed slices of `web`.
async fn slices(client: &kube::Client) -> Result<Vec<EndpointSlice>> {
    let api: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let lp = ListParams::default().labels(
        "kubernetes.io/service-name=web,endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
    );
    Ok(api.list(&lp).await?.items)
}

/// (ready, serving, terminating) of an endpoint.
fn conditions(e: &k8s_openapi::api::discovery::v1::Endpoint) -> (bool, bool, bool) {
    let c = e.conditions.clone().unwrap_or_default();
    (
        c.ready.unwrap_or(false),
        c.serving.unwrap_or(false),
        c.terminating.unwrap_or(false),
    )
}

/// Waits until `web`'s slices hold exactly `n` endpoints; returns them.
async fn until_endpoints(c: &Cluster, n: usize) -> Result<Vec<EndpointSlice>> {
    wait::until(&format!("{n} endpoints of web"), CONVERGE, || async {
        let s = slices(&c.client).await.ok()?;
        let count: usize = s.iter().map(|s| s.endpoints.len()).sum();
        let ready = s
            .iter()
            .flat_map(|s| &s.endpoints)
            .all(|e| conditions(e) == (true, true, false));
        (count == n && ready).then_some(s)
    })
    .await
    .with_context(|| {
        format!(
            "{:?}",
            c.cp.kubectl(&["get", "endpointslices", "-o", "yaml"])
        )
    })
}

/// The ready and not-ready addresses of the Endpoints `web`.
async fn endpoints_addresses(c: &Cluster) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let api: Api<Endpoints> = Api::default_namespaced(c.client.clone());
    let ep = api.get("web").await.ok()?;
    let mut ready = BTreeSet::new();
    let mut not_ready = BTreeSet::new();
    for s in ep.subsets.iter().flatten() {
        ready.extend(s.addresses.iter().flatten().map(|a| a.ip.clone()));
        not_ready.extend(s.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()));
    }
    Some((ready, not_ready))
}

async fn scale(c: &Cluster, replicas: i32) -> Result<()> {
    c.cp.kubectl(&["scale", "deployment/web", &format!("--replicas={replicas}")])?;
    Ok(())
}

/// A pod `name` labelled `app=web` on `node-a`, outside the Deployment,
/// with `extra` merged into its spec and metadata.
fn lone_pod(name: &str, port: i32, metadata: serde_json::Value) -> Result<Pod> {
    let mut meta = json!({"name": name, "labels": {"app": "web"}});
    if let (Some(m), Some(e)) = (meta.as_object_mut(), metadata.as_object()) {
        m.extend(e.clone());
    }
    Ok(serde_json::from_value(json!({
        "metadata": meta,
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "registry.example/web:1",
            "ports": [{"name": "http", "containerPort": port}]}]},
    }))?)
}

#[tokio::test(flavor = "multi_thread")]
async fn slices_and_endpoints_follow_pods_readiness_termination_and_named_ports() -> Result<()> {
    let c = cluster().await?;
    let path = c.cp.write("web.yaml", &manifests(3))?;
    c.cp.kubectl(&["apply", "-f", &path])?;

    // Three ready endpoints in one slice, on the nodes and zones of the
    // pods, with the named port resolved.
    let s = until_endpoints(&c, 3).await?;
    assert_eq!(s.len(), 1, "one slice: {s:?}");
    let slice = &s[0];
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert!(
        slice
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("web-"))
    );
    let owner = slice
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|o| o.kind == "Service" && o.name == "web")
        .context("owned by the Service")?;
    assert_eq!(owner.controller, Some(true));
    let port = slice.ports.clone().unwrap_or_default();
    assert_eq!(port.len(), 1);
    assert_eq!(
        (port[0].name.as_deref(), port[0].port),
        (Some("http"), Some(8080))
    );
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    let listed = pods.list(&ListParams::default().labels("app=web")).await?;
    for e in &slice.endpoints {
        let target = e.target_ref.clone().context("targetRef")?;
        let pod = listed
            .items
            .iter()
            .find(|p| p.metadata.name == target.name)
            .context("the endpoint's pod")?;
        let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        assert_eq!(Some(&e.addresses[0]), pod_ip.as_ref());
        assert_eq!(
            e.node_name,
            pod.spec.as_ref().and_then(|s| s.node_name.clone())
        );
        let node = e.node_name.clone().unwrap_or_default();
        assert_eq!(
            e.zone.as_deref(),
            node.strip_prefix("node-")
                .map(|z| format!("zone-{z}"))
                .as_deref()
        );
        assert_eq!(target.kind.as_deref(), Some("Pod"));
        assert_eq!(target.uid, pod.metadata.uid);
    }
    let ips: BTreeSet<String> = slice
        .endpoints
        .iter()
        .map(|e| e.addresses[0].clone())
        .collect();
    assert_eq!(ips.len(), 3, "distinct pod IPs: {ips:?}");
    wait::until("Endpoints web with the 3 pods", CONVERGE, || async {
        let (ready, not_ready) = endpoints_addresses(&c).await?;
        (ready == ips && not_ready.is_empty()).then_some(())
    })
    .await?;

    // kubectl shows the addresses.
    let out = c.cp.kubectl(&["get", "endpointslices"])?;
    assert!(out.contains("IPv4") && out.contains("8080"), "{out}");
    let out = c.cp.kubectl(&["get", "endpoints", "web"])?;
    let first = ips.iter().next().cloned().unwrap_or_default();
    assert!(out.contains(&format!("{first}:8080")), "{out}");

    // Scaling is followed, up and down.
    scale(&c, 5).await?;
    until_endpoints(&c, 5).await?;
    scale(&c, 1).await?;
    let s = until_endpoints(&c, 1).await?;
    let remaining = s[0].endpoints[0]
        .target_ref
        .as_ref()
        .and_then(|r| r.name.clone())
        .context("the remaining pod")?;

    // A pod that goes not-ready stays listed, not ready and not serving;
    // the Endpoints object moves it to notReadyAddresses.
    pods.patch_status(
        &remaining,
        &PatchParams::default(),
        &Patch::Strategic(
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        ),
    )
    .await?;
    wait::until("the pod listed not ready", CONVERGE, || async {
        let s = slices(&c.client).await.ok()?;
        let e = s.iter().flat_map(|s| &s.endpoints).next()?;
        (conditions(e) == (false, false, false)).then_some(())
    })
    .await?;
    wait::until(
        "Endpoints web with a not-ready address",
        CONVERGE,
        || async {
            let (ready, not_ready) = endpoints_addresses(&c).await?;
            (ready.is_empty() && not_ready.len() == 1).then_some(())
        },
    )
    .await?;
    pods.patch_status(
        &remaining,
        &PatchParams::default(),
        &Patch::Strategic(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
    )
    .await?;
    until_endpoints(&c, 1).await?;

    // A terminating pod (held by a finalizer) is listed terminating and
    // still serving, not ready; the Endpoints object drops it.
    let held = lone_pod("held", 8080, json!({"finalizers": ["example.com/hold"]}))?;
    pods.create(&PostParams::default(), &held).await?;
    until_endpoints(&c, 2).await?;
    pods.delete("held", &DeleteParams::default()).await?;
    wait::until("the held pod listed terminating", CONVERGE, || async {
        let s = slices(&c.client).await.ok()?;
        let e = s
            .iter()
            .flat_map(|s| &s.endpoints)
            .find(|e| e.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some("held"))?;
        (conditions(e) == (false, true, true)).then_some(())
    })
    .await?;
    wait::until("Endpoints web without the held pod", CONVERGE, || async {
        let (ready, not_ready) = endpoints_addresses(&c).await?;
        (ready.len() == 1 && not_ready.is_empty()).then_some(())
    })
    .await?;
    pods.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    until_endpoints(&c, 1).await?;

    // A pod naming another port `http` gets a slice of its own.
    pods.create(&PostParams::default(), &lone_pod("alt", 9090, json!({}))?)
        .await?;
    let s = until_endpoints(&c, 2).await?;
    let mut ports: Vec<i32> = s
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| p.port)
        .collect();
    ports.sort();
    assert_eq!(ports, vec![8080, 9090], "{s:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_service_is_split_into_slices_of_at_most_100() -> Result<()> {
    let c = cluster().await?;
    let path = c.cp.write("web.yaml", &manifests(150))?;
    c.cp.kubectl(&["apply", "-f", &path])?;
    let s = wait::until("150 endpoints of web", Duration::from_secs(120), || async {
        let s = slices(&c.client).await.ok()?;
        let count: usize = s.iter().map(|s| s.endpoints.len()).sum();
        (count == 150).then_some(s)
    })
    .await?;
    assert_eq!(s.len(), 2, "two slices");
    assert!(s.iter().all(|s| s.endpoints.len() <= 100));
    let ips: BTreeSet<String> = s
        .iter()
        .flat_map(|s| &s.endpoints)
        .map(|e| e.addresses[0].clone())
        .collect();
    assert_eq!(ips.len(), 150);
    wait::until("Endpoints web with all 150 addresses", CONVERGE, || async {
        let (ready, not_ready) = endpoints_addresses(&c).await?;
        (ready.len() + not_ready.len() == 150).then_some(())
    })
    .await?;
    // Scaling back down empties and deletes a slice.
    scale(&c, 10).await?;
    let s = until_endpoints(&c, 10).await?;
    assert_eq!(s.len(), 1, "one slice left");
    Ok(())
}

fn pod_cidr(n: &Node) -> Option<String> {
    n.spec.as_ref().and_then(|s| s.pod_cidr.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn node_ipam_gives_distinct_cidrs_that_survive_a_restart() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let flags = [
        "--leader-elect=false",
        "--controllers=nodeipam",
        "--allocate-node-cidrs=true",
        "--cluster-cidr=10.244.0.0/16",
    ];
    let (mut cm, _) = cp.start_controller_manager(&flags)?;
    let mut outside = node("outside", json!({}), json!([]))?;
    outside.spec.get_or_insert_default().pod_cidr = Some("192.168.77.0/24".into());
    outside.spec.get_or_insert_default().pod_cidrs = Some(vec!["192.168.77.0/24".into()]);
    let mut nodes = vec![outside];
    for i in 1..=3 {
        nodes.push(node(&format!("n{i}"), json!({}), json!([]))?);
    }
    let _hollow = HollowNodes::start(client.clone(), nodes).await?;
    let api: Api<Node> = Api::all(client.clone());
    let in_range = |c: &str| c.starts_with("10.244.") && c.ends_with(".0/24");
    let first = wait::until("three nodes with pod CIDRs", CONVERGE, || async {
        let nodes = api.list(&ListParams::default()).await.ok()?;
        let cidrs: BTreeSet<String> = nodes
            .items
            .iter()
            .filter(|n| n.metadata.name.as_deref() != Some("outside"))
            .filter_map(pod_cidr)
            .collect();
        (cidrs.len() == 3).then_some(cidrs)
    })
    .await
    .with_context(|| cm.log_tail())?;
    assert!(first.iter().all(|c| in_range(c)), "{first:?}");
    let outside = api.get("outside").await?;
    assert_eq!(pod_cidr(&outside).as_deref(), Some("192.168.77.0/24"));
    let n1 = api.get("n1").await?;
    assert_eq!(
        n1.spec.and_then(|s| s.pod_cidrs).unwrap_or_default(),
        vec![pod_cidr(&api.get("n1").await?).unwrap_or_default()]
    );

    // A restarted controller-manager learns the blocks in use.
    cm.stop();
    let (cm, _) = cp.start_controller_manager(&flags)?;
    let _more = HollowNodes::start(client.clone(), vec![node("n4", json!({}), json!([]))?]).await?;
    let fourth = wait::until("n4 with a pod CIDR", CONVERGE, || async {
        pod_cidr(&api.get("n4").await.ok()?)
    })
    .await
    .with_context(|| cm.log_tail())?;
    assert!(in_range(&fourth), "{fourth}");
    assert!(!first.contains(&fourth), "{fourth} reused: {first:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kubernetes_service_points_at_the_apiserver() -> Result<()> {
    let mut cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let port: i32 = cp
        .apiserver
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("apiserver port")?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = wait::until("the kubernetes Service", CONVERGE, || async {
        services.get("kubernetes").await.ok()
    })
    .await?;
    let spec = svc.spec.clone().unwrap_or_default();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
    let p = spec.ports.unwrap_or_default();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].name.as_deref(), p[0].port), (Some("https"), 443));
    assert_eq!(
        p[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port))
    );
    let labels = svc.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("component").map(String::as_str),
        Some("apiserver")
    );
    assert_eq!(
        labels.get("provider").map(String::as_str),
        Some("kubernetes")
    );

    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let address = wait::until("the kubernetes Endpoints", CONVERGE, || async {
        let ep = endpoints.get("kubernetes").await.ok()?;
        let s = ep.subsets?.into_iter().next()?;
        let port_ok = s.ports?.first()?.port == port;
        port_ok.then(|| s.addresses?.first().map(|a| a.ip.clone()))?
    })
    .await?;
    assert_eq!(address, "127.0.0.1");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slice = wait::until("the kubernetes EndpointSlice", CONVERGE, || async {
        slices.get("kubernetes").await.ok()
    })
    .await?;
    assert_eq!(slice.endpoints[0].addresses, vec!["127.0.0.1".to_string()]);
    let out = cp.kubectl(&["get", "endpoints", "kubernetes"])?;
    assert!(out.contains(&format!("127.0.0.1:{port}")), "{out}");

    // A deleted Endpoints object comes back.
    endpoints
        .delete("kubernetes", &DeleteParams::default())
        .await?;
    wait::until("the kubernetes Endpoints again", CONVERGE, || async {
        endpoints.get("kubernetes").await.ok()
    })
    .await?;
    // And it is left alone while it is right.
    let before = slices.get("kubernetes").await?.metadata.resource_version;
    let svc_before = services.get("kubernetes").await?.metadata.resource_version;
    cp.restart_apiserver().await?;
    let client = cp.client().await?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client, "default");
    assert_eq!(
        slices.get("kubernetes").await?.metadata.resource_version,
        before
    );
    assert_eq!(
        services.get("kubernetes").await?.metadata.resource_version,
        svc_before
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_beyond_a_full_cluster_cidr_gets_cidr_not_available() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let (cm, _) = cp.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers=nodeipam",
        "--allocate-node-cidrs=true",
        "--cluster-cidr=10.244.0.0/23",
    ])?;
    let nodes = (1..=3)
        .map(|i| node(&format!("n{i}"), json!({}), json!([])))
        .collect::<Result<Vec<Node>>>()?;
    let _hollow = HollowNodes::start(client.clone(), nodes).await?;
    let api: Api<Node> = Api::all(client.clone());
    // Two blocks for three nodes: one node is told why it has none.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(client.clone());
    let without = wait::until("a CIDRNotAvailable event", CONVERGE, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("CIDRNotAvailable"))
            .and_then(|e| e.regarding?.name)
    })
    .await
    .with_context(|| cm.log_tail())?;
    let mut with = BTreeSet::new();
    for n in api.list(&ListParams::default()).await?.items {
        if let Some(c) = pod_cidr(&n) {
            with.insert(c);
        } else {
            assert_eq!(n.metadata.name.as_deref(), Some(without.as_str()));
        }
    }
    let expected: BTreeSet<String> = ["10.244.0.0/24", "10.244.1.0/24"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(with, expected);
    Ok(())
}
