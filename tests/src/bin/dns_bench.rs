//! `capstan-dns-bench`: cluster DNS queries per second and latency, on a
//! real apiserver and etcd with `--services` ClusterIP Services, against
//! the limit measured in the same run: the same load (same client, same
//! concurrency, same duration) on a minimal hickory server answering one
//! static record, which does no work beyond the DNS library itself.
//!
//! Run: `cargo build --release -p capstan-apiserver -p capstan-dns -p capstan-tests --bins && target/release/capstan-dns-bench`

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use capstan_tests::bench::run_all;
use capstan_tests::dns::{StaticDns, http_get, query};
use capstan_tests::fixture::ControlPlane;
use capstan_tests::wait;
use clap::Parser;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, PostParams};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Capstan cluster DNS throughput and latency")]
struct Args {
    /// ClusterIP Services in the cluster (queried uniformly).
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Concurrent clients, each with one outstanding query.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of load per measured server.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// What one load run measured.
struct Run {
    qps: f64,
    p50: Duration,
    p99: Duration,
    failed: usize,
}

/// A query's wire bytes (id 0; each send stamps its own id).
fn encoded(name: &str) -> Result<Vec<u8>> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
    Ok(m.to_vec()?)
}

/// `concurrency` clients each asking `names` round-robin over UDP for
/// `seconds`; an answer counts when it is NOERROR with at least one
/// record.
async fn load(
    server: SocketAddr,
    names: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
    seconds: u64,
) -> Result<Run> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let names = names.clone();
        tasks.push(tokio::spawn(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
            sock.connect(server).await?;
            let mut lat = Vec::new();
            let mut failed = 0usize;
            let mut buf = vec![0u8; 4096];
            let mut i = w;
            let mut id: u16 = (w as u16).wrapping_mul(1000);
            while Instant::now() < deadline {
                let mut q = names[i % names.len()].clone();
                i += concurrency;
                id = id.wrapping_add(1);
                q[..2].copy_from_slice(&id.to_be_bytes());
                let t = Instant::now();
                sock.send(&q).await?;
                let ok = loop {
                    match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
                        Ok(Ok(n)) if n >= 12 && buf[..2] == id.to_be_bytes() => {
                            let rcode = buf[3] & 0x0f;
                            let answers = u16::from_be_bytes([buf[6], buf[7]]);
                            break rcode == 0 && answers > 0;
                        }
                        Ok(Ok(_)) => continue,
                        _ => break false,
                    }
                };
                if ok {
                    lat.push(t.elapsed());
                } else {
                    failed += 1;
                }
            }
            anyhow::Ok((lat, failed))
        }));
    }
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (lat, f) = t.await??;
        all.extend(lat);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    if all.is_empty() {
        bail!("no query to {server} succeeded");
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Ok(Run {
        qps: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        failed,
    })
}

/// The static limit server on its own two-thread runtime, so it gets the
/// same kind of scheduler the measured server has.
fn start_limit_server() -> Result<(SocketAddr, std::sync::mpsc::Sender<()>)> {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = addr_tx.send(Err(anyhow::Error::from(e)));
                return;
            }
        };
        let server = rt.block_on(StaticDns::start(
            "static.bench.",
            Ipv4Addr::new(10, 0, 0, 1),
        ));
        match server {
            Ok(s) => {
                let _ = addr_tx.send(Ok(s.addr));
                let _ = stop_rx.recv();
                drop(s);
            }
            Err(e) => {
                let _ = addr_tx.send(Err(e));
            }
        }
    });
    let addr = addr_rx.recv().context("limit server thread ended")??;
    Ok((addr, stop_tx))
}

fn print(label: &str, r: &Run) {
    println!(
        "| {label} | {:.0} | {:.3} | {:.3} | {} |",
        r.qps,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.failed
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "bench"}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), "bench");
    run_all(args.services, 32, |i| {
        let services = services.clone();
        async move {
            let svc: Service = serde_json::from_value(json!({
                "metadata": {"name": format!("svc-{i}")},
                "spec": {"ports": [{"name": "http", "port": 80}]},
            }))?;
            services.create(&PostParams::default(), &svc).await?;
            Ok(())
        }
    })
    .await?;

    // capstan-dns forwards to the limit server (unused by the load).
    let (limit_addr, stop_limit) = start_limit_server()?;
    let resolv = cp.dir.path().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {limit_addr}\n"))?;
    let (dns_proc, port, health_port) = cp.start_dns(&resolv, &[])?;
    let dns = SocketAddr::from(([127, 0, 0, 1], port));
    let health = SocketAddr::from(([127, 0, 0, 1], health_port));
    wait::until(
        "capstan-dns to be ready",
        Duration::from_secs(60),
        || async { matches!(http_get(health, "/readyz").await, Ok((200, _))).then_some(()) },
    )
    .await
    .with_context(|| dns_proc.log_tail())?;
    let last = format!("svc-{}.bench.svc.cluster.local.", args.services - 1);
    wait::until(
        "every Service in the zone",
        Duration::from_secs(60),
        || async {
            query(dns, &last, RecordType::A)
                .await
                .ok()
                .filter(|m| !m.answers.is_empty())
        },
    )
    .await?;

    let names: Vec<Vec<u8>> = (0..args.services)
        .map(|i| encoded(&format!("svc-{i}.bench.svc.cluster.local.")))
        .collect::<Result<_>>()?;
    let limit_names = Arc::new(vec![encoded("static.bench.")?]);

    let limit = load(limit_addr, limit_names, args.concurrency, args.seconds).await?;
    let measured = load(dns, Arc::new(names), args.concurrency, args.seconds).await?;
    let _ = stop_limit.send(());

    println!(
        "capstan-dns: {} Services, {} concurrent UDP clients, {} s per server",
        args.services, args.concurrency, args.seconds
    );
    println!("| server | queries/s | p50 ms | p99 ms | failed |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    print(
        "capstan-dns (A for svc-N.bench.svc.cluster.local)",
        &measured,
    );
    print("limit: hickory server, one static record", &limit);
    println!(
        "ratio to the limit: throughput {:.2}, p99 latency {:.2}x",
        measured.qps / limit.qps,
        measured.p99.as_secs_f64() / limit.p99.as_secs_f64()
    );
    drop(dns_proc);
    Ok(())
}
