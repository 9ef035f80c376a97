//! The ReplicaSet and ReplicationController controllers (upstream's
//! `replicaset` and `replicationcontroller`, one implementation over both
//! kinds through [`kind::Replicated`]): keep `spec.replicas` active pods
//! from the template, adopt and release pods by selector, and report
//! counts in `status`.

pub(crate) mod claim;
pub(crate) mod expectations;
mod kind;
mod manage;
pub(crate) mod pod_control;
pub(crate) mod pod_events;
pub(crate) mod pods;
mod ranking;
pub(crate) mod status;

use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

pub use kind::Replicated;

use crate::informer;
use crate::metrics::Metrics;
use crate::recorder::EventSink;
use crate::runner::{self, Outcome, Runner};
use expectations::Expectations;

/// What every worker shares.
struct Shared<K: Replicated> {
    client: kube::Client,
    owners: Store<K>,
    pods: Store<Pod>,
    expectations: Arc<Expectations>,
    events: EventSink,
}

/// Watches `K` objects and pods, and keeps each object's pods at its
/// replica count with `workers` workers.
pub async fn run<K: Replicated>(
    client: kube::Client,
    metrics: Metrics,
    workers: usize,
    identity: &str,
) -> Result<()> {
    let runner = Runner::new(K::CONTROLLER, &metrics);
    let expectations = Arc::new(Expectations::default());
    let queue = runner.queue();
    let owners = informer::spawn(
        Api::<K>::all(client.clone()),
        watcher::Config::default(),
        informer::enqueue_own_key(queue),
    );
    let handler = Arc::new(Mutex::new(pod_events::PodEvents::new(
        owners.clone(),
        runner.queue(),
        expectations.clone(),
    )));
    let pods = informer::spawn(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            handler
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .handle(event)
        },
    );
    owners.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    let shared = Arc::new(Shared {
        events: EventSink::new(client.clone(), K::EVENT_SOURCE, identity),
        client,
        owners,
        pods,
        expectations,
    });
    runner
        .run(workers, move |key| reconcile(shared.clone(), key))
        .await;
    Err(anyhow!("the workers stopped"))
}

/// One level-triggered sync of the object `key`: claim pods, create or
/// delete one batch if earlier changes have all been observed, and write
/// the status the cached pods give.
async fn reconcile<K: Replicated>(shared: Arc<Shared<K>>, key: String) -> Outcome {
    let Some(owner) = shared.owners.get(&pod_events::owner_ref::<K>(&key)) else {
        shared.expectations.delete(&key);
        return Ok(None);
    };
    let Some(selector) = owner.selector() else {
        tracing::warn!(
            controller = K::CONTROLLER,
            key,
            "empty selector selects no pods"
        );
        return Ok(None);
    };
    let needs_sync = shared.expectations.satisfied(&key);
    let (ns, _) = runner::split_key(&key);
    let candidates: Vec<Arc<Pod>> = shared
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && pods::is_active(p))
        .collect();
    let owned = claim::claim(
        &shared.client,
        owner.as_ref(),
        &selector,
        candidates,
        |_| true,
    )
    .await?;
    let failure = if needs_sync && owner.meta().deletion_timestamp.is_none() {
        manage::manage(
            &shared.client,
            &shared.expectations,
            &shared.events,
            &key,
            owner.as_ref(),
            &owned,
        )
        .await
        .err()
    } else {
        None
    };
    let now = jiff::Timestamp::now();
    let status = status::calculate(owner.as_ref(), &owned, failure.as_ref(), now);
    let api: Api<K> = Api::namespaced(shared.client.clone(), ns);
    status::write_if_changed(&api, owner.as_ref(), &status).await?;
    if let Some(f) = failure {
        return Err(anyhow!("{}: {}", f.reason, f.message));
    }
    Ok(status::next_availability_check(
        owner.min_ready_seconds(),
        &owned,
        now,
    ))
}
