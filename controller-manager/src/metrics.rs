//! The controller-manager's Prometheus metrics: upstream's workqueue
//! metrics per controller (`name` label), reconcile counts by result and
//! latency, and whether this replica leads.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the controller-manager exports, in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `workqueue_depth{name}`: keys waiting in a controller's queue.
    pub queue_depth: IntGaugeVec,
    /// `workqueue_adds_total{name}`: keys added (deduplicated adds too).
    pub queue_adds: IntCounterVec,
    /// `workqueue_retries_total{name}`: keys requeued after a failure.
    pub queue_retries: IntCounterVec,
    /// `controller_reconcile_total{controller, result}`: `success`,
    /// `requeue_after` or `error`.
    pub reconciles: IntCounterVec,
    /// `controller_reconcile_duration_seconds{controller}`.
    pub reconcile_duration: HistogramVec,
    /// `leader_election_master_status`: 1 while this replica leads (or
    /// runs without election).
    pub leader: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let queue_depth = IntGaugeVec::new(
            Opts::new("workqueue_depth", "Current depth of workqueue"),
            &["name"],
        )?;
        let queue_adds = IntCounterVec::new(
            Opts::new(
                "workqueue_adds_total",
                "Total number of adds handled by workqueue",
            ),
            &["name"],
        )?;
        let queue_retries = IntCounterVec::new(
            Opts::new(
                "workqueue_retries_total",
                "Total number of retries handled by workqueue",
            ),
            &["name"],
        )?;
        let reconciles = IntCounterVec::new(
            Opts::new(
                "controller_reconcile_total",
                "Total number of reconciliations per controller, by result",
            ),
            &["controller", "result"],
        )?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "controller_reconcile_duration_seconds",
                "Time one reconciliation took, per controller",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 15)?),
            &["controller"],
        )?;
        let leader = IntGauge::new(
            "leader_election_master_status",
            "1 while this replica is the leader and runs the controllers",
        )?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(queue_adds.clone()))?;
        registry.register(Box::new(queue_retries.clone()))?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        Ok(Metrics {
            registry,
            queue_depth,
            queue_adds,
            queue_retries,
            reconciles,
            reconcile_duration,
            leader,
        })
    }

    /// The text exposition for `/metrics`.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
