//! `capstan-rollout-bench`: how long a large Deployment takes to come up
//! and to roll to a new template, on a real apiserver, etcd, scheduler and
//! controller-manager with hollow nodes playing the kubelets, against the
//! limit measured in the same run: the apiserver creating (and, for the
//! rollout, also deleting) the same number of pods directly, at the
//! controller's batch concurrency, with no controller, scheduler or
//! kubelet in the loop.
//!
//! Run: `cargo build --release --workspace --bins && target/release/capstan-rollout-bench`
//! (prints a Markdown table for docs/benchmarks.md).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use capstan_tests::bench::run_all;
use capstan_tests::fixture::ControlPlane;
use capstan_tests::hollow::{HollowNodes, node};
use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Capstan Deployment rollout time")]
struct Args {
    /// Replicas of the Deployment.
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// Hollow nodes the pods spread over.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Concurrent creates and deletes in the limit run.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

/// The pod template both runs use.
fn template(image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image,
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    })
}

async fn create_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// The limit: `n` pods created, then deleted, straight through the API
/// (bound to a node nobody runs, so no scheduler or kubelet touches them).
async fn raw_create_and_delete(
    client: &kube::Client,
    n: usize,
    concurrency: usize,
) -> Result<(Duration, Duration)> {
    create_namespace(client, "limit").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "limit");
    let mut pod = template("registry.example/web:1");
    pod["spec"]["nodeName"] = json!("nowhere");
    let created = run_all(n, concurrency, |i| {
        let pods = pods.clone();
        let mut pod = pod.clone();
        async move {
            pod["metadata"]["name"] = json!(format!("p-{i}"));
            pods.create(&PostParams::default(), &serde_json::from_value(pod)?)
                .await?;
            Ok(())
        }
    })
    .await?;
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let deleted = run_all(n, concurrency, |i| {
        let pods = pods.clone();
        let now = now.clone();
        async move {
            pods.delete(&format!("p-{i}"), &now).await?;
            Ok(())
        }
    })
    .await?;
    Ok((created, deleted))
}

/// Waits until the Deployment reports `replicas` updated, available pods
/// of its current generation and no others; returns how long from `start`.
async fn wait_rolled_out(
    deployments: &Api<Deployment>,
    replicas: usize,
    start: Instant,
    timeout: Duration,
) -> Result<Duration> {
    let want = Some(replicas as i32);
    let mut samples = tokio::time::interval(Duration::from_millis(100));
    loop {
        samples.tick().await;
        let d = deployments.get("web").await?;
        let status = d.status.clone().unwrap_or_default();
        if status.observed_generation == d.metadata.generation
            && status.updated_replicas == want
            && status.available_replicas == want
            && status.replicas == want
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!("not rolled out after {timeout:?}: {status:?}");
        }
    }
}

/// Waits until only `n` pods are left in `ns` (old ones finished
/// terminating); returns how long from `start`.
async fn wait_pods_left(pods: &Api<Pod>, n: usize, start: Instant) -> Result<Duration> {
    let mut samples = tokio::time::interval(Duration::from_millis(250));
    loop {
        samples.tick().await;
        if pods.list(&ListParams::default()).await?.items.len() == n {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("old pods still there after 10 minutes");
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let cp = ControlPlane::start(&["--etcd-compaction-interval=0"]).await?;
    let client = cp.client().await?;
    eprintln!("registering {} hollow nodes", args.nodes);
    let nodes = (0..args.nodes)
        .map(|i| node(&format!("hollow-{i}"), json!({}), json!([])))
        .collect::<Result<Vec<_>>>()?;
    let _hollow = HollowNodes::start(client.clone(), nodes).await?;

    eprintln!("limit: {} pods created and deleted directly", args.replicas);
    let (raw_create, raw_delete) =
        raw_create_and_delete(&client, args.replicas, args.concurrency).await?;

    let (_scheduler, _) = cp.start_scheduler(&["--leader-elect=false"])?;
    let (_cm, _) = cp.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers=deployment,replicaset",
    ])?;
    create_namespace(&client, "bench").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "bench");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bench");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": args.replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template("registry.example/web:1"),
        },
    }))?;
    eprintln!("creating a {}-replica Deployment", args.replicas);
    let start = Instant::now();
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let up = wait_rolled_out(&deployments, args.replicas, start, Duration::from_secs(900)).await?;

    eprintln!("rolling it to a new template");
    let start = Instant::now();
    let patch = json!({"spec": {"template": template("registry.example/web:2")}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    let rolled =
        wait_rolled_out(&deployments, args.replicas, start, Duration::from_secs(900)).await?;
    let drained = wait_pods_left(&pods, args.replicas, start).await?;

    let n = args.replicas;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let limit_roll = raw_create + raw_delete;
    println!("| measurement | Capstan | limit (same run) | ratio |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| {n}-replica Deployment to all available, {} hollow nodes | {:.1} s ({:.0} pods/s) | raw creates {:.1} s ({:.0} pods/s) | {:.2} |",
        args.nodes,
        up.as_secs_f64(),
        rate(up),
        raw_create.as_secs_f64(),
        rate(raw_create),
        raw_create.as_secs_f64() / up.as_secs_f64()
    );
    println!(
        "| rolling it to a new template (25% surge/unavailable) | {:.1} s (old pods gone at {:.1} s) | raw creates + deletes {:.1} s | {:.2} |",
        rolled.as_secs_f64(),
        drained.as_secs_f64(),
        limit_roll.as_secs_f64(),
        limit_roll.as_secs_f64() / rolled.as_secs_f64()
    );
    Ok(())
}
