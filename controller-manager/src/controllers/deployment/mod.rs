//! The Deployment controller (upstream's `deployment`): rolls a pod
//! template out through ReplicaSets named `<deployment>-<pod-template-hash>`
//! (RollingUpdate within `maxSurge`/`maxUnavailable`, or Recreate), keeps
//! their revisions for `kubectl rollout history|undo`, scales them
//! proportionally mid-rollout, honours `spec.paused`, and reports
//! `Available`/`Progressing` (with `progressDeadlineSeconds`) in status.
//! The ReplicaSet controller makes the pods.

mod annotations;
mod claim;
mod conditions;
mod context;
mod hash;
mod history;
mod recreate;
mod revision;
mod rolling;
mod scaling;
mod spec;
mod status;
mod written;

use std::sync::Arc;

use anyhow::{Result, anyhow};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::controllers::replicaset::pods::controller_of;
use crate::informer;
use crate::metrics::Metrics;
use crate::queue::WorkQueue;
use crate::runner::{self, Outcome, Runner};
use context::Ctx;
use written::Written;

/// The controller's name, as `--controllers` spells it.
pub const CONTROLLER: &str = "deployment";

/// What every worker shares.
struct Shared {
    client: kube::Client,
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    identity: String,
    written: Arc<Written>,
}

/// The Deployment's selector; `None` when missing or empty (selects
/// nothing here, never everything).
fn selector(d: &Deployment) -> Option<Selector> {
    let ls = d.spec.as_ref()?.selector.clone();
    Selector::try_from(ls).ok().filter(|s| !s.selects_all())
}

/// Enqueues the Deployment controlling `rs`, or for an orphan every
/// Deployment in its namespace that would adopt it.
fn enqueue_for_rs(rs: &ReplicaSet, deployments: &Store<Deployment>, queue: &WorkQueue) {
    let ns = rs.metadata.namespace.as_deref();
    match controller_of(&rs.metadata) {
        Some(r) if r.kind == "Deployment" => queue.add(runner::key(ns, &r.name)),
        Some(_) => {}
        None => {
            let labels = rs.metadata.labels.clone().unwrap_or_default();
            for d in deployments.state() {
                if d.metadata.namespace.as_deref() == ns
                    && selector(&d).is_some_and(|s| s.matches(&labels))
                {
                    queue.add(runner::key(
                        ns,
                        d.metadata.name.as_deref().unwrap_or_default(),
                    ));
                }
            }
        }
    }
}

/// Watches Deployments, ReplicaSets and pods, and syncs each Deployment
/// with `workers` workers.
pub async fn run(
    client: kube::Client,
    metrics: Metrics,
    workers: usize,
    identity: &str,
) -> Result<()> {
    let runner = Runner::new(CONTROLLER, &metrics);
    let queue = runner.queue();
    let deployments = informer::spawn(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
        informer::enqueue_own_key(queue),
    );
    let (queue, owners) = (runner.queue(), deployments.clone());
    let replicasets = informer::spawn(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            if let Some(rs) = informer::object(event) {
                enqueue_for_rs(rs, &owners, &queue);
            }
        },
    );
    // Recreate waits for old pods to be gone: a pod deletion wakes the
    // Deployment that owns the pod's ReplicaSet.
    let (queue, rs_store, owners) = (runner.queue(), replicasets.clone(), deployments.clone());
    let pods = informer::spawn(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            if let watcher::Event::Delete(pod) = event
                && let Some(r) = controller_of(&pod.metadata)
                && r.kind == "ReplicaSet"
            {
                let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                if let Some(rs) = rs_store.get(&ObjectRef::new(&r.name).within(ns)) {
                    enqueue_for_rs(&rs, &owners, &queue);
                }
            }
        },
    );
    deployments.wait_until_ready().await?;
    replicasets.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    let shared = Arc::new(Shared {
        identity: identity.to_string(),
        client,
        deployments,
        replicasets,
        pods,
        written: Arc::new(Written::default()),
    });
    runner
        .run(workers, move |key| reconcile(shared.clone(), key))
        .await;
    Err(anyhow!("the workers stopped"))
}

/// One level-triggered sync of the Deployment `key` (upstream's
/// `syncDeployment`): claim ReplicaSets, then either only scale (paused,
/// or `replicas` changed) or take one rollout step, and write status.
async fn reconcile(shared: Arc<Shared>, key: String) -> Outcome {
    let (ns, name) = runner::split_key(&key);
    let Some(cached) = shared.deployments.get(&ObjectRef::new(name).within(ns)) else {
        return Ok(None);
    };
    let Some(selector) = selector(&cached) else {
        tracing::warn!(key, "a Deployment with an empty selector selects nothing");
        return Ok(None);
    };
    if !shared.written.observed(&key, ns, &shared.replicasets) {
        // The watch delivering our own writes enqueues the key again.
        return Ok(Some(std::time::Duration::from_secs(1)));
    }
    let candidates: Vec<Arc<ReplicaSet>> = shared
        .replicasets
        .state()
        .into_iter()
        .filter(|rs| rs.metadata.namespace.as_deref() == Some(ns))
        .collect();
    let rss = claim::claim(&shared.client, &cached, &selector, candidates).await?;
    let mut ctx = Ctx {
        client: shared.client.clone(),
        identity: shared.identity.clone(),
        d: (*cached).clone(),
        rss,
        new: None,
        written: shared.written.clone(),
        key: key.clone(),
    };
    if cached.metadata.deletion_timestamp.is_some() {
        revision::sync(&mut ctx, false).await?;
        return status::finish(&ctx, &cached, false).await;
    }
    status::check_paused(&mut ctx);
    revision::sync(&mut ctx, false).await?;
    if spec::paused(&ctx.d) || scaling::is_scaling_event(&ctx) {
        scaling::scale(&mut ctx).await?;
        if spec::paused(&ctx.d) {
            history::cleanup(&ctx).await?;
        }
        return status::finish(&ctx, &cached, false).await;
    }
    if spec::is_recreate(&ctx.d) {
        if recreate::scale_down_old(&mut ctx).await? {
            return status::finish(&ctx, &cached, true).await;
        }
        let pods: Vec<Arc<Pod>> = shared
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .collect();
        if recreate::old_pods_running(&ctx, &pods) {
            return status::finish(&ctx, &cached, true).await;
        }
        revision::sync(&mut ctx, true).await?;
        recreate::scale_up_new(&mut ctx).await?;
    } else {
        revision::sync(&mut ctx, true).await?;
        if rolling::step(&mut ctx).await? {
            return status::finish(&ctx, &cached, true).await;
        }
    }
    if let Some(s) = &cached.status
        && status::complete(&ctx.d, s)
    {
        history::cleanup(&ctx).await?;
    }
    status::finish(&ctx, &cached, true).await
}
