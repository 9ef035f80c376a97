//! `capstan-pod-startup-bench`: pod startup latency on a real kubelet and
//! containerd — from the pod's create call until a watch sees it Running —
//! against the limit measured in the same run: containerd alone running
//! the same sandbox and container (the kubelet's own CRI configs for the
//! same pod) through CRI, with no apiserver or kubelet in the loop. Pods
//! start one after another, so each latency is one pod's own.
//!
//! Run (as root, with containerd, runc, the CNI plugins and busybox-static
//! installed): `cargo build --release --workspace --bins &&
//! target/release/capstan-pod-startup-bench` (prints a Markdown table for
//! docs/benchmarks.md).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use capstan_kubelet::pods::{container, sandbox};
use capstan_tests::fixture::ControlPlane;
use capstan_tests::node::{BUSYBOX, Node};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

/// Pods started on each path before measuring.
const WARM_UP: usize = 3;

#[derive(Parser, Debug)]
#[command(about = "Capstan pod startup latency")]
struct Args {
    /// Pods started, one after another, in each run.
    #[arg(long, default_value_t = 50)]
    pods: usize,
}

fn pod(name: &str, node: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("bench-{name}")},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never",
                "command": ["sleep", "3600"]}]},
    }))?)
}

fn is_running(p: &Pod) -> bool {
    let status = p.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .all(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
            })
}

/// Capstan: creates pod `name` and waits for a watch to see it Running.
async fn one_through_capstan(pods: &Api<Pod>, node: &str, name: &str) -> Result<Duration> {
    let watch = pods
        .watch(
            &WatchParams::default().fields(&format!("metadata.name={name}")),
            "0",
        )
        .await?;
    let mut watch = std::pin::pin!(watch);
    let mut spec = pod(name, node)?;
    spec.metadata.uid = None;
    let started = Instant::now();
    pods.create(&PostParams::default(), &spec).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let event = tokio::time::timeout_at(deadline, watch.next())
            .await
            .with_context(|| format!("{name} did not start"))?;
        match event {
            Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p))) if is_running(&p) => {
                return Ok(started.elapsed());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("watching {name}: {e}"),
            None => bail!("the watch of {name} ended"),
        }
    }
}

/// The limit: containerd running the same sandbox + container through CRI
/// (the kubelet's own configs for the same pod); returns the time and the
/// sandbox, removed at the end.
async fn one_through_containerd(
    node: &Node,
    settings: &sandbox::SandboxSettings,
    name: &str,
) -> Result<(Duration, String)> {
    let p = pod(name, &node.name)?;
    let c = p
        .spec
        .as_ref()
        .map(|s| s.containers[0].clone())
        .context("container")?;
    let (sandbox_config, _) = sandbox::config(&p, 0, settings).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(std::path::Path::new(&sandbox_config.log_directory).join("main"))?;
    let config = container::config(&p, &c, 0, Vec::new(), Vec::new(), BUSYBOX, 0);
    let started = Instant::now();
    let id = node.cri.run_pod_sandbox(sandbox_config.clone()).await?;
    let cid = node
        .cri
        .create_container(&id, config, sandbox_config)
        .await?;
    node.cri.start_container(&cid).await?;
    Ok((started.elapsed(), id))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let cp = ControlPlane::start(&[]).await?;
    let node = Node::start(&cp, "bench-node", &[]).await?;
    let client = cp.client().await?;
    node.wait_ready(&client).await?;
    let settings = sandbox::SandboxSettings {
        pod_log_dir: node.pod_log_dir.clone(),
        cluster_dns: Vec::new(),
        cluster_domain: "cluster.local".into(),
        cgroup_parent: None,
        host_resolv_conf: "/etc/resolv.conf".into(),
        node_ips: vec!["127.0.0.1".into()],
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Warm both paths up (first sandboxes create the CNI bridge, load the
    // image's snapshot...), then alternate them so both see the same
    // machine.
    let mut sandboxes = Vec::new();
    for i in 0..WARM_UP {
        sandboxes.push(
            one_through_containerd(&node, &settings, &format!("warm-raw-{i}"))
                .await?
                .1,
        );
        one_through_capstan(&pods, &node.name, &format!("warm-{i}")).await?;
    }
    eprintln!(
        "{} pods each through containerd alone and through Capstan, alternating",
        args.pods
    );
    let (mut raw, mut capstan) = (Vec::new(), Vec::new());
    for i in 0..args.pods {
        let (t, id) = one_through_containerd(&node, &settings, &format!("raw-{i}")).await?;
        raw.push(t);
        sandboxes.push(id);
        capstan.push(one_through_capstan(&pods, &node.name, &format!("startup-{i}")).await?);
    }
    for id in sandboxes {
        node.cri.stop_pod_sandbox(&id).await?;
        node.cri.remove_pod_sandbox(&id).await?;
    }
    let gone = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    pods.delete_collection(&gone, &Default::default()).await?;
    raw.sort();
    capstan.sort();
    println!(
        "| measurement ({} pods, one at a time) | Capstan: create → Running (watch) | limit: containerd sandbox + container (CRI) | ratio (limit ÷ Capstan) | Capstan ÷ limit |",
        args.pods
    );
    println!("| --- | --- | --- | --- | --- |");
    for p in [50.0, 99.0] {
        let (c, r) = (percentile(&capstan, p), percentile(&raw, p));
        println!(
            "| p{p:.0} | {} | {} | {:.2} | {:.2} |",
            ms(c),
            ms(r),
            r.as_secs_f64() / c.as_secs_f64(),
            c.as_secs_f64() / r.as_secs_f64()
        );
    }
    Ok(())
}
