//! `capstan-sched-bench`: scheduler throughput in the style of upstream's
//! scheduler_perf `SchedulingBasic` and `SchedulingPodAntiAffinity`, on a
//! real apiserver and etcd, against the limit measured in the same run:
//! the apiserver's raw binding rate (the same pods bound directly through
//! the `binding` subresource at the scheduler's concurrency, no decisions).
//!
//! Run: `cargo build --release --workspace --bins && target/release/capstan-sched-bench`
//! (prints a Markdown table for docs/benchmarks.md).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use capstan_tests::bench::run_all;
use capstan_tests::fixture::ControlPlane;
use clap::Parser;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Capstan scheduler throughput")]
struct Args {
    /// Nodes in the cluster (upstream: 5000).
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pending pods per measured run (and bound directly for the limit).
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent API clients while creating objects.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Anti-affinity groups: pods of a group repel each other per node, so
    /// `nodes × groups` must be at least `pods`.
    #[arg(long, default_value_t = 4)]
    anti_affinity_groups: usize,
}

/// The scheduler's bindings in flight (its `MAX_BINDINGS_IN_FLIGHT`); the
/// limit run binds at the same concurrency.
const BIND_CONCURRENCY: usize = 256;

/// Upstream's node-default.yaml: 4 CPUs, 32Gi, 110 pods.
fn node(name: &str) -> Result<Node> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
    }))?)
}

/// Upstream's pod-default.yaml (100m CPU, 500Mi), plus `extra` spec.
fn pod(name: &str, labels: Value, extra: &Value) -> Result<Pod> {
    let mut spec = extra.clone();
    spec["containers"] = json!([{"name": "pause", "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]);
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }))?)
}

async fn create_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

async fn create_pods(
    client: &kube::Client,
    ns: &str,
    n: usize,
    concurrency: usize,
    spec_of: impl Fn(usize) -> (Value, Value),
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    run_all(n, concurrency, |i| {
        let pods = pods.clone();
        let (labels, extra) = spec_of(i);
        async move {
            pods.create(
                &PostParams::default(),
                &pod(&format!("p-{i}"), labels, &extra)?,
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    Ok(())
}

/// Successful bindings the scheduler has counted so far (its e2e latency
/// histogram's count), read from its HTTPS metrics endpoint.
async fn bound_so_far(port: u16) -> Result<f64> {
    let out = tokio::process::Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "5",
            &format!("https://127.0.0.1:{port}/metrics"),
        ])
        .output()
        .await?;
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("scheduler_pod_scheduling_sli_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Waits until `target` pods in total are bound; returns the rate over the
/// window from the first to the last binding of this run, sampled every
/// 100 ms.
async fn measure(port: u16, before: f64, n: usize, timeout: Duration) -> Result<f64> {
    let target = before + n as f64;
    let deadline = Instant::now() + timeout;
    let mut first: Option<Instant> = None;
    // Sample at a fixed rate, however long one scrape takes.
    let mut samples = tokio::time::interval(Duration::from_millis(100));
    loop {
        samples.tick().await;
        let now = Instant::now();
        let bound = bound_so_far(port).await?;
        if bound > before && first.is_none() {
            first = Some(now);
        }
        if bound >= target {
            let window = first.map(|f| now.duration_since(f)).unwrap_or_default();
            return Ok(n as f64 / window.as_secs_f64().max(1e-3));
        }
        if now > deadline {
            bail!(
                "only {} of {n} pods bound after {timeout:?}",
                bound - before
            );
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.nodes * args.anti_affinity_groups >= args.pods,
        "{} nodes × {} groups cannot hold {} anti-affine pods",
        args.nodes,
        args.anti_affinity_groups,
        args.pods
    );
    let cp = ControlPlane::start(&["--etcd-compaction-interval=0"]).await?;
    let client = cp.client().await?;
    let nodes: Api<Node> = Api::all(client.clone());
    eprintln!("creating {} nodes", args.nodes);
    run_all(args.nodes, args.concurrency, |i| {
        let nodes = nodes.clone();
        async move {
            let name = format!("node-{i}");
            nodes.create(&PostParams::default(), &node(&name)?).await?;
            let status = json!({"status": {
                "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}]}});
            nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await?;
            Ok(())
        }
    })
    .await?;

    // The limit: the same number of pods bound directly, no decisions.
    eprintln!("limit: binding {} pods directly", args.pods);
    create_namespace(&client, "limit").await?;
    create_pods(&client, "limit", args.pods, args.concurrency, |_| {
        (json!({}), json!({}))
    })
    .await?;
    let limit_pods: Api<Pod> = Api::namespaced(client.clone(), "limit");
    let nodes_n = args.nodes;
    let took = run_all(args.pods, BIND_CONCURRENCY, |i| {
        let pods = limit_pods.clone();
        async move {
            let binding = json!({"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": format!("p-{i}")},
                "target": {"apiVersion": "v1", "kind": "Node", "name": format!("node-{}", i % nodes_n)}});
            let _: Value = pods
                .create_subresource("binding", &format!("p-{i}"), &PostParams::default(), &binding)
                .await?;
            Ok(())
        }
    })
    .await?;
    let limit = args.pods as f64 / took.as_secs_f64();

    // SchedulingBasic.
    create_namespace(&client, "basic").await?;
    create_pods(&client, "basic", args.pods, args.concurrency, |_| {
        (json!({}), json!({}))
    })
    .await?;
    eprintln!("starting the scheduler");
    let (scheduler, port) = cp.start_scheduler(&["--leader-elect=false"])?;
    let basic = measure(port, 0.0, args.pods, Duration::from_secs(600))
        .await
        .with_context(|| scheduler.log_tail())?;

    // SchedulingPodAntiAffinity: pods repel their own group per node.
    // Created with no scheduler running, then a fresh one, so both runs
    // measure decisions and bindings, not pod creation.
    drop(scheduler);
    create_namespace(&client, "anti").await?;
    let groups = args.anti_affinity_groups;
    create_pods(&client, "anti", args.pods, args.concurrency, |i| {
        let group = format!("g{}", i % groups);
        (
            json!({"group": group}),
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"group": group}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
        )
    })
    .await?;
    let (scheduler, port) = cp.start_scheduler(&["--leader-elect=false"])?;
    let anti = measure(port, 0.0, args.pods, Duration::from_secs(1200))
        .await
        .with_context(|| scheduler.log_tail())?;

    println!("| workload | Capstan pods/s | limit: raw bindings/s (same run) | ratio |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| SchedulingBasic, {} nodes, {} pods | {basic:.0} | {limit:.0} | {:.2} |",
        args.nodes,
        args.pods,
        basic / limit
    );
    println!(
        "| SchedulingPodAntiAffinity, {} nodes, {} pods ({} groups) | {anti:.0} | {limit:.0} | {:.2} |",
        args.nodes,
        args.pods,
        groups,
        anti / limit
    );
    Ok(())
}
