//! The sync loop: watches feed a [`Cache`] and mark Services dirty; at most
//! once per `--min-sync-period` and at least once per `--sync-period` the
//! dirty Services are re-rendered and written to the table in one `nft`
//! transaction (upstream's BoundedFrequencyRunner and `syncProxyRules`).
//! The first sync, the one after a failure and one every hour are full:
//! they rewrite the whole table in place and remove whatever else it
//! holds (so a restarted proxy takes its table over without a gap);
//! every other sync is partial.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::model::{Cache, ServiceKey};
use crate::nft::{self, Cidr};
use crate::rules::{self, Config, Existing, Plan, PortObjects, SyncKind};

/// How often a full (in-place) resync runs, as upstream's
/// `FullSyncPeriod`.
pub const FULL_SYNC_PERIOD: Duration = Duration::from_secs(3600);

/// What the watches share with the sync loop.
#[derive(Default)]
pub struct Shared {
    cache: Cache,
    dirty: BTreeSet<ServiceKey>,
    services_synced: bool,
    slices_synced: bool,
}

/// The proxy's state between syncs.
pub struct Proxier {
    cfg: Config,
    nodeport_cidrs: Vec<Cidr>,
    shared: Arc<Mutex<Shared>>,
    notify: Arc<Notify>,
    health: Arc<Health>,
    metrics: Metrics,
    applied: HashMap<ServiceKey, Vec<PortObjects>>,
    applied_nodeport_ips: Option<Vec<Ipv4Addr>>,
    last_full: Option<Instant>,
    needs_takeover: bool,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proxier {
    /// A proxier that has not synced yet (its first sync takes the table
    /// over).
    pub fn new(
        cfg: Config,
        nodeport_cidrs: Vec<Cidr>,
        health: Arc<Health>,
        metrics: Metrics,
    ) -> Self {
        Proxier {
            cfg,
            nodeport_cidrs,
            shared: Arc::default(),
            notify: Arc::new(Notify::new()),
            health,
            metrics,
            applied: HashMap::new(),
            applied_nodeport_ips: None,
            last_full: None,
            needs_takeover: true,
        }
    }

    /// Starts the Service, EndpointSlice and Node watches.
    pub fn start_watches(&self, client: kube::Client) {
        let services: Api<Service> = Api::all(client.clone());
        let slices: Api<EndpointSlice> = Api::all(client.clone());
        let nodes: Api<Node> = Api::all(client);
        let node_name = self.cfg.node_name.clone();

        let (shared, notify, health, metrics) = self.handles();
        tokio::spawn(async move {
            let mut buffer: Vec<Service> = Vec::new();
            let mut stream = watcher::watcher(services, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = stream.next().await {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::warn!(error = %e, "watching Services");
                        continue;
                    }
                };
                let touched = {
                    let mut s = lock(&shared);
                    let touched = match ev {
                        Event::Apply(svc) => s.cache.put_service(svc).into_iter().collect(),
                        Event::Delete(svc) => s.cache.delete_service(&svc).into_iter().collect(),
                        Event::Init => {
                            buffer.clear();
                            Vec::new()
                        }
                        Event::InitApply(svc) => {
                            buffer.push(svc);
                            Vec::new()
                        }
                        Event::InitDone => {
                            s.services_synced = true;
                            let mut t = s.cache.replace_services(std::mem::take(&mut buffer));
                            if t.is_empty() {
                                // Wake the first sync even with no Services.
                                t.push(ServiceKey::new("", ""));
                            }
                            t
                        }
                    };
                    metrics.service_changes.inc_by(touched.len() as u64);
                    s.dirty.extend(touched.iter().cloned());
                    touched
                };
                if !touched.is_empty() {
                    queued(&health, &metrics);
                    notify.notify_one();
                }
            }
        });

        let (shared, notify, health, metrics) = self.handles();
        tokio::spawn(async move {
            let mut buffer: Vec<EndpointSlice> = Vec::new();
            let mut stream = watcher::watcher(slices, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = stream.next().await {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::warn!(error = %e, "watching EndpointSlices");
                        continue;
                    }
                };
                let touched = {
                    let mut s = lock(&shared);
                    let touched = match ev {
                        Event::Apply(sl) => s.cache.put_slice(sl),
                        Event::Delete(sl) => s.cache.delete_slice(&sl),
                        Event::Init => {
                            buffer.clear();
                            Vec::new()
                        }
                        Event::InitApply(sl) => {
                            buffer.push(sl);
                            Vec::new()
                        }
                        Event::InitDone => {
                            s.slices_synced = true;
                            let mut t = s.cache.replace_slices(std::mem::take(&mut buffer));
                            if t.is_empty() {
                                t.push(ServiceKey::new("", ""));
                            }
                            t
                        }
                    };
                    metrics.endpoint_changes.inc_by(touched.len() as u64);
                    s.dirty.extend(touched.iter().cloned());
                    touched
                };
                if !touched.is_empty() {
                    queued(&health, &metrics);
                    notify.notify_one();
                }
            }
        });

        let health = self.health.clone();
        tokio::spawn(async move {
            let cfg = watcher::Config::default().fields(&format!("metadata.name={node_name}"));
            let mut stream = watcher::watcher(nodes, cfg).default_backoff().boxed();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(Event::Apply(n) | Event::InitApply(n)) => health.sync_node(&n),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "watching the Node"),
                }
            }
        });
    }

    fn handles(&self) -> (Arc<Mutex<Shared>>, Arc<Notify>, Arc<Health>, Metrics) {
        (
            self.shared.clone(),
            self.notify.clone(),
            self.health.clone(),
            self.metrics.clone(),
        )
    }

    /// Runs syncs until `stop` resolves: after changes (no sooner than
    /// `min_period` after the previous sync) and at least every `period`.
    pub async fn run(
        mut self,
        period: Duration,
        min_period: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut last_start: Option<Instant> = None;
        let mut retry = false;
        loop {
            let wait = if retry { min_period } else { period };
            tokio::select! {
                _ = &mut stop => return,
                _ = self.notify.notified() => {},
                _ = tokio::time::sleep(wait) => {},
            }
            if let Some(last) = last_start {
                let since = last.elapsed();
                if since < min_period {
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(min_period - since) => {},
                    }
                }
            }
            last_start = Some(Instant::now());
            retry = match self.sync().await {
                Ok(()) => false,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "syncing nftables rules failed");
                    true
                }
            };
        }
    }

    /// One sync. Does nothing until both watches have listed once.
    pub async fn sync(&mut self) -> Result<()> {
        let kind = if self.needs_takeover
            || self
                .last_full
                .is_none_or(|t| t.elapsed() >= FULL_SYNC_PERIOD)
        {
            SyncKind::Full
        } else {
            SyncKind::Partial
        };
        let start = Instant::now();
        let (dirty, models) = {
            let mut s = lock(&self.shared);
            if !(s.services_synced && s.slices_synced) {
                return Ok(());
            }
            let dirty = std::mem::take(&mut s.dirty);
            let keys: Vec<ServiceKey> = if kind == SyncKind::Partial {
                dirty.iter().cloned().collect()
            } else {
                s.cache.keys()
            };
            let models: Vec<(ServiceKey, Vec<crate::model::PortModel>)> = keys
                .into_iter()
                .map(|k| {
                    let p = s.cache.ports(&k);
                    (k, p)
                })
                .collect();
            (dirty, models)
        };
        let rendered: Vec<(ServiceKey, Vec<PortObjects>)> = models
            .into_iter()
            .map(|(k, ports)| {
                let objs = ports
                    .iter()
                    .map(|p| rules::render_port(&self.cfg, p))
                    .collect();
                (k, objs)
            })
            .collect();
        let nodeport_ips = if self.nodeport_cidrs.is_empty() {
            Vec::new()
        } else {
            nft::local_addresses(&self.nodeport_cidrs).await?
        };
        let nodeport_changed =
            kind != SyncKind::Partial || self.applied_nodeport_ips.as_ref() != Some(&nodeport_ips);
        let existing = if kind == SyncKind::Full {
            nft::existing(None, &self.cfg.table).await?
        } else {
            Existing::default()
        };
        let scripts = {
            let old: Vec<&PortObjects> = match kind {
                // After a failure nothing is known to be applied.
                SyncKind::Full if self.needs_takeover => Vec::new(),
                SyncKind::Full => self.applied.values().flatten().collect(),
                SyncKind::Partial => rendered
                    .iter()
                    .filter_map(|(k, _)| self.applied.get(k))
                    .flatten()
                    .collect(),
            };
            let plan = Plan {
                kind,
                old,
                new: rendered.iter().flat_map(|(_, o)| o.iter()).collect(),
                nodeport_ips: nodeport_changed.then_some(&nodeport_ips[..]),
                existing: &existing,
            };
            rules::script(&self.cfg, &plan)
        };
        if !scripts.is_noop() {
            let mut applied = Ok(());
            for tx in scripts.transactions() {
                applied = nft::apply(&tx).await;
                if applied.is_err() {
                    break;
                }
            }
            if let Err(e) = applied {
                self.metrics.sync_failures.inc();
                self.needs_takeover = true;
                lock(&self.shared).dirty.extend(dirty);
                return Err(e);
            }
        }
        if kind != SyncKind::Partial {
            self.applied.clear();
            self.last_full = Some(Instant::now());
        }
        for (k, objs) in rendered {
            if objs.is_empty() {
                self.applied.remove(&k);
            } else {
                self.applied.insert(k, objs);
            }
        }
        self.applied_nodeport_ips = Some(nodeport_ips);
        self.needs_takeover = false;
        let took = start.elapsed().as_secs_f64();
        self.metrics.sync_duration.observe(took);
        if kind == SyncKind::Partial {
            self.metrics.partial_sync_duration.observe(took);
        } else {
            self.metrics.full_sync_duration.observe(took);
        }
        self.metrics
            .last_sync
            .set(jiff::Timestamp::now().as_millisecond() as f64 / 1000.0);
        let all = self.applied.values().flatten();
        let (mut chains, mut rules_n, mut elements) = (0i64, 0i64, 0i64);
        for o in all {
            chains += o.chains.len() as i64;
            rules_n += o.rule_count() as i64;
            elements += o.elements.len() as i64;
        }
        self.metrics
            .objects
            .with_label_values(&["chains"])
            .set(chains);
        self.metrics
            .objects
            .with_label_values(&["rules"])
            .set(rules_n);
        self.metrics
            .objects
            .with_label_values(&["elements"])
            .set(elements);
        self.health.updated();
        tracing::debug!(
            ?kind,
            services = dirty.len(),
            seconds = took,
            "synced nftables rules"
        );
        Ok(())
    }
}

fn queued(health: &Health, metrics: &Metrics) {
    health.queued_update();
    metrics
        .last_queued
        .set(jiff::Timestamp::now().as_millisecond() as f64 / 1000.0);
}
