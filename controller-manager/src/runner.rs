//! The one way every controller runs: a [`WorkQueue`] of keys fed by
//! informers, and `workers` tasks that take a key, call the controller's
//! level-triggered `reconcile(key)`, and requeue it as the result says
//! (with back-off on errors), recording per-controller metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use crate::queue::WorkQueue;

/// What one reconcile asks for: `Ok(None)` when done, `Ok(Some(after))`
/// to be looked at again after a while (a time-based condition), `Err` to
/// be retried with back-off.
pub type Outcome = anyhow::Result<Option<Duration>>;

/// A named controller's queue and metrics.
#[derive(Clone)]
pub struct Runner {
    name: &'static str,
    queue: Arc<WorkQueue>,
    metrics: Metrics,
}

impl Runner {
    /// A runner for the controller `name` (upstream's name, used as the
    /// metrics label).
    pub fn new(name: &'static str, metrics: &Metrics) -> Self {
        let queue = WorkQueue::new(
            metrics.queue_depth.with_label_values(&[name]),
            metrics.queue_adds.with_label_values(&[name]),
            metrics.queue_retries.with_label_values(&[name]),
        );
        Runner {
            name,
            queue,
            metrics: metrics.clone(),
        }
    }

    /// The queue informers add keys to.
    pub fn queue(&self) -> Arc<WorkQueue> {
        self.queue.clone()
    }

    /// Runs `workers` workers until the process stops.
    pub async fn run<F, Fut>(self, workers: usize, reconcile: F)
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        tracing::info!(controller = self.name, workers, "starting controller");
        let reconcile = Arc::new(reconcile);
        let mut tasks = Vec::new();
        for _ in 0..workers.max(1) {
            let this = self.clone();
            let reconcile = reconcile.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let key = this.queue.get().await;
                    this.process(&key, reconcile(key.clone())).await;
                    this.queue.done(&key);
                }
            }));
        }
        futures::future::join_all(tasks).await;
    }

    async fn process(&self, key: &str, work: impl Future<Output = Outcome>) {
        let started = Instant::now();
        let outcome = work.await;
        self.metrics
            .reconcile_duration
            .with_label_values(&[self.name])
            .observe(started.elapsed().as_secs_f64());
        let result = match outcome {
            Ok(None) => {
                self.queue.forget(key);
                "success"
            }
            Ok(Some(after)) => {
                self.queue.forget(key);
                self.queue.add_after(key.to_string(), after);
                "requeue_after"
            }
            Err(e) => {
                tracing::warn!(controller = self.name, key, error = %format!("{e:#}"), "sync failed; retrying");
                self.queue.add_rate_limited(key.to_string());
                "error"
            }
        };
        self.metrics
            .reconciles
            .with_label_values(&[self.name, result])
            .inc();
    }
}

/// `namespace/name`, or `name` for a cluster-scoped object.
pub fn key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// The namespace (empty when cluster-scoped) and name in a key.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}
