//! `capstan-proxy-bench`: how long rule generation and `nft -f` take for
//! a large cluster (default 10,000 Services with 50,000 endpoints), as a
//! full sync that takes the table over and then as a partial sync after
//! one Service's endpoints change. Applies inside a throwaway network
//! namespace that is removed on exit, even on failure.

use std::net::Ipv4Addr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use capstan_proxy::model::{Endpoint, PortModel, Protocol};
use capstan_proxy::nft;
use capstan_proxy::rules::{self, Config, Existing, Plan, PortObjects, Scripts, SyncKind};
use clap::Parser;

/// Flags.
#[derive(Parser)]
#[command(name = "capstan-proxy-bench")]
struct Args {
    /// Number of Services (one TCP port each).
    #[arg(long, default_value_t = 10_000)]
    services: u32,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 5)]
    endpoints: u32,
    /// Give every tenth Service ClientIP affinity and a NodePort.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    mixed: bool,
}

/// The namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Result<Self> {
        let st = std::process::Command::new("ip")
            .args(["netns", "add", name])
            .status()?;
        if !st.success() {
            bail!("ip netns add {name} failed");
        }
        Ok(Netns(name.to_string()))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

fn port(i: u32, eps: u32, mixed: bool, generation: u32) -> PortModel {
    let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i);
    let special = mixed && i.is_multiple_of(10);
    PortModel {
        id: format!("bench/svc-{i}/tcp/http"),
        cluster_ips: vec![vip],
        external_ips: vec![],
        port: 80,
        protocol: Protocol::Tcp,
        node_port: special.then(|| 30000 + (i / 10 % 2768) as u16),
        affinity_timeout: special.then_some(10800),
        external_local: false,
        internal_local: false,
        endpoints: (0..eps)
            .map(|e| Endpoint {
                ip: Ipv4Addr::from(
                    u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i * eps + e + generation,
                ),
                port: 8080,
                ready: true,
                serving: true,
                terminating: false,
                node_name: Some(format!("node-{}", e % 3)),
            })
            .collect(),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let cfg = Config {
        table: rules::TABLE.into(),
        node_name: "node-0".into(),
        cluster_cidrs: vec!["10.128.0.0/9".into()],
        masquerade_all: false,
        nodeport_set: false,
    };
    let models: Vec<PortModel> = (0..args.services)
        .map(|i| port(i, args.endpoints, args.mixed, 0))
        .collect();

    let none = Existing::default();
    let t = Instant::now();
    let objects: Vec<PortObjects> = models.iter().map(|p| rules::render_port(&cfg, p)).collect();
    let full = rules::script(
        &cfg,
        &Plan {
            kind: SyncKind::Full,
            old: vec![],
            new: objects.iter().collect(),
            nodeport_ips: Some(&[]),
            existing: &none,
        },
    );
    let gen_full = t.elapsed();
    let chains: usize = objects.iter().map(|o| o.chains.len()).sum();
    let rules_n: usize = objects.iter().map(|o| o.rule_count()).sum();
    let elements: usize = objects.iter().map(|o| o.elements.len()).sum();

    let ns = Netns::create(&format!("capstan-proxy-bench-{}", std::process::id()))?;
    let apply = |s: Scripts| {
        let ns = ns.0.clone();
        async move {
            for tx in s.transactions() {
                nft::apply_in(Some(&ns), &tx).await?;
            }
            Ok::<(), anyhow::Error>(())
        }
    };
    let t = Instant::now();
    apply(full.clone())
        .await
        .context("applying the full sync")?;
    let apply_full = t.elapsed();

    // Full resync in place of the same table (what runs hourly and when a
    // restarted proxy takes its table over).
    let t = Instant::now();
    let existing = nft::existing(Some(&ns.0), rules::TABLE).await?;
    let list_existing = t.elapsed();
    let t = Instant::now();
    let resync = rules::script(
        &cfg,
        &Plan {
            kind: SyncKind::Full,
            old: objects.iter().collect(),
            new: objects.iter().collect(),
            nodeport_ips: Some(&[]),
            existing: &existing,
        },
    );
    let gen_resync = t.elapsed();
    let t = Instant::now();
    apply(resync)
        .await
        .context("applying the in-place full resync")?;
    let apply_resync = t.elapsed();

    // One Service's endpoints change.
    let t = Instant::now();
    let changed = rules::render_port(&cfg, &port(0, args.endpoints, args.mixed, 1_000_000));
    let partial = rules::script(
        &cfg,
        &Plan {
            kind: SyncKind::Partial,
            old: vec![&objects[0]],
            new: vec![&changed],
            nodeport_ips: None,
            existing: &none,
        },
    );
    let gen_partial = t.elapsed();
    let partial_lines = partial.prepare.lines().count() + partial.commit.lines().count();
    let t = Instant::now();
    apply(partial).await.context("applying the partial sync")?;
    let apply_partial = t.elapsed();
    drop(ns);

    println!(
        "services={} endpoints={} chains={chains} rules={rules_n} map_elements={elements} script_bytes={}",
        args.services,
        args.services * args.endpoints,
        full.prepare.len() + full.commit.len()
    );
    println!(
        "full sync (new table):  generate {:>9.3} ms   nft -f {:>9.3} ms",
        gen_full.as_secs_f64() * 1e3,
        apply_full.as_secs_f64() * 1e3
    );
    println!(
        "full resync in place:  generate {:>9.3} ms   nft -f {:>9.3} ms   (listing the table {:.3} ms)",
        gen_resync.as_secs_f64() * 1e3,
        apply_resync.as_secs_f64() * 1e3,
        list_existing.as_secs_f64() * 1e3
    );
    println!(
        "partial (1 service):   generate {:>9.3} ms   nft -f {:>9.3} ms   ({} script lines)",
        gen_partial.as_secs_f64() * 1e3,
        apply_partial.as_secs_f64() * 1e3,
        partial_lines
    );
    Ok(())
}
