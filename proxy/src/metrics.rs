//! The proxy's Prometheus metrics, with upstream kube-proxy's names.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the proxy exports, in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `kubeproxy_sync_proxy_rules_duration_seconds`: every sync.
    pub sync_duration: Histogram,
    /// `kubeproxy_sync_full_proxy_rules_duration_seconds`.
    pub full_sync_duration: Histogram,
    /// `kubeproxy_sync_partial_proxy_rules_duration_seconds`.
    pub partial_sync_duration: Histogram,
    /// `kubeproxy_sync_proxy_rules_last_timestamp_seconds`.
    pub last_sync: Gauge,
    /// `kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds`.
    pub last_queued: Gauge,
    /// `kubeproxy_sync_proxy_rules_nftables_sync_failures_total`.
    pub sync_failures: IntCounter,
    /// `kubeproxy_sync_proxy_rules_service_changes_total`.
    pub service_changes: IntCounter,
    /// `kubeproxy_sync_proxy_rules_endpoint_changes_total`.
    pub endpoint_changes: IntCounter,
    /// `kubeproxy_proxy_healthz_total{code}`.
    pub healthz: IntCounterVec,
    /// `kubeproxy_proxy_livez_total{code}`.
    pub livez: IntCounterVec,
    /// `kubeproxy_sync_proxy_rules_nftables_objects{kind}`: chains, rules
    /// and map elements the services own after the last sync. Capstan's
    /// own (upstream's nftables mode has no count; iptables mode has
    /// `kubeproxy_sync_proxy_rules_iptables_total`).
    pub objects: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let buckets = prometheus::exponential_buckets(0.001, 2.0, 15)?;
        let hist = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.clone()))
        };
        let m = Metrics {
            sync_duration: hist(
                "kubeproxy_sync_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds",
            )?,
            full_sync_duration: hist(
                "kubeproxy_sync_full_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for full resyncs",
            )?,
            partial_sync_duration: hist(
                "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for partial resyncs",
            )?,
            last_sync: Gauge::new(
                "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                "The last time proxy rules were successfully synced",
            )?,
            last_queued: Gauge::new(
                "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                "The last time a sync of proxy rules was queued",
            )?,
            sync_failures: IntCounter::new(
                "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
                "Cumulative proxy nftables sync failures",
            )?,
            service_changes: IntCounter::new(
                "kubeproxy_sync_proxy_rules_service_changes_total",
                "Cumulative proxy rules Service changes",
            )?,
            endpoint_changes: IntCounter::new(
                "kubeproxy_sync_proxy_rules_endpoint_changes_total",
                "Cumulative proxy rules Endpoint changes",
            )?,
            healthz: IntCounterVec::new(
                Opts::new(
                    "kubeproxy_proxy_healthz_total",
                    "Cumulative proxy healthz HTTP status",
                ),
                &["code"],
            )?,
            livez: IntCounterVec::new(
                Opts::new(
                    "kubeproxy_proxy_livez_total",
                    "Cumulative proxy livez HTTP status",
                ),
                &["code"],
            )?,
            objects: IntGaugeVec::new(
                Opts::new(
                    "kubeproxy_sync_proxy_rules_nftables_objects",
                    "Chains, rules and map elements of Services in the proxy's nftables table",
                ),
                &["kind"],
            )?,
            registry,
        };
        m.registry.register(Box::new(m.sync_duration.clone()))?;
        m.registry
            .register(Box::new(m.full_sync_duration.clone()))?;
        m.registry
            .register(Box::new(m.partial_sync_duration.clone()))?;
        m.registry.register(Box::new(m.last_sync.clone()))?;
        m.registry.register(Box::new(m.last_queued.clone()))?;
        m.registry.register(Box::new(m.sync_failures.clone()))?;
        m.registry.register(Box::new(m.service_changes.clone()))?;
        m.registry.register(Box::new(m.endpoint_changes.clone()))?;
        m.registry.register(Box::new(m.healthz.clone()))?;
        m.registry.register(Box::new(m.livez.clone()))?;
        m.registry.register(Box::new(m.objects.clone()))?;
        Ok(m)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
