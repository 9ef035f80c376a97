//! `capstan-bench`: apiserver throughput and latency against the limits of
//! the same machine, measured in the same run.
//!
//! - pod creates/s through the apiserver ÷ raw etcd puts/s of the same
//!   payload at the same concurrency;
//! - LIST of N pods (consistent, from etcd; and `resourceVersion=0`, from
//!   the watch cache) ÷ a raw etcd range read of the same keys.
//!
//! Run: `cargo build --release --workspace --bins && target/release/capstan-bench`
//! (prints a Markdown table for docs/benchmarks.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use capstan_tests::bench::run_all;
use capstan_tests::fixture::ControlPlane;
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Capstan apiserver benchmarks")]
struct Args {
    /// Objects written in the throughput runs.
    #[arg(long, default_value_t = 5000)]
    writes: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Pods listed in the LIST runs.
    #[arg(long, default_value_t = 10_000)]
    list_pods: usize,
    /// Repetitions of each LIST (the median is reported).
    #[arg(long, default_value_t = 10)]
    list_runs: usize,
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench", "tier": "web"}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:1.0", "ports": [{"containerPort": 8080}],
                  "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
    }))
    .unwrap_or_default()
}

/// Runs `total` jobs with `concurrency` at a time; returns jobs per second.
async fn rate<F, Fut>(total: usize, concurrency: usize, job: F) -> Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let took = run_all(total, concurrency, job).await?;
    Ok(total as f64 / took.as_secs_f64())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time_runs<F, Fut>(runs: usize, f: F) -> Result<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize>>,
{
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        f().await?;
        times.push(started.elapsed());
    }
    Ok(median(times))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let cp = ControlPlane::start(&["--etcd-compaction-interval=0"]).await?;
    let client = cp.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let payload = Arc::new(serde_json::to_vec(&pod("payload"))?);

    // Raw etcd puts of the same payload, same concurrency.
    let etcd = cp.etcd.client().await?;
    let etcd_rate = rate(args.writes, args.concurrency, |i| {
        let mut kv = etcd.kv_client();
        let payload = payload.clone();
        async move {
            kv.put(format!("/bench/raw/{i}"), payload.as_slice(), None)
                .await?;
            Ok(())
        }
    })
    .await
    .context("raw etcd puts")?;

    // Pod creates through the apiserver.
    let api_rate = rate(args.writes, args.concurrency, |i| {
        let pods = pods.clone();
        async move {
            pods.create(&PostParams::default(), &pod(&format!("create-{i}")))
                .await?;
            Ok(())
        }
    })
    .await
    .with_context(|| cp.apiserver_log_tail())?;

    // Fill up to list_pods pods, then time LISTs.
    let have = args.writes.min(args.list_pods);
    rate(args.list_pods - have, args.concurrency, |i| {
        let pods = pods.clone();
        async move {
            pods.create(&PostParams::default(), &pod(&format!("list-{i}")))
                .await?;
            Ok(())
        }
    })
    .await?;
    let expected = args.list_pods.max(args.writes);
    let raw_list = time_runs(args.list_runs, || {
        let mut kv = etcd
            .kv_client()
            .max_decoding_message_size(i32::MAX as usize);
        async move {
            let opts = etcd_client::GetOptions::new().with_prefix();
            Ok(kv
                .get("/registry/pods/default/", Some(opts))
                .await?
                .kvs()
                .len())
        }
    })
    .await?;
    let consistent = time_runs(args.list_runs, || {
        let pods = pods.clone();
        async move {
            let n = pods.list(&ListParams::default()).await?.items.len();
            anyhow::ensure!(n == expected, "listed {n} pods, expected {expected}");
            Ok(n)
        }
    })
    .await
    .with_context(|| cp.apiserver_log_tail())?;
    let cached = time_runs(args.list_runs, || {
        let client = client.clone();
        async move {
            let req = http::Request::get("/api/v1/namespaces/default/pods?resourceVersion=0")
                .body(Vec::new())?;
            let text = client.request_text(req).await?;
            let list: serde_json::Value = serde_json::from_str(&text)?;
            let n = list["items"].as_array().map(Vec::len).context("items")?;
            anyhow::ensure!(
                n == expected,
                "listed {n} pods from the cache, expected {expected}"
            );
            Ok(n)
        }
    })
    .await?;

    println!("| measurement | Capstan | limit (same run) | ratio |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| pod creates/s, {} writers ({} writes) | {api_rate:.0}/s | raw etcd puts {etcd_rate:.0}/s | {:.2} |",
        args.concurrency,
        args.writes,
        api_rate / etcd_rate
    );
    println!(
        "| LIST {expected} pods, consistent (etcd) | {:.1} ms | raw etcd range {:.1} ms | {:.2} |",
        consistent.as_secs_f64() * 1e3,
        raw_list.as_secs_f64() * 1e3,
        raw_list.as_secs_f64() / consistent.as_secs_f64()
    );
    println!(
        "| LIST {expected} pods, resourceVersion=0 (watch cache) | {:.1} ms | raw etcd range {:.1} ms | {:.2} |",
        cached.as_secs_f64() * 1e3,
        raw_list.as_secs_f64() * 1e3,
        raw_list.as_secs_f64() / cached.as_secs_f64()
    );
    Ok(())
}
