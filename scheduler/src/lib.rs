//! `capstan-scheduler`: binds every pending pod to a node through the
//! `binding` subresource, with upstream's default plugins, queue,
//! preemption and leader election.

pub mod actions;
pub mod algorithm;
pub mod cache;
pub mod config;
pub mod framework;
pub mod informers;
pub mod metrics;
pub mod nominator;
pub mod options;
pub mod plugins;
pub mod preemption;
pub mod profile;
pub mod queue;
pub mod scheduler;

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use capstan_component_base::duration::parse_duration;
use capstan_component_base::health;
use capstan_component_base::leader::{self, LeaderElectionConfig};
use capstan_component_base::{client, shutdown_signal};

use crate::config::SchedulerConfiguration;
use crate::metrics::Metrics;
use crate::options::Options;
use crate::profile::Profile;
use crate::scheduler::{LoopConfig, Scheduler};

/// The scheduler name pods get by default (`spec.schedulerName`).
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Runs the scheduler until a shutdown signal (or lost leadership).
pub async fn run(opts: Options) -> Result<()> {
    let file = match &opts.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            SchedulerConfiguration::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
        None => SchedulerConfiguration::default(),
    };
    let profiles = build_profiles(&file, opts.scheduler_name.as_deref()).map_err(|e| anyhow!(e))?;
    let kubeconfig = opts.kubeconfig.clone().or_else(|| {
        file.client_connection
            .as_ref()
            .and_then(|c| c.kubeconfig.clone())
            .filter(|k| !k.is_empty())
            .map(Into::into)
    });
    let client = client::client(kubeconfig.as_deref()).await?;
    let metrics = Metrics::new()?;
    let render = {
        let metrics = metrics.clone();
        std::sync::Arc::new(move || metrics.render())
    };
    health::serve(&opts.serving.config(), render).await?;
    let loop_cfg = LoopConfig {
        percentage_of_nodes_to_score: file.percentage_of_nodes_to_score.unwrap_or(0),
        initial_backoff: Duration::from_secs(file.pod_initial_backoff_seconds.unwrap_or(1)),
        max_backoff: Duration::from_secs(file.pod_max_backoff_seconds.unwrap_or(10)),
    };
    let election = leader_election(&opts, &file)?;
    let identity = election
        .as_ref()
        .map(|e| e.identity.clone())
        .unwrap_or_else(leader::default_identity);
    let work = schedule(client.clone(), profiles, loop_cfg, metrics, identity);
    let work = async move {
        match election {
            Some(cfg) => leader::run_as_leader(client, cfg, work).await,
            None => work.await,
        }
    };
    tokio::select! {
        result = work => result,
        _ = shutdown_signal() => Ok(()),
    }
}

/// One profile per config entry (upstream's default profile when there
/// are none); `--scheduler-name` renames the default profile.
fn build_profiles(
    file: &SchedulerConfiguration,
    name: Option<&str>,
) -> Result<Vec<Profile>, String> {
    if file.profiles.is_empty() {
        return Ok(vec![Profile::default_named(
            name.unwrap_or(DEFAULT_SCHEDULER_NAME),
        )?]);
    }
    file.profiles
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if p.percentage_of_nodes_to_score.is_some_and(|v| v > 100) {
                return Err("percentageOfNodesToScore must be 0-100".to_string());
            }
            if p.scheduler_name.is_none() {
                p.scheduler_name = Some(name.unwrap_or(DEFAULT_SCHEDULER_NAME).to_string());
            }
            Profile::from_config(&p)
        })
        .collect()
}

/// The lease settings: the config file's `leaderElection` where it says
/// something, the flags otherwise; `None` when leader election is off.
fn leader_election(
    opts: &Options,
    file: &SchedulerConfiguration,
) -> Result<Option<LeaderElectionConfig>> {
    let le = file.leader_election.clone().unwrap_or_default();
    if !le.leader_elect.unwrap_or(opts.leader.leader_elect) {
        return Ok(None);
    }
    let duration = |v: &Option<String>, flag: Duration| -> Result<Duration> {
        match v {
            Some(text) => parse_duration(text).map_err(|e| anyhow!("leaderElection: {e}")),
            None => Ok(flag),
        }
    };
    let mut cfg = LeaderElectionConfig::new(
        le.resource_namespace
            .as_deref()
            .unwrap_or(&opts.leader.resource_namespace),
        le.resource_name
            .as_deref()
            .unwrap_or(&opts.leader.resource_name),
    );
    cfg.lease_duration = duration(&le.lease_duration, opts.leader.lease_duration)?;
    cfg.renew_deadline = duration(&le.renew_deadline, opts.leader.renew_deadline)?;
    cfg.retry_period = duration(&le.retry_period, opts.leader.retry_period)?;
    cfg.validate()?;
    Ok(Some(cfg))
}

/// Starts the informers and the scheduling thread; returns only if the
/// thread stops.
async fn schedule(
    client: kube::Client,
    profiles: Vec<Profile>,
    cfg: LoopConfig,
    metrics: Metrics,
    identity: String,
) -> Result<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    informers::spawn_all(client.clone(), tx.clone());
    let runtime = tokio::runtime::Handle::current();
    let actions = actions::Actions::new(client, runtime.clone(), tx, metrics.clone(), &identity);
    let scheduler = Scheduler::new(profiles, cfg, actions, metrics, rx, runtime);
    let thread = std::thread::Builder::new()
        .name("scheduling".into())
        .spawn(move || scheduler.run())
        .context("starting the scheduling thread")?;
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    Err(anyhow!("the scheduling loop stopped"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn election(flags: &[&str]) -> Result<Option<LeaderElectionConfig>> {
        let mut args = vec!["capstan-scheduler"];
        args.extend_from_slice(flags);
        leader_election(
            &Options::parse_from(args),
            &SchedulerConfiguration::default(),
        )
    }

    #[test]
    fn lease_timings_are_checked_as_client_go_checks_them() {
        let cfg = election(&[]).ok().flatten();
        assert_eq!(cfg.map(|c| c.lease_duration), Some(Duration::from_secs(15)));
        assert!(election(&["--leader-elect=false"]).is_ok_and(|c| c.is_none()));
        assert!(election(&["--leader-elect-retry-period=0s"]).is_err());
        assert!(election(&["--leader-elect-renew-deadline=20s"]).is_err());
        assert!(
            election(&["--leader-elect-renew-deadline=2s"]).is_err(),
            "within 1.2 retry periods"
        );
    }
}
