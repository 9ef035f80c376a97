//! The DaemonSet controller (upstream's `daemonset`): one pod per eligible
//! node (`placement.rs`), created pinned to its node through node affinity
//! so the scheduler binds it; failed pods replaced with back-off; the
//! template rolled out by `RollingUpdate` (`maxUnavailable`/`maxSurge`) or
//! left to `OnDelete`; ControllerRevisions for `kubectl rollout
//! history|undo`; and upstream's status counts.

mod backoff;
mod placement;
mod plan;
mod revisions;
mod status;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::api::Api;
use kube::core::Selector;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

use crate::controllers::replicaset::claim::{self, Owner, controller_ref, non_empty};
use crate::controllers::replicaset::expectations::Expectations;
use crate::controllers::replicaset::pod_control::{Report, create_in_batches, delete_all};
use crate::controllers::replicaset::pod_events::{PodEvents, owner_ref};
use crate::controllers::replicaset::pods::{self, is_available, is_ready};
use crate::controllers::replicaset::status::ManageFailure;
use crate::history::CONTROLLER_REVISION_HASH;
use crate::informer;
use crate::intstr::scaled;
use crate::metrics::Metrics;
use crate::recorder::EventSink;
use crate::runner::{self, Outcome, Runner};
use placement::Fit;
use plan::{Budget, NodePods, Step};

/// Upstream's name for the controller.
const CONTROLLER: &str = "daemonset";

/// At most this many pods are created or deleted in one sync (upstream's
/// `BurstReplicas` for DaemonSets).
const BURST_REPLICAS: usize = 250;

impl Owner for DaemonSet {
    fn selector(&self) -> Option<Selector> {
        let ls = self.spec.as_ref()?.selector.clone();
        Selector::try_from(ls).ok().and_then(non_empty)
    }
}

/// What every worker shares.
struct Shared {
    client: kube::Client,
    daemonsets: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Arc<Expectations>,
    failed_pods: backoff::FailedPods,
    events: EventSink,
}

/// Watches DaemonSets, their pods and revisions, and nodes, and keeps a
/// daemon pod on every eligible node with `workers` workers.
pub async fn run(
    client: kube::Client,
    metrics: Metrics,
    workers: usize,
    identity: &str,
) -> Result<()> {
    let runner = Runner::new(CONTROLLER, &metrics);
    let expectations = Arc::new(Expectations::default());
    let daemonsets = informer::spawn(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
        informer::enqueue_own_key(runner.queue()),
    );
    let handler = Arc::new(Mutex::new(PodEvents::new(
        daemonsets.clone(),
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
    let nodes = {
        // Any node change may change where every DaemonSet belongs.
        let (daemonsets, queue) = (daemonsets.clone(), runner.queue());
        informer::spawn(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            move |event: &watcher::Event<Node>| {
                if informer::object(event).is_some() {
                    for ds in daemonsets.state() {
                        queue.add(runner::key(
                            ds.metadata.namespace.as_deref(),
                            ds.metadata.name.as_deref().unwrap_or_default(),
                        ));
                    }
                }
            },
        )
    };
    let revisions = {
        let queue = runner.queue();
        informer::spawn(
            Api::<ControllerRevision>::all(client.clone()),
            watcher::Config::default(),
            move |event: &watcher::Event<ControllerRevision>| {
                if let Some(r) = informer::object(event)
                    && let Some(owner) = pods::controller_of(&r.metadata)
                    && owner.kind == "DaemonSet"
                {
                    queue.add(runner::key(r.metadata.namespace.as_deref(), &owner.name));
                }
            },
        )
    };
    daemonsets.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    nodes.wait_until_ready().await?;
    revisions.wait_until_ready().await?;
    let shared = Arc::new(Shared {
        events: EventSink::new(client.clone(), "daemonset-controller", identity),
        client,
        daemonsets,
        pods,
        nodes,
        revisions,
        expectations,
        failed_pods: backoff::FailedPods::default(),
    });
    runner
        .run(workers, move |key| reconcile(shared.clone(), key))
        .await;
    Err(anyhow!("the workers stopped"))
}

/// One level-triggered sync of the DaemonSet `key`.
async fn reconcile(shared: Arc<Shared>, key: String) -> Outcome {
    let Some(ds) = shared.daemonsets.get(&owner_ref::<DaemonSet>(&key)) else {
        shared.expectations.delete(&key);
        shared.failed_pods.forget(&key);
        return Ok(None);
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let Some(selector) = ds.selector() else {
        tracing::warn!(key, "empty selector selects no pods");
        return Ok(None);
    };
    let (ns, _) = runner::split_key(&key);
    let mut nodes: Vec<(String, Fit)> = shared
        .nodes
        .state()
        .iter()
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                placement::fit(&ds, n),
            )
        })
        .collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    let candidates: Vec<Arc<Pod>> = shared
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .collect();
    let owned = claim::claim(&shared.client, ds.as_ref(), &selector, candidates, |_| true).await?;
    let node_pods = by_node(owned);
    let cached_revisions: Vec<Arc<ControllerRevision>> = shared
        .revisions
        .state()
        .into_iter()
        .filter(|r| r.metadata.namespace.as_deref() == Some(ns))
        .collect();
    let (current, old, collision_count) =
        revisions::current(&shared.client, &ds, &selector, cached_revisions).await?;
    let hash = revisions::hash_of(&current);
    let now = jiff::Timestamp::now();
    let mut failure = None;
    let mut retry_after = None;
    if shared.expectations.satisfied(&key) {
        let step = next_step(&shared, &key, &ds, &nodes, &node_pods, &hash, now);
        retry_after = step
            .backing_off
            .iter()
            .filter_map(|n| shared.failed_pods.remaining(&key, n))
            .min();
        failure = execute(&shared, &key, &ds, &hash, step).await.err();
        revisions::clean_up(&shared.client, &ds, &current, &old, &node_pods).await?;
    }
    let mut status = status::calculate(&ds, &nodes, &node_pods, &hash, now);
    if collision_count > 0 {
        status.collision_count = Some(collision_count);
    }
    let api: Api<DaemonSet> = Api::namespaced(shared.client.clone(), ns);
    status::write_if_changed(&api, &ds, &status).await?;
    if let Some(f) = failure {
        return Err(anyhow!("{}: {}", f.reason, f.message));
    }
    let min_ready = min_ready_seconds(&ds);
    let becoming_available = min_ready > 0
        && node_pods
            .values()
            .flatten()
            .any(|p| is_ready(p) && !is_available(p, min_ready, now));
    let availability_check = becoming_available.then(|| Duration::from_secs(min_ready as u64));
    Ok([retry_after, availability_check]
        .into_iter()
        .flatten()
        .min())
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// The DaemonSet's pods by the node they are for.
fn by_node(owned: Vec<Arc<Pod>>) -> NodePods {
    let mut out: NodePods = BTreeMap::new();
    for pod in owned {
        if let Some(node) = placement::target_node(&pod) {
            out.entry(node.to_string()).or_default().push(pod.clone());
        }
    }
    out
}

/// `manage`'s step if it has one, else the rolling update's.
fn next_step(
    shared: &Shared,
    key: &str,
    ds: &DaemonSet,
    nodes: &[(String, Fit)],
    node_pods: &NodePods,
    hash: &str,
    now: jiff::Timestamp,
) -> Step {
    let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    let rolling = strategy.and_then(|s| s.type_.as_deref()) != Some("OnDelete");
    let rolling_update = strategy.and_then(|s| s.rolling_update.as_ref());
    let desired = nodes.iter().filter(|(_, f)| f.should_run).count() as i32;
    let one = IntOrString::Int(1);
    let mut max_unavailable = scaled(
        rolling_update
            .and_then(|r| r.max_unavailable.as_ref())
            .or(Some(&one)),
        0,
        desired,
        true,
    );
    let max_surge = scaled(
        rolling_update.and_then(|r| r.max_surge.as_ref()),
        0,
        desired,
        true,
    );
    if max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    let surge = rolling && max_surge > 0;
    let manage = plan::manage(nodes, node_pods, hash, surge, |node| {
        shared.failed_pods.remaining(key, node).is_some()
    });
    if !manage.is_empty() || !rolling {
        return manage;
    }
    let budget = Budget {
        max_unavailable,
        max_surge,
        min_ready_seconds: min_ready_seconds(ds),
    };
    let mut step = plan::rolling_update(node_pods, hash, budget, now, |node| {
        nodes.iter().any(|(n, f)| n == node && f.should_run)
    });
    step.backing_off = manage.backing_off;
    step
}

/// Upstream's `syncNodes`: creates the step's pods in slow-start batches
/// and deletes its victims, with expectations raised first.
async fn execute(
    shared: &Shared,
    key: &str,
    ds: &DaemonSet,
    hash: &str,
    mut step: Step,
) -> Result<(), ManageFailure> {
    let regarding = ds.object_ref(&());
    for (pod, node) in &step.failed {
        shared.failed_pods.replaced(key, node);
        let ns = ds.metadata.namespace.as_deref().unwrap_or_default();
        shared.events.warning(
            regarding.clone(),
            "FailedDaemonPod",
            "Delete",
            format!("Found failed daemon pod {ns}/{pod} on node {node}, will try to kill it"),
        );
    }
    step.create_on.truncate(BURST_REPLICAS);
    step.delete.truncate(BURST_REPLICAS);
    if step.is_empty() {
        return Ok(());
    }
    let new_pods: Vec<Pod> = step
        .create_on
        .iter()
        .filter_map(|node| new_pod(ds, node, hash))
        .collect();
    shared.expectations.expect(
        key,
        new_pods.len(),
        step.delete.iter().map(|p| pods::key(p)),
    );
    let report = Report {
        events: &shared.events,
        regarding,
    };
    let api: Api<Pod> = Api::namespaced(
        shared.client.clone(),
        ds.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let created = create_in_batches(&api, &shared.expectations, &report, key, new_pods).await;
    let deleted = delete_all(&api, &shared.expectations, &report, key, &step.delete).await;
    created.and(deleted)
}

/// The pod `ds` runs on `node`, labelled with the revision `hash` and
/// controlled by `ds`.
fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Option<Pod> {
    let mut pod = placement::pod_for_node(ds, node);
    pod.metadata.generate_name = Some(format!("{}-", ds.metadata.name.as_deref()?));
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(CONTROLLER_REVISION_HASH.to_string(), hash.to_string());
    pod.metadata.owner_references = Some(vec![controller_ref(ds)?]);
    Some(pod)
}
