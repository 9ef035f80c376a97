//! Services end to end on a three-node local cluster made by `capstan
//! create cluster --nodes 3`: each node a network namespace with its own
//! containerd, kubelet and proxy (nftables), pods routed between nodes by
//! their pod CIDRs, and the cluster DNS add-on. Everything is driven with
//! the real kubectl and checked with real connections from a pod (busybox
//! `wget` and `nslookup`) and from the host to the nodes' addresses.
//!
//! Needs every binary built (`cargo build --workspace --bins`) and root
//! with containerd, runc, containernetworking-plugins, busybox-static,
//! iproute2 and nftables installed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use capstan::runtime::images::BUSYBOX_IMAGE;
use capstan_tests::local_cluster::CapstanHome;
use capstan_tests::wait;

/// The cluster's name.
const CLUSTER: &str = "svc";
/// How long pods, endpoints and rules may take to follow a change.
const FOLLOW: Duration = Duration::from_secs(90);
/// What an answer is when a request failed.
const FAILED: &str = "FAILED";

/// The web server every test Deployment runs: answers `/` with `$ANSWER`
/// (the pod's name when unset) and is ready while `/tmp/ready` exists.
fn web_command(answer: &str) -> String {
    format!(
        "mkdir -p /www; echo {answer} > /www/index.html; touch /tmp/ready; exec httpd -f -p 8080 -h /www"
    )
}

/// The cluster; its home deletes it when dropped, also when a test fails.
struct Cluster {
    home: CapstanHome,
}

impl Cluster {
    fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.home.kubectl(CLUSTER, args)
    }

    fn apply(&self, yaml: &str) -> Result<String> {
        self.home
            .kubectl_stdin(CLUSTER, &["apply", "-f", "-"], yaml)
    }

    /// Runs `script` with `sh -c` in pod `pod`; its stdout.
    fn sh(&self, pod: &str, script: &str) -> Result<String> {
        self.kubectl(&["exec", pod, "--", "sh", "-c", script])
    }

    /// Fetches `url` `n` times from pod `pod` (a new connection each
    /// time); how often each answer came, [`FAILED`] counting failures.
    fn answers(&self, pod: &str, url: &str, n: usize) -> Result<BTreeMap<String, usize>> {
        // busybox wget's own -T crashes; `timeout` bounds a hung request.
        let script = format!(
            "for i in $(seq {n}); do timeout 5 wget -qO- {url} 2>/dev/null || echo {FAILED}; done"
        );
        let out = self.sh(pod, &script)?;
        let mut counts = BTreeMap::new();
        for line in out.lines().filter(|l| !l.is_empty()) {
            *counts.entry(line.to_string()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// Names of the pods with label `selector` that are Ready.
    fn ready_pods(&self, selector: &str) -> Result<BTreeSet<String>> {
        let out = self.kubectl(&[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
        ])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                // name and "True", with no deletion timestamp between.
                (fields.len() == 2 && fields[1] == "True").then(|| fields[0].to_string())
            })
            .collect())
    }

    /// Waits until exactly `n` pods of `selector` are Ready; their names.
    async fn wait_ready_pods(&self, selector: &str, n: usize) -> Result<BTreeSet<String>> {
        wait::until(&format!("{n} ready pods of {selector}"), FOLLOW, || {
            let ready = self.ready_pods(selector).ok();
            async move { ready.filter(|r| r.len() == n) }
        })
        .await
    }

    /// Waits until `n` requests from `pod` to `url` are answered by
    /// exactly the pods `expected`, each at least once, and fail none.
    async fn wait_served_by(
        &self,
        pod: &str,
        url: &str,
        n: usize,
        expected: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, usize>> {
        let what = format!("{url} from {pod} to be served by exactly {expected:?}");
        let mut last = BTreeMap::new();
        let found = wait::until(&what, FOLLOW, || {
            let counts = self.answers(pod, url, n).unwrap_or_default();
            last = counts.clone();
            let keys: BTreeSet<String> = counts.keys().cloned().collect();
            async move { (&keys == expected).then_some(counts) }
        })
        .await;
        found.with_context(|| format!("last answers: {last:?}"))
    }
}

/// The pod IPs of the Ready pods of `selector`.
fn pod_ips(c: &Cluster, selector: &str) -> Result<BTreeSet<String>> {
    let ready = c.ready_pods(selector)?;
    let mut ips = BTreeSet::new();
    for pod in ready {
        ips.insert(c.kubectl(&["get", "pod", &pod, "-o", "jsonpath={.status.podIP}"])?);
    }
    Ok(ips)
}

/// The addresses `nslookup NAME` prints for the name (after its
/// `Name:` line), from pod `pod`.
fn resolve(c: &Cluster, pod: &str, name: &str) -> Result<BTreeSet<String>> {
    let out = c
        .sh(pod, &format!("nslookup {name} 2>&1 || true"))
        .unwrap_or_default();
    let mut after_name = false;
    let mut found = BTreeSet::new();
    for line in out.lines() {
        if line.starts_with("Name:") {
            after_name = true;
        } else if after_name && let Some(addr) = line.strip_prefix("Address:") {
            found.insert(addr.trim().to_string());
        }
    }
    Ok(found)
}

/// One HTTP/1.0 GET from the host to `addr`; the body's first line.
async fn get_from_host(addr: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let attempt = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.ok()?;
        conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
        let mut text = String::new();
        conn.read_to_string(&mut text).await.ok()?;
        let body = text.split("\r\n\r\n").nth(1)?;
        body.lines().next().map(str::to_string)
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_on_three_nodes_is_reachable_by_name_balanced_and_follows_its_pods() -> Result<()>
{
    let mut home = CapstanHome::new()?;
    let progress = home.create_with(CLUSTER, &["--nodes", "3"])?;
    for line in [
        " ✓ Joining worker node svc-worker2",
        " ✓ Waiting for 3 nodes to be Ready",
    ] {
        assert!(progress.contains(line), "{line:?} missing:\n{progress}");
    }
    let c = Cluster { home };
    let nodes = c.kubectl(&["get", "nodes", "--no-headers"])?;
    let ready_nodes: Vec<&str> = nodes
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
        .collect();
    assert_eq!(ready_nodes.len(), 3, "{nodes}");

    // The Deployment and Service of the issue, made the way a user would.
    let command = web_command("$(hostname)");
    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image",
        BUSYBOX_IMAGE,
        "--replicas=3",
        "--",
        "sh",
        "-c",
        &command,
    ])?;
    c.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--port",
        "80",
        "--target-port",
        "8080",
    ])?;
    // Readiness from a file, so a pod can be made unready below.
    c.kubectl(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/template/spec/containers/0/readinessProbe","value":{"exec":{"command":["test","-f","/tmp/ready"]},"periodSeconds":1}}]"#,
    ])?;
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"])?;
    let web = c.wait_ready_pods("app=web", 3).await?;

    // A client pod on a worker node, away from at least two replicas.
    let client_node = "svc-worker2";
    c.kubectl(&[
        "run",
        "client",
        "--image",
        BUSYBOX_IMAGE,
        "--overrides",
        &format!(r#"{{"spec":{{"nodeName":"{client_node}"}}}}"#),
        "--",
        "sleep",
        "36000",
    ])?;
    c.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "--timeout=90s",
    ])?;
    let web_nodes = c.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ])?;
    assert!(
        web_nodes.split_whitespace().any(|n| n != client_node),
        "some replica is on another node than the client: {web_nodes}"
    );

    // By name, through cluster DNS and the proxy: every replica answers.
    let fqdn = "http://web.default.svc.cluster.local";
    let counts = c.wait_served_by("client", fqdn, 60, &web).await?;
    assert!(!counts.contains_key(FAILED), "{counts:?}");
    // The short name works through the pod's search path.
    let short = c.answers("client", "http://web", 5)?;
    assert!(short.keys().all(|k| web.contains(k)), "{short:?}");

    // Scaling is followed: 5 replicas, then 1.
    c.kubectl(&["scale", "deployment", "web", "--replicas=5"])?;
    let five = c.wait_ready_pods("app=web", 5).await?;
    c.wait_served_by("client", fqdn, 80, &five).await?;
    c.kubectl(&["scale", "deployment", "web", "--replicas=1"])?;
    let one = c.wait_ready_pods("app=web", 1).await?;
    c.wait_served_by("client", fqdn, 20, &one).await?;

    // A pod made unready leaves the rotation; the others keep serving.
    c.kubectl(&["scale", "deployment", "web", "--replicas=3"])?;
    let three = c.wait_ready_pods("app=web", 3).await?;
    c.wait_served_by("client", fqdn, 60, &three).await?;
    let unready = three.iter().next().context("a web pod")?.clone();
    c.sh(&unready, "rm /tmp/ready")?;
    let rest: BTreeSet<String> = three.iter().filter(|p| **p != unready).cloned().collect();
    c.wait_ready_pods("app=web", 2).await?;
    let counts = c.wait_served_by("client", fqdn, 40, &rest).await?;
    assert!(!counts.contains_key(&unready), "{counts:?}");
    c.sh(&unready, "touch /tmp/ready")?;
    c.wait_served_by("client", fqdn, 60, &three).await?;

    // NodePort: from the host, through every node's address.
    c.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--name",
        "web-nodeport",
        "--type",
        "NodePort",
        "--port",
        "80",
        "--target-port",
        "8080",
    ])?;
    let node_port = c.kubectl(&[
        "get",
        "service",
        "web-nodeport",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ])?;
    let node_ips = c.kubectl(&[
        "get",
        "nodes",
        "-o",
        r#"jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}"#,
    ])?;
    let node_ips: Vec<&str> = node_ips.split_whitespace().collect();
    assert_eq!(node_ips.len(), 3, "{node_ips:?}");
    for ip in &node_ips {
        let addr = format!("{ip}:{node_port}");
        let answer = wait::until(&format!("an answer from {addr}"), FOLLOW, || {
            let addr = addr.clone();
            async move { get_from_host(&addr).await }
        })
        .await?;
        assert!(three.contains(&answer), "{addr} answered {answer:?}");
    }

    // Session affinity pins a client to one replica.
    c.kubectl(&[
        "patch",
        "service",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP"}}"#,
    ])?;
    wait::until("session affinity to pin the client", FOLLOW, || {
        let counts = c.answers("client", fqdn, 20).unwrap_or_default();
        async move { (counts.len() == 1 && !counts.contains_key(FAILED)).then_some(()) }
    })
    .await?;
    let pinned = c.answers("client", fqdn, 40)?;
    assert_eq!(
        pinned.len(),
        1,
        "one replica answers every request: {pinned:?}"
    );

    // A headless Service resolves to the ready pods' own addresses.
    c.apply(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: web-headless
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - name: http
    port: 8080
"#,
    )?;
    let expected = pod_ips(&c, "app=web")?;
    assert_eq!(expected.len(), 3, "{expected:?}");
    wait::until(
        "the headless Service to resolve to the pods",
        FOLLOW,
        || {
            let found = resolve(&c, "client", "web-headless.default.svc.cluster.local").ok();
            let expected = expected.clone();
            async move { found.filter(|f| *f == expected).map(|_| ()) }
        },
    )
    .await?;

    // Seed 004's canary: two Deployments behind one Service split the
    // traffic by replica count (3 : 1).
    for (track, replicas) in [("stable", 3), ("canary", 1)] {
        c.apply(&format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop-{track}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: shop, track: {track}}}
  template:
    metadata:
      labels: {{app: shop, track: {track}}}
    spec:
      containers:
      - name: web
        image: {BUSYBOX_IMAGE}
        command: ["sh", "-c", "{}"]
        readinessProbe:
          exec: {{command: ["test", "-f", "/tmp/ready"]}}
          periodSeconds: 1
"#,
            web_command(track)
        ))?;
    }
    c.kubectl(&["create", "service", "clusterip", "shop", "--tcp=80:8080"])?;
    c.kubectl(&["set", "selector", "service", "shop", "app=shop"])?;
    c.wait_ready_pods("app=shop", 4).await?;
    let both: BTreeSet<String> = ["canary", "stable"].map(String::from).into();
    c.wait_served_by("client", "http://shop", 40, &both).await?;
    // A fresh sample once all four are in rotation: the one that showed
    // both may have started before the proxy had the last endpoint.
    let counts = c.answers("client", "http://shop", 200)?;
    let canary = counts.get("canary").copied().unwrap_or(0) as f64 / 200.0;
    if !(0.10..=0.45).contains(&canary) {
        bail!("the canary got {canary:.2} of the traffic, not about 0.25: {counts:?}");
    }
    Ok(())
}
