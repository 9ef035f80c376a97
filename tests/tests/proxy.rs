//! capstan-proxy with real nftables and real TCP connections. A "node"
//! network namespace holds a bridge with backend "pods" (each its own
//! namespace running busybox httpd with distinct content) and a client
//! pod; the node reaches the apiserver over a veth pair to the host. The
//! test writes Services and EndpointSlices straight through the API (no
//! controller-manager) and checks what clients get: every backend behind
//! a cluster IP, endpoint changes followed, ClientIP affinity, fast
//! refusal without endpoints, NodePorts, both Local traffic policies,
//! terminating endpoints as a fallback, hairpin, health (also for a Node
//! being removed) and metrics, and `--cleanup` removing the table.
//! Everything is removed on drop.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use capstan_tests::fixture::{ControlPlane, Process, binary};
use capstan_tests::netns::{HostLink, Netns, veth_to_bridge, veth_to_host};
use capstan_tests::wait;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NODE: &str = "node-a";

/// The machine-wide pieces: namespaces, links, servers.
struct Topology {
    // Declared so processes stop before their namespaces go.
    _httpd: Vec<Process>,
    node: Netns,
    pods: Vec<Netns>,
    client: Netns,
    _link: HostLink,
    host_ip: String,
    node_ip: String,
}

fn pod_ip(i: usize) -> String {
    format!("10.244.1.{}", 10 + i)
}

fn setup(dir: &Path) -> Result<Topology> {
    let pid = std::process::id();
    let tag = format!("cpx{}", pid % 100_000);
    let sub = 20 + pid % 200;
    let host_ip = format!("10.123.{sub}.1");
    let node_ip = format!("10.123.{sub}.2");
    let node = Netns::create(&format!("{tag}-node"))?;
    let link = veth_to_host(
        &tag,
        &format!("{host_ip}/24"),
        &node,
        &format!("{node_ip}/24"),
    )?;
    node.ok(&["ip", "route", "add", "default", "via", &host_ip])?;
    node.ok(&["ip", "link", "add", "cbr0", "type", "bridge"])?;
    node.ok(&["ip", "addr", "add", "10.244.1.1/24", "dev", "cbr0"])?;
    node.ok(&["ip", "link", "set", "cbr0", "up"])?;
    node.ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    let mut pods = Vec::new();
    let mut httpd = Vec::new();
    for i in 1..=3 {
        let pod = Netns::create(&format!("{tag}-p{i}"))?;
        veth_to_bridge(
            &pod,
            &format!("{}/24", pod_ip(i)),
            "10.244.1.1",
            &node,
            "cbr0",
            &format!("vp{i}"),
        )?;
        let www = dir.join(format!("www{i}"));
        std::fs::create_dir_all(&www)?;
        std::fs::write(www.join("index.html"), format!("backend-{i}\n"))?;
        let mut cmd = pod.command("/bin/busybox");
        cmd.args(["httpd", "-f", "-p", "80", "-h"]).arg(&www);
        httpd.push(Process::spawn(
            "httpd",
            cmd,
            dir.join(format!("httpd{i}.log")),
        )?);
        pods.push(pod);
    }
    let client = Netns::create(&format!("{tag}-c"))?;
    veth_to_bridge(&client, "10.244.1.50/24", "10.244.1.1", &node, "cbr0", "vc")?;
    Ok(Topology {
        _httpd: httpd,
        node,
        pods,
        client,
        _link: link,
        host_ip,
        node_ip,
    })
}

/// One HTTP GET from inside `ns` with curl: the body, or curl's exit
/// code and complaint (`curl exit 7: …` is a refused connection, 28 a
/// timeout).
fn fetch(ns: &Netns, url: &str) -> Result<String, String> {
    let out = ns
        .run(&["curl", "-sS", "-m", "5", url])
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "curl exit {}: {}",
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The backends `n` requests reached (failures count as themselves).
fn backends(ns: &Netns, url: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| fetch(ns, url).unwrap_or_else(|e| format!("error: {e}")))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Waits until `n` requests from `ns` to `url` reach exactly `want`.
async fn until_backends(ns: &Netns, url: &str, n: usize, want: &[&str]) -> Result<()> {
    let want = set(want);
    let mut last = BTreeSet::new();
    let r = wait::until(
        &format!("{url} to reach {want:?}"),
        Duration::from_secs(30),
        || {
            let got = backends(ns, url, n);
            let ok = got == want;
            last = got;
            async move { ok.then_some(()) }
        },
    )
    .await;
    r.with_context(|| format!("last saw {last:?}"))
}

fn endpoint(i: usize, node: &str, cond: serde_json::Value) -> serde_json::Value {
    json!({"addresses": [pod_ip(i)], "nodeName": node, "conditions": cond})
}

fn ready() -> serde_json::Value {
    json!({"ready": true, "serving": true, "terminating": false})
}

async fn put_slice(api: &Api<EndpointSlice>, svc: &str, eps: Vec<serde_json::Value>) -> Result<()> {
    let slice: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{svc}-1"), "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": eps
    }))?;
    api.patch(
        &format!("{svc}-1"),
        &PatchParams::apply("proxy-test").force(),
        &Patch::Apply(&slice),
    )
    .await
    .with_context(|| format!("applying slice of {svc}"))?;
    Ok(())
}

async fn create_service(api: &Api<Service>, name: &str, spec: serde_json::Value) -> Result<String> {
    let mut spec = spec;
    let node_port = spec.as_object_mut().and_then(|s| s.remove("nodePort"));
    let mut port = json!({"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"});
    if let Some(np) = node_port {
        port["nodePort"] = np;
    }
    spec["ports"] = json!([port]);
    let svc: Service = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}),
    )?;
    let svc = api.create(&PostParams::default(), &svc).await?;
    svc.spec
        .and_then(|s| s.cluster_ip)
        .context("no cluster IP allocated")
}

async fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    conn.read_to_string(&mut text).await?;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status line")?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((code, body))
}

#[tokio::test]
async fn proxy_forwards_services_with_nftables_in_network_namespaces() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let topo = setup(scratch.path())?;
    for (i, _) in topo.pods.iter().enumerate() {
        let url = format!("http://{}/", pod_ip(i + 1));
        wait::until("httpd to answer", Duration::from_secs(20), || {
            let ok = fetch(&topo.client, &url).is_ok();
            async move { ok.then_some(()) }
        })
        .await?;
    }
    let cp = ControlPlane::start_at(&topo.host_ip, &[]).await?;
    let client = cp.client().await?;
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());

    let web = create_service(
        &services,
        "web",
        json!({"type": "NodePort", "nodePort": 30080}),
    )
    .await?;
    put_slice(
        &slices,
        "web",
        vec![
            endpoint(1, NODE, ready()),
            endpoint(2, NODE, ready()),
            endpoint(3, "node-b", ready()),
        ],
    )
    .await?;

    // A table a previous run left behind, with a chain nobody wants.
    topo.node
        .ok(&["nft", "add", "table", "ip", "capstan-proxy"])?;
    topo.node
        .ok(&["nft", "add", "chain", "ip", "capstan-proxy", "left-behind"])?;

    let proxy_bin = binary("capstan-proxy")?;
    let mut cmd = topo.node.command(&proxy_bin.to_string_lossy());
    cmd.args([
        "--kubeconfig",
        &cp.kubeconfig.to_string_lossy(),
        "--hostname-override",
        NODE,
        "--cluster-cidr",
        "10.244.0.0/16",
        "--min-sync-period",
        "100ms",
        "--healthz-bind-address",
        "0.0.0.0:10256",
        "--metrics-bind-address",
        "127.0.0.1:10249",
    ])
    .env("RUST_LOG", "info,capstan_proxy=debug");
    let mut proxy = Process::spawn("capstan-proxy", cmd, scratch.path().join("proxy.log"))?;

    let run = async {
        // ClusterIP: every backend answers, from a pod and from the node.
        let url = format!("http://{web}/");
        until_backends(
            &topo.client,
            &url,
            40,
            &["backend-1", "backend-2", "backend-3"],
        )
        .await
        .context("cluster IP from a pod")?;
        let chains = topo.node.ok(&["nft", "list", "chains", "ip"])?;
        if chains.contains("left-behind") || !chains.contains("nat-prerouting") {
            bail!("the proxy did not take its table over: {chains}");
        }
        let from_node = fetch(&topo.node, &url);
        if !from_node
            .as_deref()
            .is_ok_and(|b| b.starts_with("backend-"))
        {
            bail!("cluster IP from the node itself: {from_node:?}");
        }

        // NodePort on the node's address.
        let np = format!("http://{}:30080/", topo.node_ip);
        until_backends(
            &topo.client,
            &np,
            40,
            &["backend-1", "backend-2", "backend-3"],
        )
        .await
        .context("NodePort")?;

        // Endpoint removal, then addition, followed.
        put_slice(
            &slices,
            "web",
            vec![endpoint(1, NODE, ready()), endpoint(2, NODE, ready())],
        )
        .await?;
        until_backends(&topo.client, &url, 30, &["backend-1", "backend-2"])
            .await
            .context("after removing backend-3")?;
        put_slice(
            &slices,
            "web",
            vec![endpoint(2, NODE, ready()), endpoint(3, "node-b", ready())],
        )
        .await?;
        until_backends(&topo.client, &url, 30, &["backend-2", "backend-3"])
            .await
            .context("after adding backend-3 back and removing backend-1")?;

        // Session affinity pins a client.
        let sticky = create_service(
            &services,
            "sticky",
            json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}}),
        )
        .await?;
        put_slice(
            &slices,
            "sticky",
            vec![
                endpoint(1, NODE, ready()),
                endpoint(2, NODE, ready()),
                endpoint(3, NODE, ready()),
            ],
        )
        .await?;
        let surl = format!("http://{sticky}/");
        wait::until(
            "the sticky service to answer",
            Duration::from_secs(30),
            || {
                let ok = fetch(&topo.client, &surl).is_ok();
                async move { ok.then_some(()) }
            },
        )
        .await?;
        let got = backends(&topo.client, &surl, 20);
        if got.len() != 1 || !got.iter().all(|b| b.starts_with("backend-")) {
            bail!("ClientIP affinity: one client reached {got:?}");
        }

        // No endpoints: refused at once rather than left to time out.
        let empty = create_service(&services, "empty", json!({})).await?;
        let eurl = format!("http://{empty}/");
        let mut last = String::new();
        wait::until(
            "the endpoint-less service to refuse",
            Duration::from_secs(30),
            || {
                let r = fetch(&topo.client, &eurl);
                let ok = matches!(&r, Err(e) if e.starts_with("curl exit 7:"));
                last = format!("{r:?}");
                async move { ok.then_some(()) }
            },
        )
        .await
        .with_context(|| format!("last answer {last}"))?;

        // externalTrafficPolicy: Local: NodePort traffic only to this
        // node's endpoints.
        let _local = create_service(
            &services,
            "local",
            json!({"type": "NodePort", "nodePort": 30081, "externalTrafficPolicy": "Local"}),
        )
        .await?;
        put_slice(
            &slices,
            "local",
            vec![
                endpoint(1, NODE, ready()),
                endpoint(2, NODE, ready()),
                endpoint(3, "node-b", ready()),
            ],
        )
        .await?;
        let lurl = format!("http://{}:30081/", topo.node_ip);
        until_backends(&topo.client, &lurl, 40, &["backend-1", "backend-2"])
            .await
            .context("externalTrafficPolicy Local")?;

        // internalTrafficPolicy: Local: cluster-IP traffic only to this
        // node's endpoints.
        let itp =
            create_service(&services, "itp", json!({"internalTrafficPolicy": "Local"})).await?;
        put_slice(
            &slices,
            "itp",
            vec![endpoint(1, NODE, ready()), endpoint(3, "node-b", ready())],
        )
        .await?;
        until_backends(&topo.client, &format!("http://{itp}/"), 20, &["backend-1"])
            .await
            .context("internalTrafficPolicy Local")?;

        // Terminating-but-serving endpoints only while none is ready.
        let term = create_service(&services, "term", json!({})).await?;
        put_slice(
            &slices,
            "term",
            vec![
                endpoint(
                    1,
                    NODE,
                    json!({"ready": false, "serving": true, "terminating": true}),
                ),
                endpoint(
                    2,
                    NODE,
                    json!({"ready": false, "serving": false, "terminating": true}),
                ),
            ],
        )
        .await?;
        let turl = format!("http://{term}/");
        until_backends(&topo.client, &turl, 20, &["backend-1"])
            .await
            .context("terminating fallback")?;
        put_slice(
            &slices,
            "term",
            vec![
                endpoint(
                    1,
                    NODE,
                    json!({"ready": false, "serving": true, "terminating": true}),
                ),
                endpoint(3, NODE, ready()),
            ],
        )
        .await?;
        until_backends(&topo.client, &turl, 20, &["backend-3"])
            .await
            .context("a ready endpoint replaces the terminating one")?;

        // Hairpin: a pod reaches itself through its Service.
        let hair = create_service(&services, "hair", json!({})).await?;
        put_slice(&slices, "hair", vec![endpoint(1, NODE, ready())]).await?;
        let hurl = format!("http://{hair}/");
        until_backends(&topo.pods[0], &hurl, 3, &["backend-1"])
            .await
            .context("hairpin")?;

        // A deleted Service stops answering.
        services.delete("sticky", &DeleteParams::default()).await?;
        wait::until(
            "the deleted service to stop answering",
            Duration::from_secs(30),
            || {
                let gone = fetch(&topo.client, &surl).is_err();
                async move { gone.then_some(()) }
            },
        )
        .await?;

        // Health and metrics.
        let healthz = format!("{}:10256", topo.node_ip);
        let (code, body) = http_get(&healthz, "/healthz").await?;
        if code != 200 || !body.contains("\"nodeEligible\": true") || !body.contains("lastUpdated")
        {
            bail!("/healthz answered {code} {body}");
        }
        let (code, _) = http_get(&healthz, "/livez").await?;
        if code != 200 {
            bail!("/livez answered {code}");
        }
        // A Node the autoscaler is removing is not eligible: /healthz
        // says 503, /livez (the proxy itself) still 200.
        let nodes: Api<Node> = Api::all(client.clone());
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
            "spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]}
        }))?;
        nodes.create(&PostParams::default(), &node).await?;
        let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let r = wait::until(
            "/healthz to report the Node ineligible",
            Duration::from_secs(30),
            || {
                let healthz = healthz.clone();
                let seen = last.clone();
                async move {
                    let (code, body) = http_get(&healthz, "/healthz").await.ok()?;
                    let ok = code == 503 && body.contains("\"nodeEligible\": false");
                    if let Ok(mut s) = seen.lock() {
                        *s = format!("{code} {body}");
                    }
                    ok.then_some(())
                }
            },
        )
        .await;
        r.with_context(|| format!("last answer {:?}", last.lock().map(|s| s.clone())))?;
        let (code, _) = http_get(&healthz, "/livez").await?;
        if code != 200 {
            bail!("/livez answered {code} for an ineligible Node");
        }

        let metrics =
            fetch(&topo.node, "http://127.0.0.1:10249/metrics").map_err(anyhow::Error::msg)?;
        for name in [
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "kubeproxy_sync_full_proxy_rules_duration_seconds_count",
            "kubeproxy_sync_partial_proxy_rules_duration_seconds_count",
            "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
            "kubeproxy_sync_proxy_rules_nftables_objects{kind=\"chains\"}",
        ] {
            let v = capstan_tests::fixture::metric(&metrics, name);
            if !v.is_some_and(|v| v > 0.0) {
                bail!("metric {name} is {v:?}:\n{metrics}");
            }
        }
        Ok::<(), anyhow::Error>(())
    };
    if let Err(e) = run.await {
        let tables = topo
            .node
            .run(&["nft", "list", "ruleset"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        bail!(
            "{e:#}\n{}\n--- ruleset ---\n{}",
            proxy.log_tail(),
            tables.unwrap_or_default()
        );
    }

    // --cleanup removes the table and only it.
    proxy.stop();
    topo.node.ok(&["nft", "add", "table", "ip", "bystander"])?;
    let out = topo
        .node
        .command(&proxy_bin.to_string_lossy())
        .arg("--cleanup")
        .output()?;
    if !out.status.success() {
        bail!("--cleanup failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let tables = topo.node.ok(&["nft", "list", "tables"])?;
    if tables.contains("capstan-proxy") || !tables.contains("bystander") {
        bail!("after --cleanup the tables are: {tables}");
    }
    // An unknown mode is refused with a clear message.
    let out = topo
        .node
        .command(&proxy_bin.to_string_lossy())
        .args(["--proxy-mode", "iptables"])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !err.contains("only \"nftables\"") {
        bail!("--proxy-mode iptables: {err}");
    }
    Ok(())
}
