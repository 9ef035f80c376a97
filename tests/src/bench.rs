//! What the benchmark harnesses share.

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;

/// Runs `total` jobs, `concurrency` at a time; returns how long all took.
pub async fn run_all<F, Fut>(total: usize, concurrency: usize, job: F) -> Result<Duration>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let started = Instant::now();
    let results: Vec<Result<()>> = futures::stream::iter(0..total)
        .map(job)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(started.elapsed())
}
