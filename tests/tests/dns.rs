//! Cluster DNS end to end: `capstan-dns` on a loopback port, fed by a real
//! apiserver and etcd, asked through a real DNS client (hickory's) what a
//! pod would ask: Service addresses, headless endpoints as they change,
//! SRV, PTR, pod names, ExternalName, a missing name, and a name outside
//! the cluster forwarded to an upstream resolver (a second DNS server on
//! loopback named by the `--resolv-conf` file).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use capstan_tests::dns::{StaticDns, http_get, query, query_tcp, rdata};
use capstan_tests::fixture::ControlPlane;
use capstan_tests::wait;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

fn service(name: &str, spec: Value) -> Result<Service> {
    Ok(serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}),
    )?)
}

/// An EndpointSlice of Service `svc` with `(address, hostname)` ready
/// endpoints and the named port `pg` 5432/TCP.
fn slice(svc: &str, endpoints: &[(&str, Option<&str>)]) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, host)| {
            let mut e = json!({"addresses": [ip], "conditions": {"ready": true}});
            if let Some(h) = host {
                e["hostname"] = json!(h);
            }
            e
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": format!("{svc}-1"), "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
    })
}

/// Polls `name`/`rtype` until the sorted answer data equal `want`.
async fn until_answers(
    dns: SocketAddr,
    name: &str,
    rtype: RecordType,
    want: &[&str],
) -> Result<()> {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    let last = std::sync::Mutex::new(Vec::new());
    let r = wait::until(
        &format!("{name} {rtype} to answer {want:?}"),
        DEADLINE,
        || async {
            let data = rdata(&query(dns, name, rtype).await.ok()?);
            if data == want {
                return Some(());
            }
            if let Ok(mut l) = last.lock() {
                *l = data;
            }
            None
        },
    )
    .await;
    r.with_context(|| format!("last answer {:?}", last.lock().map(|l| l.clone())))
}

#[tokio::test]
async fn cluster_dns_answers_the_specification_and_forwards_the_rest() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;

    // The upstream resolver: a second DNS server on loopback.
    let upstream = StaticDns::start("upstream.example.", Ipv4Addr::new(192, 0, 2, 7)).await?;
    let resolv = cp.dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!(
            "search example\nnameserver {}\noptions ndots:5\n",
            upstream.addr
        ),
    )?;
    let (dns_proc, port, health_port) = cp.start_dns(&resolv, &[])?;
    let dns = SocketAddr::from(([127, 0, 0, 1], port));
    let health = SocketAddr::from(([127, 0, 0, 1], health_port));
    wait::until("capstan-dns to be ready", DEADLINE, || async {
        matches!(http_get(health, "/readyz").await, Ok((200, _))).then_some(())
    })
    .await
    .with_context(|| dns_proc.log_tail())?;
    assert_eq!(http_get(health, "/healthz").await?.0, 200);

    let services: Api<Service> = Api::default_namespaced(client.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    let web = services
        .create(
            &pp,
            &service(
                "web",
                json!({"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
            )?,
        )
        .await?;
    let web_ip = web
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .context("web got no ClusterIP")?;
    services
        .create(
            &pp,
            &service(
                "db",
                json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
            )?,
        )
        .await?;
    services
        .create(
            &pp,
            &service(
                "ext",
                json!({"type": "ExternalName", "externalName": "upstream.example"}),
            )?,
        )
        .await?;
    let first: EndpointSlice = serde_json::from_value(slice(
        "db",
        &[("10.1.0.1", Some("db-0")), ("10.1.0.2", None)],
    ))?;
    slices.create(&pp, &first).await?;

    // ClusterIP Service: A, SRV for the named port, PTR.
    until_answers(
        dns,
        "web.default.svc.cluster.local.",
        RecordType::A,
        &[&web_ip],
    )
    .await
    .with_context(|| dns_proc.log_tail())?;
    let a = query(dns, "web.default.svc.cluster.local.", RecordType::A).await?;
    assert!(
        a.metadata.authoritative,
        "the cluster zone answers authoritatively"
    );
    assert_eq!(a.answers[0].ttl, 30);
    let srv = query(
        dns,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await?;
    assert_eq!(rdata(&srv), ["0 100 80 web.default.svc.cluster.local."]);
    let octets: Vec<&str> = web_ip.split('.').rev().collect();
    let ptr = query(
        dns,
        &format!("{}.in-addr.arpa.", octets.join(".")),
        RecordType::PTR,
    )
    .await?;
    assert_eq!(rdata(&ptr), ["web.default.svc.cluster.local."]);
    // The same over TCP.
    let tcp = query_tcp(dns, "web.default.svc.cluster.local.", RecordType::A).await?;
    assert_eq!(rdata(&tcp), [web_ip.as_str()]);

    // Headless Service: one A per ready endpoint, names per hostname, SRV
    // per endpoint, PTR to the endpoint's name.
    until_answers(
        dns,
        "db.default.svc.cluster.local.",
        RecordType::A,
        &["10.1.0.1", "10.1.0.2"],
    )
    .await?;
    let host = query(dns, "db-0.db.default.svc.cluster.local.", RecordType::A).await?;
    assert_eq!(rdata(&host), ["10.1.0.1"]);
    let srv = query(
        dns,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await?;
    assert_eq!(
        rdata(&srv),
        [
            "0 100 5432 10-1-0-2.db.default.svc.cluster.local.",
            "0 100 5432 db-0.db.default.svc.cluster.local."
        ]
    );
    let extra: HashSet<String> = srv.additionals.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(
        extra,
        HashSet::from(["10.1.0.1".to_string(), "10.1.0.2".to_string()])
    );
    let ptr = query(dns, "1.0.1.10.in-addr.arpa.", RecordType::PTR).await?;
    assert_eq!(rdata(&ptr), ["db-0.db.default.svc.cluster.local."]);

    // The endpoints change: the answers follow.
    let changed = slice("db", &[("10.1.0.2", None), ("10.1.0.3", Some("db-2"))]);
    slices
        .patch(
            "db-1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"endpoints": changed["endpoints"]})),
        )
        .await?;
    until_answers(
        dns,
        "db.default.svc.cluster.local.",
        RecordType::A,
        &["10.1.0.2", "10.1.0.3"],
    )
    .await?;
    let gone = query(dns, "db-0.db.default.svc.cluster.local.", RecordType::A).await?;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);

    // Pod names, ExternalName, NXDOMAIN and NODATA.
    let pod = query(dns, "10-244-0-5.default.pod.cluster.local.", RecordType::A).await?;
    assert_eq!(rdata(&pod), ["10.244.0.5"]);
    let cname = query(dns, "ext.default.svc.cluster.local.", RecordType::CNAME).await?;
    assert_eq!(rdata(&cname), ["upstream.example."]);
    let missing = query(dns, "missing.default.svc.cluster.local.", RecordType::A).await?;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        !missing.authorities.is_empty(),
        "the SOA rides along for negative caching"
    );
    let nodata = query(dns, "web.default.svc.cluster.local.", RecordType::AAAA).await?;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    let version = query(dns, "dns-version.cluster.local.", RecordType::TXT).await?;
    assert_eq!(rdata(&version), ["1.1.0"]);

    // Outside the cluster: forwarded upstream, over UDP and TCP.
    let fwd = query(dns, "upstream.example.", RecordType::A).await?;
    assert_eq!(rdata(&fwd), ["192.0.2.7"]);
    let fwd = query_tcp(dns, "upstream.example.", RecordType::A).await?;
    assert_eq!(rdata(&fwd), ["192.0.2.7"]);
    let nx = query(dns, "nothing.example.", RecordType::A).await?;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);

    // The queries were counted.
    let (status, metrics) = http_get(health, "/metrics").await?;
    assert_eq!(status, 200);
    let counted = metrics
        .lines()
        .filter(|l| l.starts_with("coredns_dns_requests_total{"))
        .count();
    if counted == 0 {
        bail!("no coredns_dns_requests_total samples in:\n{metrics}");
    }
    assert!(metrics.contains("coredns_dns_request_duration_seconds_bucket"));
    drop(dns_proc);
    Ok(())
}

#[tokio::test]
async fn cluster_names_wait_for_the_caches_and_the_rest_still_forwards() -> Result<()> {
    // The kubeconfig names a port where no apiserver listens: the zone
    // cannot sync.
    let cp = ControlPlane::start(&[]).await?;
    let upstream = StaticDns::start("upstream.example.", Ipv4Addr::new(192, 0, 2, 8)).await?;
    let resolv = cp.dir.path().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {}\n", upstream.addr))?;
    let bogus = cp.dir.path().join("unreachable.kubeconfig");
    let text = std::fs::read_to_string(&cp.kubeconfig)?;
    let port = capstan_tests::fixture::free_port()?;
    std::fs::write(
        &bogus,
        text.replace(&cp.apiserver.url, &format!("https://127.0.0.1:{port}")),
    )?;
    let health_port = capstan_tests::fixture::free_port()?;
    let mut dns_port = capstan_tests::fixture::free_port()?;
    while dns_port == health_port {
        dns_port = capstan_tests::fixture::free_port()?;
    }
    let mut cmd = std::process::Command::new(capstan_tests::fixture::binary("capstan-dns")?);
    cmd.arg("--kubeconfig")
        .arg(&bogus)
        .arg(format!("--listen=127.0.0.1:{dns_port}"))
        .arg(format!("--health-address=127.0.0.1:{health_port}"))
        .arg("--resolv-conf")
        .arg(&resolv);
    let dns_proc = capstan_tests::fixture::Process::spawn(
        "capstan-dns",
        cmd,
        cp.dir.path().join("dns-unsynced.log"),
    )?;
    let dns = SocketAddr::from(([127, 0, 0, 1], dns_port));
    let health = SocketAddr::from(([127, 0, 0, 1], health_port));

    let fwd = wait::until("forwarding before sync", DEADLINE, || async {
        query(dns, "upstream.example.", RecordType::A).await.ok()
    })
    .await
    .with_context(|| dns_proc.log_tail())?;
    assert_eq!(rdata(&fwd), ["192.0.2.8"]);
    let early = query(dns, "web.default.svc.cluster.local.", RecordType::A).await?;
    assert_eq!(
        early.metadata.response_code,
        ResponseCode::ServFail,
        "no cacheable NXDOMAIN before the zone is known"
    );
    assert_eq!(http_get(health, "/readyz").await?.0, 503);
    assert_eq!(http_get(health, "/healthz").await?.0, 200);
    Ok(())
}
