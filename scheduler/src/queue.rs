//! The scheduling queue, as upstream's `PriorityQueue`: an active queue
//! ordered by priority then age, a back-off queue for pods that failed
//! recently, and an unschedulable set that waits for a cluster event that
//! could make room rather than for a timer.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::framework::PodInfo;

/// A pod unschedulable this long is retried anyway (upstream's
/// `podMaxInUnschedulablePodsDuration`), in case an event was missed.
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// A pod waiting to be scheduled.
#[derive(Clone, Debug)]
pub struct QueuedPod {
    pub info: Arc<PodInfo>,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// When the pod first entered the queue (ordering and e2e latency).
    pub initial: Instant,
    /// When the pod last entered its current sub-queue.
    pub since: Instant,
    /// The plugins that rejected it last time: only events those plugins
    /// care about retry it.
    pub rejected_by: BTreeSet<&'static str>,
    /// Bumped on every change, so stale heap entries are recognised.
    version: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

/// Orders the active heap: higher priority first, then older first.
struct ActiveKey {
    priority: i32,
    initial: Instant,
    uid: String,
    version: u64,
}

impl PartialEq for ActiveKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for ActiveKey {}
impl PartialOrd for ActiveKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ActiveKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.initial.cmp(&self.initial))
            .then_with(|| other.uid.cmp(&self.uid))
    }
}

/// The three sub-queues and where each pod is.
pub struct SchedulingQueue {
    pods: HashMap<String, (QueuedPod, Where)>,
    /// The unschedulable pods, so cluster events scan only them.
    parked: HashSet<String>,
    active: BinaryHeap<ActiveKey>,
    backoff: BinaryHeap<Reverse<(Instant, String, u64)>>,
    initial_backoff: Duration,
    max_backoff: Duration,
    /// Bumped on every event that may make room; a pod whose attempt began
    /// before the last bump is retried at once instead of parked.
    move_cycle: u64,
    /// The move cycle when each in-flight pod was popped.
    popped_at: HashMap<String, u64>,
    next_version: u64,
}

impl SchedulingQueue {
    /// A queue with upstream's back-off bounds (1 s doubling to 10 s by
    /// default).
    pub fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        SchedulingQueue {
            pods: HashMap::new(),
            parked: HashSet::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            initial_backoff,
            max_backoff,
            move_cycle: 0,
            popped_at: HashMap::new(),
            next_version: 0,
        }
    }

    /// Pods in each sub-queue: (active, backoff, unschedulable).
    pub fn lengths(&self) -> (usize, usize, usize) {
        let mut n = (0, 0, 0);
        for (_, w) in self.pods.values() {
            match w {
                Where::Active => n.0 += 1,
                Where::Backoff => n.1 += 1,
                Where::Unschedulable => n.2 += 1,
                Where::InFlight => {}
            }
        }
        n
    }

    /// Whether the pod is known to the queue (waiting or in flight).
    pub fn contains(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// Every waiting pod (for the nominator).
    pub fn waiting(&self) -> impl Iterator<Item = &Arc<PodInfo>> {
        self.pods.values().map(|(q, _)| &q.info)
    }

    /// A new pending pod, or a change to one already queued. A change to an
    /// unschedulable pod's spec, labels or annotations may make it
    /// schedulable, so it is retried; a status-only change (such as the
    /// scheduler's own condition) is not.
    pub fn add_or_update(&mut self, info: Arc<PodInfo>, now: Instant) {
        let uid = info.uid.clone();
        match self.pods.get_mut(&uid) {
            None => {
                let q = QueuedPod {
                    info,
                    attempts: 0,
                    initial: now,
                    since: now,
                    rejected_by: BTreeSet::new(),
                    version: 0,
                };
                self.push_active(q);
            }
            Some((q, w)) => {
                let relevant = scheduling_relevant_change(&q.info, &info);
                q.info = info;
                match *w {
                    Where::Unschedulable if relevant => {
                        let q = q.clone();
                        self.requeue(q, now);
                    }
                    Where::Unschedulable => {}
                    Where::InFlight if relevant => {
                        // Decided on the old version: if that attempt
                        // fails, retry rather than park.
                        self.move_cycle += 1;
                    }
                    Where::Active => {
                        let q = q.clone();
                        self.push_active(q);
                    }
                    Where::Backoff | Where::InFlight => {}
                }
            }
        }
    }

    /// Drops a pod (deleted, or bound by someone else).
    pub fn remove(&mut self, uid: &str) {
        self.pods.remove(uid);
        self.parked.remove(uid);
        self.popped_at.remove(uid);
    }

    /// The next pod to schedule, moving pods whose back-off has ended first.
    pub fn pop(&mut self, now: Instant) -> Option<QueuedPod> {
        self.flush_backoff(now);
        while let Some(key) = self.active.pop() {
            let Some((q, w)) = self.pods.get_mut(&key.uid) else {
                continue;
            };
            if *w != Where::Active || q.version != key.version {
                continue;
            }
            *w = Where::InFlight;
            q.attempts += 1;
            self.popped_at.insert(key.uid, self.move_cycle);
            return Some(q.clone());
        }
        None
    }

    /// A popped pod that did not fit. If something changed in the cluster
    /// while it was being scheduled it backs off and retries; otherwise it
    /// waits for such a change.
    pub fn add_unschedulable(
        &mut self,
        uid: &str,
        rejected_by: BTreeSet<&'static str>,
        now: Instant,
    ) {
        let popped = self.popped_at.remove(uid);
        let Some((q, w)) = self.pods.get_mut(uid) else {
            return;
        };
        q.since = now;
        q.rejected_by = rejected_by;
        if popped.is_some_and(|c| c < self.move_cycle) {
            let q = q.clone();
            self.push_backoff(q);
        } else {
            *w = Where::Unschedulable;
            self.parked.insert(uid.to_string());
        }
    }

    /// A popped pod that hit an error (or lost a binding race): back off.
    pub fn add_backoff(&mut self, uid: &str, now: Instant) {
        self.popped_at.remove(uid);
        if let Some((q, _)) = self.pods.get_mut(uid) {
            q.since = now;
            let q = q.clone();
            self.push_backoff(q);
        }
    }

    /// The pod was bound: it leaves the queue.
    pub fn done(&mut self, uid: &str) {
        self.remove(uid);
    }

    /// A cluster event that may make room: every unschedulable pod is
    /// retried (after its back-off).
    pub fn move_all_to_active_or_backoff(&mut self, now: Instant) {
        self.move_matching(now, |_| true);
    }

    /// A cluster event that may make room for pods some plugins rejected:
    /// the unschedulable pods `relevant` picks are retried.
    pub fn move_matching(&mut self, now: Instant, relevant: impl Fn(&QueuedPod) -> bool) {
        self.move_cycle += 1;
        let parked: Vec<QueuedPod> = self
            .parked
            .iter()
            .filter_map(|uid| self.pods.get(uid))
            .filter(|(q, w)| *w == Where::Unschedulable && relevant(q))
            .map(|(q, _)| q.clone())
            .collect();
        for q in parked {
            self.requeue(q, now);
        }
    }

    /// Retries pods parked longer than [`MAX_IN_UNSCHEDULABLE`].
    pub fn flush_unschedulable_leftover(&mut self, now: Instant) {
        let stale: Vec<QueuedPod> = self
            .parked
            .iter()
            .filter_map(|uid| self.pods.get(uid))
            .filter(|(q, w)| {
                *w == Where::Unschedulable && now.duration_since(q.since) > MAX_IN_UNSCHEDULABLE
            })
            .map(|(q, _)| q.clone())
            .collect();
        for q in stale {
            self.requeue(q, now);
        }
    }

    /// When the earliest back-off ends, so the loop knows how long to wait.
    pub fn next_backoff_expiry(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((t, _, _))| *t)
    }

    /// The back-off after `attempts` failures: initial × 2^(attempts-1),
    /// capped.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(16);
        (self.initial_backoff * (1u32 << shift)).min(self.max_backoff)
    }

    fn requeue(&mut self, q: QueuedPod, now: Instant) {
        if now < q.since + self.backoff_duration(q.attempts) {
            self.push_backoff(q);
        } else {
            self.push_active(q);
        }
    }

    fn push_active(&mut self, mut q: QueuedPod) {
        self.parked.remove(&q.info.uid);
        self.next_version += 1;
        q.version = self.next_version;
        self.active.push(ActiveKey {
            priority: q.info.priority,
            initial: q.initial,
            uid: q.info.uid.clone(),
            version: q.version,
        });
        self.pods.insert(q.info.uid.clone(), (q, Where::Active));
    }

    /// Parks `q` until its back-off, counted from when it last failed,
    /// ends.
    fn push_backoff(&mut self, mut q: QueuedPod) {
        self.parked.remove(&q.info.uid);
        self.next_version += 1;
        q.version = self.next_version;
        let ready = q.since + self.backoff_duration(q.attempts);
        self.backoff
            .push(Reverse((ready, q.info.uid.clone(), q.version)));
        self.pods.insert(q.info.uid.clone(), (q, Where::Backoff));
    }

    fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((ready, _, _))) = self.backoff.peek() {
            if *ready > now {
                break;
            }
            let Some(Reverse((_, uid, version))) = self.backoff.pop() else {
                break;
            };
            let current = self
                .pods
                .get(&uid)
                .filter(|(q, w)| *w == Where::Backoff && q.version == version)
                .map(|(q, _)| q.clone());
            if let Some(q) = current {
                self.push_active(q);
            }
        }
    }
}

/// Whether a pod changed in a way that can change where it fits (upstream's
/// `isPodUpdated`: anything but status and bookkeeping).
fn scheduling_relevant_change(old: &PodInfo, new: &PodInfo) -> bool {
    let (o, n) = (&old.pod, &new.pod);
    o.spec != n.spec
        || o.metadata.labels != n.metadata.labels
        || o.metadata.annotations != n.metadata.annotations
        || o.metadata.deletion_timestamp != n.metadata.deletion_timestamp
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn info(uid: &str, priority: i32) -> Arc<PodInfo> {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": uid, "namespace": "default", "uid": uid},
            "spec": {"priority": priority, "containers": [{"name": "c"}]}
        }))
        .unwrap_or_default();
        Arc::new(PodInfo::new(Arc::new(pod)))
    }

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(Duration::from_secs(1), Duration::from_secs(10))
    }

    fn popped(q: &mut SchedulingQueue, now: Instant) -> Option<String> {
        q.pop(now).map(|p| p.info.uid.clone())
    }

    #[test]
    fn higher_priority_then_older_pods_go_first() {
        let mut q = queue();
        let t = Instant::now();
        q.add_or_update(info("old-low", 0), t);
        q.add_or_update(info("new-low", 0), t + Duration::from_millis(1));
        q.add_or_update(info("high", 10), t + Duration::from_millis(2));
        assert_eq!(popped(&mut q, t).as_deref(), Some("high"));
        assert_eq!(popped(&mut q, t).as_deref(), Some("old-low"));
        assert_eq!(popped(&mut q, t).as_deref(), Some("new-low"));
        assert_eq!(popped(&mut q, t), None);
    }

    #[test]
    fn unschedulable_pods_wait_for_an_event_then_back_off() {
        let mut q = queue();
        let t = Instant::now();
        q.add_or_update(info("p", 0), t);
        assert!(q.pop(t).is_some());
        q.add_unschedulable("p", BTreeSet::new(), t);
        assert_eq!(
            popped(&mut q, t + Duration::from_secs(60)),
            None,
            "no event, no retry"
        );
        q.move_all_to_active_or_backoff(t + Duration::from_millis(100));
        assert_eq!(
            popped(&mut q, t + Duration::from_millis(200)),
            None,
            "still backing off"
        );
        assert_eq!(q.next_backoff_expiry(), Some(t + Duration::from_secs(1)));
        assert_eq!(
            popped(&mut q, t + Duration::from_secs(1)).as_deref(),
            Some("p")
        );
    }

    #[test]
    fn an_event_during_the_attempt_means_retry_not_park() {
        let mut q = queue();
        let t = Instant::now();
        q.add_or_update(info("p", 0), t);
        assert!(q.pop(t).is_some());
        q.move_all_to_active_or_backoff(t);
        q.add_unschedulable("p", BTreeSet::new(), t);
        assert_eq!(
            popped(&mut q, t + Duration::from_secs(1)).as_deref(),
            Some("p")
        );
    }

    #[test]
    fn a_status_only_update_leaves_a_parked_pod_parked() {
        let mut q = queue();
        let t = Instant::now();
        q.add_or_update(info("p", 0), t);
        assert!(q.pop(t).is_some());
        q.add_unschedulable("p", BTreeSet::new(), t);
        let later = t + Duration::from_secs(30);
        q.add_or_update(info("p", 0), later);
        assert_eq!(
            popped(&mut q, later),
            None,
            "our own status patch must not retry the pod"
        );
        q.add_or_update(info("p", 5), later);
        assert_eq!(
            popped(&mut q, later).as_deref(),
            Some("p"),
            "a spec change retries it"
        );
    }

    #[test]
    fn a_change_during_the_attempt_retries_instead_of_parking() {
        let mut q = queue();
        let t = Instant::now();
        q.add_or_update(info("p", 0), t);
        assert!(q.pop(t).is_some());
        q.add_or_update(info("p", 7), t);
        q.add_unschedulable("p", BTreeSet::new(), t);
        assert_eq!(
            popped(&mut q, t + Duration::from_secs(1)).as_deref(),
            Some("p")
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let q = queue();
        assert_eq!(q.backoff_duration(1), Duration::from_secs(1));
        assert_eq!(q.backoff_duration(3), Duration::from_secs(4));
        assert_eq!(q.backoff_duration(9), Duration::from_secs(10));
    }

    #[test]
    fn a_removed_pod_is_never_popped() {
        let mut q = queue();
        let t = Instant::now();
        q.add_or_update(info("p", 0), t);
        q.remove("p");
        assert_eq!(popped(&mut q, t), None);
    }
}
