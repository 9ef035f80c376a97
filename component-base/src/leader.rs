//! Leader election over a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` with a LeaseLock: one replica of a component works,
//! the others wait; a leader that cannot renew within the renew deadline
//! stops, and another takes over once the lease has not been renewed for a
//! lease duration (measured on the waiter's own clock, never by comparing
//! clocks across machines).

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// Where the lease lives and upstream's timings (15 s / 10 s / 2 s).
#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (hostname plus a random suffix).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// Upstream's defaults for a lease `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        LeaderElectionConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// client-go's checks: each renewal gets a few tries within the
    /// deadline, and the deadline ends before the lease does.
    pub fn validate(&self) -> Result<()> {
        if self.retry_period.is_zero() {
            return Err(anyhow!(
                "leader election: the retry period must be positive"
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(anyhow!(
                "leader election: the renew deadline must be shorter than the lease duration"
            ));
        }
        if self.renew_deadline.as_secs_f64() <= 1.2 * self.retry_period.as_secs_f64() {
            return Err(anyhow!(
                "leader election: the renew deadline must be longer than 1.2 × the retry period"
            ));
        }
        Ok(())
    }
}

/// `hostname_<random>`, as upstream components name their lease holders.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    format!("{host}_{:016x}", rand::random::<u64>())
}

/// Runs `work` only while this replica holds the lease. Returns when `work`
/// ends, or with an error when leadership is lost (the caller exits, as
/// upstream components do, so a restarted process starts clean).
pub async fn run_as_leader<F>(
    client: kube::Client,
    cfg: LeaderElectionConfig,
    work: F,
) -> Result<()>
where
    F: std::future::Future<Output = Result<()>>,
{
    let mut elector = Elector::new(client, cfg);
    elector.acquire().await;
    tracing::info!(lease = %elector.cfg.name, identity = %elector.cfg.identity, "became leader");
    tokio::select! {
        result = work => {
            elector.release().await;
            result
        }
        lost = elector.keep_renewing() => Err(lost),
    }
}

/// The state of one replica's election.
struct Elector {
    api: Api<Lease>,
    cfg: LeaderElectionConfig,
    /// The last lease spec seen and when (on this clock) it last changed.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    fn new(client: kube::Client, cfg: LeaderElectionConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: None,
        }
    }

    /// Retries every retry period until this replica holds the lease.
    async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Renews every retry period; returns the reason once a renewal has
    /// not succeeded within the renew deadline.
    async fn keep_renewing(&mut self) -> anyhow::Error {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            let attempt = tokio::time::timeout(
                self.cfg.renew_deadline.saturating_sub(last_renew.elapsed()),
                self.try_acquire_or_renew(),
            )
            .await;
            match attempt {
                Ok(Ok(true)) => last_renew = Instant::now(),
                Ok(Ok(false)) => {
                    return anyhow!("leader election lost: another holder took the lease");
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "failed to renew the lease"),
                Err(_) => {}
            }
            if last_renew.elapsed() >= self.cfg.renew_deadline {
                return anyhow!(
                    "leader election lost: could not renew the lease within {:?}",
                    self.cfg.renew_deadline
                );
            }
        }
    }

    /// One round of client-go's `tryAcquireOrRenew`: true when this
    /// replica holds the lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let now = MicroTime(jiff::Timestamp::now());
        let me = self.cfg.identity.clone();
        let duration_secs = self.cfg.lease_duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            self.api.create(&PostParams::default(), &lease).await?;
            return Ok(true);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|(seen, _)| *seen != spec) {
            self.observed = Some((spec.clone(), Instant::now()));
        }
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_by_other = !holder.is_empty() && holder != me;
        let observed_at = self
            .observed
            .as_ref()
            .map(|(_, t)| *t)
            .unwrap_or_else(Instant::now);
        let their_duration =
            Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration_secs).max(0) as u64);
        if held_by_other && observed_at.elapsed() < their_duration {
            return Ok(false);
        }
        let mut new = spec;
        if holder != me {
            new.acquire_time = Some(now.clone());
            new.lease_transitions =
                Some(new.lease_transitions.unwrap_or(0) + if holder.is_empty() { 0 } else { 1 });
        }
        new.holder_identity = Some(me);
        new.lease_duration_seconds = Some(duration_secs);
        new.renew_time = Some(now);
        lease.spec = Some(new.clone());
        // Replace carries the resourceVersion read above: a concurrent
        // writer makes this fail with 409 instead of both winning.
        self.api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await?;
        self.observed = Some((new, Instant::now()));
        Ok(true)
    }

    /// Gives the lease up on a clean stop, so a standby need not wait a
    /// lease duration.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        let _ = self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await;
    }
}
