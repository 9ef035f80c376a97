//! `capstan-proxy`: the per-node Service proxy. Watches Services,
//! EndpointSlices and its Node through the API and programs one nftables
//! table (`ip capstan-proxy`) the way upstream kube-proxy's nftables mode
//! does. `model.rs` extracts what matters from API objects, `rules.rs`
//! turns it into an `nft` script (pure), `nft.rs` applies it,
//! `proxier.rs` runs the watches and the sync loop, `health.rs` and
//! `metrics.rs` serve upstream's plain-HTTP endpoints.

pub mod health;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod options;
pub mod proxier;
pub mod rules;

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::nft::Cidr;
use crate::options::Options;

/// The node name as upstream derives it: `--hostname-override`, else the
/// kernel's hostname, lower-cased.
pub fn node_name(opts: &Options) -> Result<String> {
    let name = match &opts.hostname_override {
        Some(n) if !n.trim().is_empty() => n.trim().to_string(),
        _ => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading the hostname")?
            .trim()
            .to_string(),
    };
    Ok(name.to_lowercase())
}

/// Runs the proxy until SIGTERM/SIGINT (or just cleans up with
/// `--cleanup`).
pub async fn run(opts: Options) -> Result<()> {
    if opts.proxy_mode != "nftables" {
        bail!(
            "--proxy-mode={:?} is not supported: capstan-proxy implements only \"nftables\"",
            opts.proxy_mode
        );
    }
    if opts.cleanup {
        nft::apply(&rules::cleanup_script(rules::TABLE)).await?;
        tracing::info!(table = rules::TABLE, "removed the proxy's nftables table");
        return Ok(());
    }
    let cluster_cidrs = opts
        .cluster_cidr
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| Cidr::parse(s).map(|c| c.to_string()))
        .collect::<Result<Vec<_>>>()
        .context("--cluster-cidr")?;
    let nodeport_cidrs = opts
        .nodeport_addresses
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| Cidr::parse(s))
        .collect::<Result<Vec<_>>>()
        .context("--nodeport-addresses")?;
    if opts.sync_period.is_zero() {
        bail!("--sync-period must be greater than 0");
    }
    let node_name = node_name(&opts)?;
    let cfg = rules::Config {
        table: rules::TABLE.to_string(),
        node_name: node_name.clone(),
        cluster_cidrs,
        masquerade_all: opts.masquerade_all,
        nodeport_set: !nodeport_cidrs.is_empty(),
    };
    let metrics = metrics::Metrics::new().context("registering metrics")?;
    // Upstream: unhealthy when a change waits longer than twice the sync
    // period.
    let health = Arc::new(health::Health::new(opts.sync_period * 2));
    health::serve_health(&opts.healthz_bind_address, health.clone(), metrics.clone()).await?;
    health::serve_metrics(&opts.metrics_bind_address, metrics.clone()).await?;
    let client = capstan_component_base::client::client(opts.kubeconfig.as_deref()).await?;
    tracing::info!(node = %node_name, table = rules::TABLE, "starting the nftables proxy");
    let proxier = proxier::Proxier::new(cfg, nodeport_cidrs, health, metrics);
    proxier.start_watches(client);
    proxier
        .run(
            opts.sync_period,
            opts.min_sync_period,
            capstan_component_base::shutdown_signal(),
        )
        .await;
    Ok(())
}
