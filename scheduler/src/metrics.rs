//! The scheduler's Prometheus metrics, upstream's names: queue depth,
//! attempts by result, and scheduling latencies.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the scheduler exports, in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `scheduler_pending_pods{queue}`: active, backoff, unschedulable.
    pub pending_pods: IntGaugeVec,
    /// `scheduler_schedule_attempts_total{result, profile}`.
    pub attempts: IntCounterVec,
    /// `scheduler_scheduling_attempt_duration_seconds{result, profile}`:
    /// one decision, filter to chosen node.
    pub attempt_duration: HistogramVec,
    /// `scheduler_pod_scheduling_sli_duration_seconds`: from the pod's
    /// first entry into the queue until its binding succeeded.
    pub e2e_duration: HistogramVec,
    /// `scheduler_preemption_attempts_total`.
    pub preemption_attempts: IntCounter,
    /// `scheduler_preemption_victims`: victims per successful preemption.
    pub preemption_victims: Histogram,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let pending_pods = IntGaugeVec::new(
            Opts::new(
                "scheduler_pending_pods",
                "Number of pending pods, by the queue type.",
            ),
            &["queue"],
        )?;
        let attempts = IntCounterVec::new(
            Opts::new(
                "scheduler_schedule_attempts_total",
                "Number of attempts to schedule pods, by the result.",
            ),
            &["result", "profile"],
        )?;
        let buckets = prometheus::exponential_buckets(0.001, 2.0, 15)?;
        let attempt_duration = HistogramVec::new(
            HistogramOpts::new(
                "scheduler_scheduling_attempt_duration_seconds",
                "Scheduling attempt latency in seconds (scheduling algorithm + binding).",
            )
            .buckets(buckets.clone()),
            &["result", "profile"],
        )?;
        let e2e_duration = HistogramVec::new(
            HistogramOpts::new(
                "scheduler_pod_scheduling_sli_duration_seconds",
                "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue until it is bound.",
            )
            .buckets(prometheus::exponential_buckets(0.01, 2.0, 20)?),
            &["attempts"],
        )?;
        let preemption_attempts = IntCounter::new(
            "scheduler_preemption_attempts_total",
            "Total preemption attempts in the cluster till now.",
        )?;
        let preemption_victims = Histogram::with_opts(
            HistogramOpts::new(
                "scheduler_preemption_victims",
                "Number of selected preemption victims.",
            )
            .buckets(prometheus::exponential_buckets(1.0, 2.0, 7)?),
        )?;
        registry.register(Box::new(pending_pods.clone()))?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(attempt_duration.clone()))?;
        registry.register(Box::new(e2e_duration.clone()))?;
        registry.register(Box::new(preemption_attempts.clone()))?;
        registry.register(Box::new(preemption_victims.clone()))?;
        Ok(Metrics {
            registry,
            pending_pods,
            attempts,
            attempt_duration,
            e2e_duration,
            preemption_attempts,
            preemption_victims,
        })
    }

    /// The text exposition for `/metrics`.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
