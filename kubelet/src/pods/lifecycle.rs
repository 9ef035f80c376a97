//! Container lifecycle hooks as upstream runs them: `postStart` right
//! after the container starts (a failure kills the container, which then
//! restarts by the pod's policy, with a `FailedPostStartHook` Event), and
//! `preStop` before a container is stopped, within the pod's grace period
//! (what is left of it then goes to SIGTERM→SIGKILL). Handlers are `exec`,
//! `httpGet`, `tcpSocket` and `sleep`, run the way probes are.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};

use super::probes;
use crate::cri::Cri;

/// Upstream's smallest grace period left for stopping after `preStop`.
pub const MIN_GRACE_AFTER_HOOK: i64 = 2;

/// Runs `handler` for container `id` within `timeout`; the failure's
/// description otherwise.
pub async fn run(
    cri: &Cri,
    c: &Container,
    handler: &LifecycleHandler,
    id: &str,
    pod_ip: &str,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(sleep) = &handler.sleep {
        let wanted = Duration::from_secs(sleep.seconds.max(0) as u64);
        tokio::time::sleep(wanted.min(timeout)).await;
        return Ok(());
    }
    let as_probe = Probe {
        exec: handler.exec.clone(),
        http_get: handler.http_get.clone(),
        tcp_socket: handler.tcp_socket.clone(),
        timeout_seconds: Some(timeout.as_secs().clamp(1, i32::MAX as u64) as i32),
        ..Default::default()
    };
    probes::run(cri, c, &as_probe, id, pod_ip).await
}

/// Runs the container's `preStop` hook, if any, within `grace` seconds;
/// returns the grace left for stopping it (at least
/// [`MIN_GRACE_AFTER_HOOK`]) and the hook's failure, if it failed.
pub async fn pre_stop(
    cri: &Cri,
    c: &Container,
    id: &str,
    pod_ip: &str,
    grace: i64,
) -> (i64, Option<String>) {
    let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
        return (grace, None);
    };
    let started = Instant::now();
    let budget = Duration::from_secs(grace.max(0) as u64);
    let failure = match tokio::time::timeout(budget, run(cri, c, hook, id, pod_ip, budget)).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(format!("PreStop hook did not finish within {grace}s")),
    };
    let left = grace - started.elapsed().as_secs() as i64;
    (left.max(MIN_GRACE_AFTER_HOOK), failure)
}
