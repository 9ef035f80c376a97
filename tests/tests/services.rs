//! Service ClusterIP and NodePort allocation against a real apiserver and
//! etcd: addresses from the configured range, never the same twice (also
//! under concurrent creates and across a restart), requested values
//! honoured or refused with 422, released on delete, dry runs keeping
//! nothing.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use capstan_tests::fixture::ControlPlane;
use futures::future::join_all;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn service(name: &str, spec: serde_json::Value) -> Result<Service> {
    let mut spec = spec;
    if spec.get("ports").is_none() {
        spec["ports"] = json!([{"port": 80}]);
    }
    Ok(serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}),
    )?)
}

fn cluster_ip(svc: &Service) -> String {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .unwrap_or_default()
}

fn node_port(svc: &Service) -> i32 {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .and_then(|p| p.node_port)
        .unwrap_or(0)
}

async fn refusal(api: &Api<Service>, svc: &Service) -> Result<(u16, String)> {
    match api.create(&PostParams::default(), svc).await {
        Err(kube::Error::Api(e)) => Ok((e.code, e.message)),
        Ok(s) => anyhow::bail!("created {:?} unexpectedly", s.metadata.name),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test]
async fn cluster_ips_are_unique_requested_released_and_survive_restarts() -> Result<()> {
    let mut cp = ControlPlane::start(&[]).await?;
    let api: Api<Service> = Api::default_namespaced(cp.client().await?);
    let range = (Ipv4Addr::new(10, 96, 0, 0), 12);
    let in_range = |ip: &str| -> bool {
        ip.parse::<Ipv4Addr>().is_ok_and(|a| {
            u32::from(a) >> (32 - range.1) == u32::from(range.0) >> (32 - range.1)
                && a != Ipv4Addr::new(10, 96, 0, 0)
                && a != Ipv4Addr::new(10, 96, 0, 1)
        })
    };

    // Concurrent creates never share an address.
    let services: Vec<Service> = (0..20)
        .map(|i| service(&format!("svc-{i}"), json!({})))
        .collect::<Result<_>>()?;
    let post = PostParams::default();
    let created = join_all(services.iter().map(|s| api.create(&post, s))).await;
    let mut ips = HashSet::new();
    for c in created {
        let ip = cluster_ip(&c?);
        assert!(in_range(&ip), "{ip} is outside 10.96.0.0/12 or reserved");
        assert!(ips.insert(ip.clone()), "{ip} handed out twice");
    }
    let listed = cp.kubectl(&[
        "get",
        "svc",
        "svc-0",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.clusterIPs[0]} {.spec.ipFamilies[0]}",
    ])?;
    let parts: Vec<&str> = listed.split(' ').collect();
    assert_eq!(parts.len(), 3, "{listed}");
    assert_eq!((parts[0] == parts[1], parts[2]), (true, "IPv4"), "{listed}");

    // A requested address is honoured once, then refused.
    let wanted = service("wanted", json!({"clusterIP": "10.96.0.50"}))?;
    assert_eq!(
        cluster_ip(&api.create(&PostParams::default(), &wanted).await?),
        "10.96.0.50"
    );
    let (code, message) =
        refusal(&api, &service("again", json!({"clusterIP": "10.96.0.50"}))?).await?;
    assert_eq!(code, 422);
    assert!(
        message.contains("spec.clusterIPs: Invalid value: [\"10.96.0.50\"]: failed to allocate IP 10.96.0.50: provided IP is already allocated"),
        "{message}"
    );
    let (code, message) =
        refusal(&api, &service("outside", json!({"clusterIP": "10.0.0.1"}))?).await?;
    assert_eq!(code, 422);
    assert!(
        message.contains("is not in the valid range. The range of valid IPs is 10.96.0.0/12"),
        "{message}"
    );

    // Headless.
    let headless = api
        .create(
            &PostParams::default(),
            &service(
                "headless",
                json!({"clusterIP": "None", "selector": {"app": "x"}}),
            )?,
        )
        .await?;
    assert_eq!(cluster_ip(&headless), "None");

    // The address may not change; an update without it keeps it.
    let err = api
        .patch(
            "wanted",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"clusterIP": "10.96.0.51", "clusterIPs": ["10.96.0.51"]}}),
            ),
        )
        .await
        .err()
        .context("changing the ClusterIP must fail")?;
    assert!(
        matches!(&err, kube::Error::Api(e) if e.code == 422 && e.message.contains("may not change once set")),
        "{err:?}"
    );
    let mut replaced = api.get("wanted").await?;
    if let Some(spec) = replaced.spec.as_mut() {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
    }
    let kept = api
        .replace("wanted", &PostParams::default(), &replaced)
        .await?;
    assert_eq!(cluster_ip(&kept), "10.96.0.50");

    // A dry run keeps nothing.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let probe = service("probe", json!({"clusterIP": "10.96.0.60"}))?;
    assert_eq!(cluster_ip(&api.create(&dry, &probe).await?), "10.96.0.60");
    assert_eq!(
        cluster_ip(&api.create(&PostParams::default(), &probe).await?),
        "10.96.0.60"
    );

    // Allocations survive a restart; deleting releases them.
    cp.restart_apiserver().await?;
    let api: Api<Service> = Api::default_namespaced(cp.client().await?);
    let (code, _) = refusal(&api, &service("again", json!({"clusterIP": "10.96.0.50"}))?).await?;
    assert_eq!(code, 422);
    api.delete("wanted", &DeleteParams::default()).await?;
    let again = api
        .create(
            &PostParams::default(),
            &service("again", json!({"clusterIP": "10.96.0.50"}))?,
        )
        .await?;
    assert_eq!(cluster_ip(&again), "10.96.0.50");
    Ok(())
}

#[tokio::test]
async fn node_ports_are_allocated_claimed_and_dropped_with_the_type() -> Result<()> {
    let cp = ControlPlane::start(&["--service-node-port-range=30100-30110"]).await?;
    let api: Api<Service> = Api::default_namespaced(cp.client().await?);
    let first = api
        .create(
            &PostParams::default(),
            &service("np", json!({"type": "NodePort"}))?,
        )
        .await?;
    let port = node_port(&first);
    assert!((30100..=30110).contains(&port), "{port}");
    let table = cp.kubectl(&["get", "svc", "np"])?;
    assert!(table.contains(&format!("80:{port}/TCP")), "{table}");

    let taken = service(
        "taken",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}),
    )?;
    let (code, message) = refusal(&api, &taken).await?;
    assert_eq!(code, 422);
    assert!(
        message.contains(&format!(
            "spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"
        )),
        "{message}"
    );
    let outside = service(
        "outside",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]}),
    )?;
    let (code, message) = refusal(&api, &outside).await?;
    assert_eq!(code, 422);
    assert!(
        message.contains("The range of valid ports is 30100-30110"),
        "{message}"
    );

    // Back to ClusterIP: the node port goes, and is free for others.
    let changed = api
        .patch(
            "np",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"type": "ClusterIP"}})),
        )
        .await?;
    assert_eq!(node_port(&changed), 0);
    let claimed = api.create(&PostParams::default(), &taken).await?;
    assert_eq!(node_port(&claimed), port);

    // The range runs out: 11 ports, one used by "taken".
    for i in 0..10 {
        api.create(
            &PostParams::default(),
            &service(&format!("fill-{i}"), json!({"type": "NodePort"}))?,
        )
        .await?;
    }
    let (code, message) = refusal(&api, &service("full", json!({"type": "NodePort"}))?).await?;
    assert_eq!(code, 500);
    assert!(message.contains("range is full"), "{message}");
    Ok(())
}
