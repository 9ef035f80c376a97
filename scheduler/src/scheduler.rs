//! The scheduling thread: applies informer events to the cache and queue,
//! then takes the next pod, decides, assumes it on the chosen node and
//! hands the binding to [`Actions`], one pod at a time, as upstream's
//! `scheduleOne`. One thread owns all scheduling state, so decisions read
//! it without locks.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::actions::Actions;
use crate::algorithm::{self, ScheduleError};
use crate::cache::ClusterCache;
use crate::framework::PodInfo;
use crate::informers::{Change, ClusterEvent, INFORMERS};
use crate::metrics::Metrics;
use crate::nominator::Nominator;
use crate::preemption::{self, Outcome};
use crate::profile::Profile;
use crate::queue::SchedulingQueue;

/// How often parked pods are checked against [`crate::queue::MAX_IN_UNSCHEDULABLE`]
/// and queue gauges refreshed when idle.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Settings the loop needs besides its profiles.
pub struct LoopConfig {
    /// Global `percentageOfNodesToScore` (0: adaptive).
    pub percentage_of_nodes_to_score: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// All scheduling state, owned by the scheduling thread.
pub struct Scheduler {
    profiles: HashMap<String, Profile>,
    cache: ClusterCache,
    queue: SchedulingQueue,
    nominator: Nominator,
    actions: Actions,
    metrics: Metrics,
    events: UnboundedReceiver<ClusterEvent>,
    runtime: Handle,
    percentage: u32,
    next_start: usize,
    synced: HashSet<&'static str>,
}

impl Scheduler {
    /// A scheduler for `profiles`, fed by `events`.
    pub fn new(
        profiles: Vec<Profile>,
        cfg: LoopConfig,
        actions: Actions,
        metrics: Metrics,
        events: UnboundedReceiver<ClusterEvent>,
        runtime: Handle,
    ) -> Self {
        Scheduler {
            profiles: profiles
                .into_iter()
                .map(|p| (p.scheduler_name.clone(), p))
                .collect(),
            cache: ClusterCache::default(),
            queue: SchedulingQueue::new(cfg.initial_backoff, cfg.max_backoff),
            nominator: Nominator::default(),
            actions,
            metrics,
            events,
            runtime,
            percentage: cfg.percentage_of_nodes_to_score,
            next_start: 0,
            synced: HashSet::new(),
        }
    }

    /// Runs until the event channel closes. Blocks: call it on its own
    /// thread.
    pub fn run(mut self) {
        let mut last_housekeeping = Instant::now();
        loop {
            // Apply everything that has happened before the next decision.
            loop {
                match self.events.try_recv() {
                    Ok(e) => self.apply(e),
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            if now.duration_since(last_housekeeping) >= HOUSEKEEPING {
                last_housekeeping = now;
                self.queue.flush_unschedulable_leftover(now);
                self.publish_queue_gauges();
            }
            let ready = self.synced.len() == INFORMERS.len();
            if ready && let Some(q) = self.queue.pop(now) {
                self.schedule_one(q);
                continue;
            }
            self.publish_queue_gauges();
            // Nothing to do: wait for an event or the next back-off expiry.
            let wake = self
                .queue
                .next_backoff_expiry()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(HOUSEKEEPING)
                .min(HOUSEKEEPING);
            let next = self
                .runtime
                .block_on(async { tokio::time::timeout(wake, self.events.recv()).await });
            match next {
                Ok(Some(e)) => self.apply(e),
                Ok(None) => return,
                Err(_) => {}
            }
        }
    }

    fn publish_queue_gauges(&self) {
        let (active, backoff, unschedulable) = self.queue.lengths();
        let g = &self.metrics.pending_pods;
        g.with_label_values(&["active"]).set(active as i64);
        g.with_label_values(&["backoff"]).set(backoff as i64);
        g.with_label_values(&["unschedulable"])
            .set(unschedulable as i64);
    }

    /// One decision for one pod.
    fn schedule_one(&mut self, q: crate::queue::QueuedPod) {
        let started = Instant::now();
        let info = q.info.clone();
        let scheduler_name = scheduler_name(&info.pod);
        let Some(profile) = self.profiles.get(scheduler_name) else {
            self.queue.remove(&info.uid);
            return;
        };
        if info.is_terminating() || self.cache.is_placed(&info.uid) {
            self.queue.remove(&info.uid);
            return;
        }
        let percentage = profile
            .percentage_of_nodes_to_score
            .unwrap_or(self.percentage);
        let profile_name = profile.scheduler_name.clone();
        let decision = decide(
            profile,
            &info,
            &self.cache,
            &self.nominator,
            percentage,
            &mut self.next_start,
        );
        let result_label = match decision {
            Decision::Bind(node) => {
                self.cache.assume(info.clone(), &node);
                self.nominator.remove(&info.uid);
                self.actions.bind(info, node, q.initial, q.attempts);
                "scheduled"
            }
            Decision::Unschedulable {
                message,
                rejected_by,
                preempt,
                preemption_attempted,
                clear_nomination,
            } => {
                if preemption_attempted {
                    self.metrics.preemption_attempts.inc();
                }
                let mut nominate = None;
                if clear_nomination {
                    // Preemption cannot help on the nominated node any more:
                    // stop reserving room there.
                    self.nominator.remove(&info.uid);
                    nominate = Some(None);
                }
                if let Some((candidate, displaced)) = preempt {
                    for d in displaced {
                        self.nominator.remove(&d.uid);
                        self.actions.clear_nomination(d);
                    }
                    self.nominator.nominate(info.clone(), &candidate.node);
                    nominate = Some(Some(candidate.node.clone()));
                    self.actions
                        .preempt(info.clone(), candidate.node, candidate.victims);
                }
                self.actions
                    .report_unschedulable(info.clone(), "Unschedulable", message, nominate);
                self.queue
                    .add_unschedulable(&info.uid, rejected_by, Instant::now());
                "unschedulable"
            }
            Decision::Error(e) => {
                tracing::warn!(pod = %info.key, error = %e, "scheduling failed");
                self.actions
                    .report_unschedulable(info.clone(), "SchedulerError", e, None);
                self.queue.add_backoff(&info.uid, Instant::now());
                "error"
            }
        };
        let labels = [result_label, profile_name.as_str()];
        self.metrics.attempts.with_label_values(&labels).inc();
        self.metrics
            .attempt_duration
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
    }

    /// Applies one informer event (or binding result).
    fn apply(&mut self, event: ClusterEvent) {
        let now = Instant::now();
        match event {
            ClusterEvent::Synced(name) => {
                self.synced.insert(name);
            }
            ClusterEvent::BindFailed { uid, error } => {
                tracing::debug!(uid, error, "retrying after a failed binding");
                self.cache.forget(&uid);
                self.queue.add_backoff(&uid, now);
                // The forgotten pod held room others may be waiting for.
                self.queue.move_all_to_active_or_backoff(now);
            }
            ClusterEvent::Pod(change) => self.apply_pod(change, now),
            ClusterEvent::Node(Change::Upsert(node)) => {
                self.cache.upsert_node(node);
                self.queue.move_all_to_active_or_backoff(now);
            }
            ClusterEvent::Node(Change::Delete(node)) => {
                self.cache.remove_node(&node.name_any());
            }
            ClusterEvent::Namespace(change) => {
                let snap = self.cache.snapshot_mut();
                match change {
                    Change::Upsert(ns) => {
                        snap.namespace_labels
                            .insert(ns.name_any(), ns.labels().clone());
                    }
                    Change::Delete(ns) => {
                        snap.namespace_labels.remove(&ns.name_any());
                    }
                }
                self.queue
                    .move_matching(now, |q| q.rejected_by.contains("InterPodAffinity"));
            }
            ClusterEvent::Pvc(change) => {
                let snap = self.cache.snapshot_mut();
                match change {
                    Change::Upsert(o) => {
                        snap.pvcs.insert(namespaced_key(o.as_ref()), o);
                    }
                    Change::Delete(o) => {
                        snap.pvcs.remove(&namespaced_key(o.as_ref()));
                    }
                }
                self.move_volume_pods(now);
            }
            ClusterEvent::Pv(change) => {
                let snap = self.cache.snapshot_mut();
                match change {
                    Change::Upsert(o) => {
                        snap.pvs.insert(o.name_any(), o);
                    }
                    Change::Delete(o) => {
                        snap.pvs.remove(&o.name_any());
                    }
                }
                self.move_volume_pods(now);
            }
            ClusterEvent::StorageClass(change) => {
                let snap = self.cache.snapshot_mut();
                match change {
                    Change::Upsert(o) => {
                        snap.storage_classes.insert(o.name_any(), o);
                    }
                    Change::Delete(o) => {
                        snap.storage_classes.remove(&o.name_any());
                    }
                }
                self.move_volume_pods(now);
            }
            ClusterEvent::Service(change) => {
                let (svc, keep) = change.split();
                let selector = keep
                    .then(|| svc.spec.as_ref().and_then(|s| s.selector.clone()))
                    .flatten();
                let ns = svc.namespace().unwrap_or_default();
                self.cache
                    .snapshot_mut()
                    .spreading
                    .set_service(&ns, &svc.name_any(), selector);
            }
            ClusterEvent::ReplicationController(change) => {
                let (rc, keep) = change.split();
                let selector = keep
                    .then(|| rc.spec.as_ref().and_then(|s| s.selector.clone()))
                    .flatten()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.into_iter().collect());
                self.set_controller("ReplicationController", rc.as_ref(), selector);
            }
            ClusterEvent::ReplicaSet(change) => {
                let (rs, keep) = change.split();
                let selector = keep
                    .then(|| rs.spec.as_ref().map(|s| s.selector.clone()))
                    .flatten()
                    .and_then(|s| s.try_into().ok());
                self.set_controller("ReplicaSet", rs.as_ref(), selector);
            }
            ClusterEvent::StatefulSet(change) => {
                let (ss, keep) = change.split();
                let selector = keep
                    .then(|| ss.spec.as_ref().map(|s| s.selector.clone()))
                    .flatten()
                    .and_then(|s| s.try_into().ok());
                self.set_controller("StatefulSet", ss.as_ref(), selector);
            }
            ClusterEvent::Pdb(change) => {
                let snap = self.cache.snapshot_mut();
                match change {
                    Change::Upsert(o) => {
                        snap.pdbs.insert(namespaced_key(o.as_ref()), o);
                    }
                    Change::Delete(o) => {
                        snap.pdbs.remove(&namespaced_key(o.as_ref()));
                    }
                }
            }
        }
    }

    fn set_controller<K: kube::Resource>(
        &mut self,
        kind: &str,
        obj: &K,
        selector: Option<kube::core::Selector>,
    ) {
        let ns = obj.namespace().unwrap_or_default();
        self.cache
            .snapshot_mut()
            .spreading
            .set_controller(kind, &ns, &obj.name_any(), selector);
    }

    fn move_volume_pods(&mut self, now: Instant) {
        self.queue
            .move_matching(now, |q| q.rejected_by.contains("VolumeBinding"));
    }

    fn apply_pod(&mut self, change: Change<Pod>, now: Instant) {
        match change {
            Change::Upsert(pod) => {
                let uid = pod.uid().unwrap_or_default();
                let assigned = !node_name(&pod).is_empty();
                if assigned {
                    self.queue.remove(&uid);
                    self.nominator.remove(&uid);
                    self.cache.upsert_bound_pod(pod.clone());
                    let finished = matches!(
                        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    );
                    if finished {
                        self.queue.move_all_to_active_or_backoff(now);
                    } else {
                        // A placed pod (ours or not) may satisfy affinity
                        // or spread constraints of waiting pods.
                        self.queue.move_matching(now, |q| {
                            q.rejected_by.contains("InterPodAffinity")
                                || q.rejected_by.contains("PodTopologySpread")
                        });
                    }
                    return;
                }
                if !self.profiles.contains_key(scheduler_name(&pod)) {
                    return;
                }
                let gated = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.scheduling_gates.as_ref())
                    .is_some_and(|g| !g.is_empty());
                if pod.metadata.deletion_timestamp.is_some() || gated {
                    // Deleted, or held back by scheduling gates until the
                    // update that removes the last one.
                    self.queue.remove(&uid);
                    self.nominator.remove(&uid);
                    return;
                }
                if self.cache.is_placed(&uid) {
                    // Assumed; its binding is in flight.
                    return;
                }
                let info = Arc::new(PodInfo::new(pod));
                self.nominator.update(&info);
                self.queue.add_or_update(info, now);
            }
            Change::Delete(pod) => {
                let uid = pod.uid().unwrap_or_default();
                self.queue.remove(&uid);
                self.nominator.remove(&uid);
                if self.cache.is_placed(&uid) {
                    self.cache.remove_pod(&uid);
                    self.queue.move_all_to_active_or_backoff(now);
                }
            }
        }
    }
}

/// What one decision concluded, computed while the state is borrowed and
/// applied afterwards.
enum Decision {
    Bind(String),
    Unschedulable {
        message: String,
        rejected_by: BTreeSet<&'static str>,
        /// The preemption to carry out and the nominated pods it displaces.
        preempt: Option<(preemption::Candidate, Vec<Arc<PodInfo>>)>,
        preemption_attempted: bool,
        /// Preemption found no node: clear the pod's nomination.
        clear_nomination: bool,
    },
    Error(String),
}

/// Filters, scores and, when nothing fits, tries preemption.
fn decide(
    profile: &Profile,
    info: &PodInfo,
    cache: &ClusterCache,
    nominator: &Nominator,
    percentage: u32,
    next_start: &mut usize,
) -> Decision {
    let snapshot = cache.snapshot();
    let nominated = nominator.nominated();
    let (cycle, result) =
        algorithm::schedule(profile, info, snapshot, nominated, percentage, next_start);
    let mut fit = match result {
        Ok(placement) => return Decision::Bind(placement.node),
        Err(ScheduleError::Internal(e)) => return Decision::Error(e),
        Err(ScheduleError::Fit(fit)) => fit,
    };
    if snapshot.nodes.is_empty() {
        // Upstream treats an empty cluster as an error (back-off), not as
        // an unschedulable pod.
        return Decision::Error(fit.message());
    }
    let mut preempt = None;
    let mut clear_nomination = false;
    if let Some(args) = profile.preemption {
        match preemption::preempt(profile, &args, &cycle, info, snapshot, &fit, nominated) {
            Outcome::Preempt(candidate) => {
                let displaced =
                    preemption::lower_priority_nominated(info, &candidate.node, nominated);
                preempt = Some((candidate, displaced));
            }
            Outcome::NotEligible(msg) => fit.post_filter_msg = Some(msg),
            Outcome::NoCandidate(msg) => {
                fit.post_filter_msg = Some(msg);
                clear_nomination = true;
            }
        }
    }
    Decision::Unschedulable {
        clear_nomination,
        message: fit.message(),
        rejected_by: std::mem::take(&mut fit.rejected_by),
        preempt,
        preemption_attempted: profile.preemption.is_some(),
    }
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn scheduler_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or(crate::DEFAULT_SCHEDULER_NAME)
}

fn namespaced_key<K: kube::Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}
