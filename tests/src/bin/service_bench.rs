//! `capstan-service-bench`: HTTP request throughput through a Service's
//! ClusterIP (the proxy's nftables DNAT) divided by throughput straight
//! to the pod's IP, measured in the same run on a two-node local cluster
//! (`capstan create cluster --nodes 2`): a busybox httpd pod on the
//! worker, the load from the control-plane node's network namespace, the
//! two targets alternating round by round.
//!
//! Run (as root, with everything `capstan create cluster` needs):
//! `cargo build --release --workspace --bins &&
//! target/release/capstan-service-bench` (prints a Markdown table).

use std::os::fd::AsRawFd as _;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use capstan::runtime::images::BUSYBOX_IMAGE;
use capstan_tests::bench::run_all;
use capstan_tests::local_cluster::CapstanHome;
use clap::Parser;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Parser, Debug)]
#[command(about = "Capstan Service VIP throughput against the pod IP")]
struct Args {
    /// Requests per round.
    #[arg(long, default_value_t = 4000)]
    requests: usize,
    /// Connections in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Rounds per target (alternating).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// One HTTP/1.0 GET on a new connection; fails unless the body arrives.
async fn get(addr: std::net::SocketAddr) -> Result<()> {
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).await?;
    if !reply.starts_with(b"HTTP/1.1 200") && !reply.starts_with(b"HTTP/1.0 200") {
        bail!("{addr} answered {:?}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}

/// Requests per second for each round against each target, measured from
/// the network namespace at `netns`.
fn measure(
    netns: std::path::PathBuf,
    targets: [std::net::SocketAddr; 2],
    args: &Args,
) -> Result<[Vec<f64>; 2]> {
    let (requests, concurrency, rounds) = (args.requests, args.concurrency, args.rounds);
    std::thread::spawn(move || -> Result<[Vec<f64>; 2]> {
        let ns = std::fs::File::open(&netns).with_context(|| format!("{}", netns.display()))?;
        // SAFETY: setns(2) on this thread only, with an open namespace fd.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let mut rates = [Vec::new(), Vec::new()];
            // A warm-up round each, not counted.
            for round in 0..=rounds {
                for (i, target) in targets.iter().enumerate() {
                    let took = run_all(requests, concurrency, |_| get(*target)).await?;
                    if round > 0 {
                        rates[i].push(requests as f64 / took.as_secs_f64());
                    }
                }
            }
            Ok(rates)
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the load thread panicked"))?
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut home = CapstanHome::new()?;
    home.create_with("bench", &["--nodes", "2"])?;
    let k = |a: &[&str]| home.kubectl("bench", a);
    k(&[
        "run",
        "web",
        "--image",
        BUSYBOX_IMAGE,
        "--overrides",
        r#"{"spec":{"nodeName":"bench-worker"}}"#,
        "--",
        "sh",
        "-c",
        "mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www",
    ])?;
    k(&[
        "expose",
        "pod",
        "web",
        "--port",
        "80",
        "--target-port",
        "8080",
    ])?;
    k(&["wait", "--for=condition=Ready", "pod/web", "--timeout=120s"])?;
    let pod_ip = k(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"])?;
    let vip = k(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"])?;
    let direct: std::net::SocketAddr = format!("{pod_ip}:8080").parse()?;
    let service: std::net::SocketAddr = format!("{vip}:80").parse()?;
    let dir = capstan::cluster::layout::ClusterDir::new(&home.capstan_home(), "bench")?;
    let netns = capstan::cluster::netns::namespace_path(&dir, 0);
    // The proxy programs the Service a moment after it exists.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let probe = Args {
        requests: 1,
        concurrency: 1,
        rounds: 0,
    };
    while let Err(e) = measure(netns.clone(), [service, service], &probe) {
        if tokio::time::Instant::now() >= deadline {
            bail!("the Service {service} never answered: {e:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let [straight, through] = measure(netns, [direct, service], &args)?;
    let (s, t) = (median(&straight), median(&through));
    println!(
        "{} requests x {} rounds, {} in flight, new connection each\n",
        args.requests, args.rounds, args.concurrency
    );
    println!("| target | requests/s (median) |\n| --- | --- |");
    println!("| pod IP {direct} (limit) | {s:.0} |");
    println!("| Service VIP {service} | {t:.0} |");
    println!("| **VIP ÷ pod IP** | **{:.2}** |", t / s);
    Ok(())
}
