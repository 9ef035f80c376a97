//! `capstan-apiserver`: the only door to cluster state. Requests arrive
//! over HTTPS ([`server`]), are classified ([`request_info`]) and served by
//! one generic store over etcd ([`registry`], [`storage`]) with a watch
//! cache per resource ([`watchcache`]). See `docs/architecture.md`.

pub mod crd;
pub mod discovery;
pub mod error;
pub mod fieldmanager;
pub mod fieldvalidation;
pub mod handlers;
pub mod kubeletproxy;
pub mod kubernetes_service;
pub mod metrics;
pub mod negotiation;
pub mod openapi;
pub mod options;
pub mod protobuf;
pub mod registry;
pub mod request_info;
pub mod selectors;
pub mod served;
pub mod server;
pub mod storage;
pub mod strategicmerge;
pub mod table;
pub mod validation;
pub mod version;
pub mod watchcache;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use handlers::AppState;
use registry::Registry;
use registry::admission::priority::SYSTEM_PRIORITY_CLASSES;
use registry::admission::service_alloc::ServiceRanges;
use registry::store::{Backend, WriteOptions};
use storage::Storage;
use storage::etcd::EtcdStorage;

/// Namespaces that exist from the start, as upstream.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Namespaces that may never be deleted, as upstream's NamespaceLifecycle.
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Connects to etcd, retrying until it answers.
async fn connect_storage(endpoints: &[String]) -> Arc<dyn Storage> {
    let mut delay = Duration::from_millis(200);
    loop {
        match EtcdStorage::connect(endpoints).await {
            Ok(s) => match s.current_revision().await {
                Ok(_) => return Arc::new(s),
                Err(e) => tracing::warn!(error = %e, "etcd not answering yet"),
            },
            Err(e) => tracing::warn!(error = %e, "connecting to etcd"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Creates `objects` of the resource at `group`/`version`/`plural` unless
/// they exist.
async fn ensure_exist(
    state: &AppState,
    (group, version, plural): (&str, &str, &str),
    objects: impl IntoIterator<Item = serde_json::Value>,
) -> Result<()> {
    let served = state.served.get();
    let info = served
        .registry
        .lookup(group, version, plural)
        .with_context(|| format!("{plural} are served"))?;
    let store = state
        .backend
        .store(info)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for obj in objects {
        let name = registry::meta::name(&obj).to_string();
        match store.create("", obj, &WriteOptions::default()).await {
            Ok(_) => tracing::info!(resource = plural, name, "created system object"),
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => anyhow::bail!("creating {plural} {name}: {e}"),
        }
    }
    Ok(())
}

/// Creates the system namespaces and the system PriorityClasses if they
/// are missing, as upstream's bootstrap.
async fn ensure_system_objects(state: &AppState) -> Result<()> {
    let namespaces = SYSTEM_NAMESPACES
        .iter()
        .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    ensure_exist(state, ("", "v1", "namespaces"), namespaces).await?;
    let classes = SYSTEM_PRIORITY_CLASSES.iter().map(|c| c.object());
    ensure_exist(
        state,
        ("scheduling.k8s.io", "v1", "priorityclasses"),
        classes,
    )
    .await
}

/// Compacts storage history every `interval`, to the revision seen one
/// interval earlier (upstream's scheme), and trims the caches to match.
async fn compact_periodically(state: Arc<AppState>, interval: Duration) {
    let mut previous: Option<i64> = None;
    loop {
        tokio::time::sleep(interval).await;
        let current = match state.backend.storage.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "compaction: reading revision failed");
                continue;
            }
        };
        if let Some(rev) = previous.filter(|r| *r > 0) {
            match state.backend.storage.compact(rev).await {
                Ok(()) => {
                    tracing::info!(revision = rev, "compacted storage");
                    for cache in state.backend.all_caches() {
                        cache.compacted(rev).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "compaction failed"),
            }
        }
        previous = Some(current);
    }
}

/// Runs the apiserver until SIGINT/SIGTERM.
pub async fn run(opts: options::Options) -> Result<()> {
    capstan_component_base::tls::install_crypto_provider();
    let tls = server::tls_config(
        &opts.tls_cert_file,
        &opts.tls_private_key_file,
        opts.client_ca_file.as_deref(),
    )?;
    let storage = connect_storage(&opts.etcd_servers).await;
    let registry = Registry::builtin();
    let ranges = ServiceRanges::parse(
        &opts.service_cluster_ip_range,
        &opts.service_node_port_range,
    )
    .map_err(|e| anyhow::anyhow!("invalid service ranges: {e}"))?;
    let advertised = kubernetes_service::Advertised {
        cluster_ip: ranges.first_ip(),
        address: opts
            .advertise_address
            .clone()
            .unwrap_or_else(|| kubernetes_service::default_advertise_address(&opts.bind_address)),
        port: opts.secure_port,
    };
    let backend =
        Backend::start(storage, &opts.etcd_prefix, registry.all()).with_service_ranges(ranges);
    let state = Arc::new(AppState {
        served: served::ServedCell::new(served::Served::render(registry)?),
        metrics: metrics::Metrics::new().context("registering metrics")?,
        backend,
        kubelet: kubeletproxy::KubeletClient::new(
            kubeletproxy::KubeletTls {
                client_cert: opts
                    .kubelet_client_certificate
                    .as_deref()
                    .zip(opts.kubelet_client_key.as_deref()),
                certificate_authority: opts.kubelet_certificate_authority.as_deref(),
            },
            opts.kubelet_preferred_address_types.clone(),
            opts.kubelet_port,
            opts.kubelet_timeout,
        )
        .context("kubelet client TLS")?,
    });
    let mut delay = Duration::from_millis(100);
    while let Err(e) = ensure_system_objects(&state).await {
        tracing::warn!(error = %e, "bootstrapping system objects; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    tokio::spawn(kubernetes_service::run(state.clone(), advertised));
    if !opts.etcd_compaction_interval.is_zero() {
        tokio::spawn(compact_periodically(
            state.clone(),
            opts.etcd_compaction_interval,
        ));
    }
    // Serve nothing from a cache before it holds its first listing: a
    // watch resuming then would miss changes, a cached list would be empty.
    for cache in state.backend.all_caches() {
        cache.wait_synced().await;
    }
    // Serve the custom resources of existing CRDs from the first request.
    let mut served_crds = crd::Fingerprint::default();
    if let Err(e) = crd::sync(&state, &mut served_crds).await {
        tracing::warn!(error = %e, "serving custom resources; retrying in the background");
    }
    tokio::spawn(crd::run(state.clone(), served_crds));
    let app = axum::Router::new()
        .fallback(handlers::dispatch)
        .with_state(state);
    let addr = format!("{}:{}", opts.bind_address, opts.secure_port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    tracing::info!(address = %listener.local_addr()?, "serving HTTPS");
    server::serve(
        listener,
        tls,
        app,
        capstan_component_base::shutdown_signal(),
        server::user_from_certificate,
    )
    .await;
    Ok(())
}
