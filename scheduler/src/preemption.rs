//! Preemption (upstream's DefaultPreemption PostFilter and
//! `framework/preemption`): when a pod fits nowhere, find a node where
//! evicting lower-priority pods would make room, evicting as few and as
//! unimportant pods as possible and sparing those a PodDisruptionBudget
//! protects. Pure decision logic: the caller evicts the victims, nominates
//! the node and clears the nominations returned by
//! [`lower_priority_nominated`].

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::{Selector, SelectorExt};
use rand::Rng;

use crate::algorithm::{self, Cycle, FitError, Nominated, histogram};
use crate::framework::{NodeInfo, PodInfo, Snapshot, Status};
use crate::profile::{PreemptionArgs, Profile};

/// Reason counted for nodes where evicting pods cannot help (upstream's
/// status for nodes absent from the dry run).
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Reason for a node with no pod of lower priority than the preemptor.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
/// Why a pod with `preemptionPolicy: Never` does not preempt.
pub const NOT_ELIGIBLE_POLICY: &str = "not eligible due to preemptionPolicy=Never.";
/// Why a pod whose earlier victims are still terminating does not preempt
/// again.
pub const NOT_ELIGIBLE_TERMINATING: &str =
    "not eligible due to a terminating pod on the nominated node.";

/// A node where the pod fits once `victims` are gone.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub node: String,
    /// Most important first (priority, then earliest start).
    pub victims: Vec<Arc<PodInfo>>,
    /// How many victims' eviction a PodDisruptionBudget does not allow.
    pub num_pdb_violations: usize,
}

/// What preemption decided. Every message is the whole PostFilter message
/// upstream appends to the FitError, `preemption: ` prefix included.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Evict the victims and nominate the pod to the node.
    Preempt(Candidate),
    /// The pod may not preempt now; keep its nomination. Also used when a
    /// plugin failed on every node tried (upstream returns an error there
    /// and likewise leaves the nomination alone).
    NotEligible(String),
    /// No node works; clear the pod's nomination.
    NoCandidate(String),
}

/// Decides whether and where `pod` preempts, after `algorithm::schedule`
/// failed with `fit` in `cycle`.
pub fn preempt(
    profile: &Profile,
    args: &PreemptionArgs,
    cycle: &Cycle,
    pod: &PodInfo,
    snapshot: &Snapshot,
    fit: &FitError,
    nominated: &Nominated,
) -> Outcome {
    if let Err(msg) = eligible(pod, snapshot, fit) {
        return Outcome::NotEligible(format!("preemption: {msg}"));
    }
    let potential: Vec<&NodeInfo> = snapshot
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                fit.node_statuses.get(&n.name),
                Some(Status::Unschedulable(_))
            )
        })
        .collect();
    let num_all = snapshot.nodes.len();
    if potential.is_empty() {
        return Outcome::NoCandidate(no_candidate_message(num_all, &HashMap::new()));
    }
    let pdbs = Pdbs::new(snapshot);
    let offset = rand::rng().random_range(0..potential.len());
    let want = num_candidates(args, potential.len());
    let dry = DryRun {
        profile,
        cycle,
        pod,
        pdbs: &pdbs,
        nominated,
    };
    let (candidates, statuses) = dry.run(&potential, offset, want);
    if let Some(best) = pick_one(candidates) {
        return Outcome::Preempt(best);
    }
    let errors: Vec<&str> = statuses
        .values()
        .filter_map(|s| match s {
            Status::Error(e) => Some(e.as_str()),
            _ => None,
        })
        .collect();
    if !errors.is_empty() {
        return Outcome::NotEligible(format!("preemption: {}", errors.join("; ")));
    }
    Outcome::NoCandidate(no_candidate_message(num_all, &statuses))
}

/// Pods nominated to `node` with lower priority than `pod`: once `pod`
/// preempts there they may no longer fit, so the caller clears their
/// nomination and they look elsewhere sooner (upstream's
/// `getLowerPriorityNominatedPods`).
pub fn lower_priority_nominated(
    pod: &PodInfo,
    node: &str,
    nominated: &Nominated,
) -> Vec<Arc<PodInfo>> {
    nominated
        .get(node)
        .into_iter()
        .flatten()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect()
}

/// How many candidates to find before choosing (upstream's
/// `calculateNumCandidates`): enough to choose well, not every node.
pub fn num_candidates(args: &PreemptionArgs, potential: usize) -> usize {
    (potential * args.min_candidate_nodes_percentage / 100)
        .max(args.min_candidate_nodes_absolute)
        .min(potential)
}

/// Upstream's `PodEligibleToPreemptOthers`: `Err` carries the reason.
fn eligible(pod: &PodInfo, snapshot: &Snapshot, fit: &FitError) -> Result<(), &'static str> {
    let spec = pod.pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Err(NOT_ELIGIBLE_POLICY);
    }
    let nominated_node = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty());
    let Some(name) = nominated_node else {
        return Ok(());
    };
    // A nominated node that preemption cannot help any more is given up.
    if !matches!(fit.node_statuses.get(name), Some(Status::Unschedulable(_))) {
        return Ok(());
    }
    let waiting = snapshot.node(name).is_some_and(|node| {
        node.pods
            .iter()
            .any(|p| p.priority < pod.priority && p.is_terminating())
    });
    if waiting {
        return Err(NOT_ELIGIBLE_TERMINATING);
    }
    Ok(())
}

/// "preemption: 0/N nodes are available: ..." from the dry run's failed
/// nodes; every other node counts as not helpful.
fn no_candidate_message(num_all: usize, statuses: &HashMap<String, Status>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for status in statuses.values() {
        for r in status.reasons() {
            *counts.entry(r.as_str()).or_default() += 1;
        }
    }
    let absent = num_all.saturating_sub(statuses.len());
    if absent > 0 {
        *counts.entry(NOT_HELPFUL).or_default() += absent;
    }
    format!(
        "preemption: 0/{num_all} nodes are available: {}.",
        histogram(&counts)
    )
}

/// One PodDisruptionBudget as preemption reads it.
struct Pdb {
    namespace: String,
    selector: Selector,
    /// Pods the API server already counted as disrupted.
    disrupted: BTreeSet<String>,
    allowed: i32,
}

/// The budgets with a usable selector; an empty or invalid one protects
/// nothing, as upstream.
struct Pdbs(Vec<Pdb>);

impl Pdbs {
    fn new(snapshot: &Snapshot) -> Self {
        let mut keys: Vec<&String> = snapshot.pdbs.keys().collect();
        keys.sort();
        Pdbs(
            keys.into_iter()
                .filter_map(|k| snapshot.pdbs.get(k))
                .filter_map(|p| Pdb::parse(p))
                .collect(),
        )
    }

    /// Splits `pods` (kept in order) into those whose eviction some budget
    /// does not allow, counting earlier pods' evictions against it, and the
    /// rest (upstream's `filterPodsWithPDBViolation`).
    fn split(&self, pods: Vec<Arc<PodInfo>>) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
        let mut allowed: Vec<i32> = self.0.iter().map(|p| p.allowed).collect();
        let mut violating = Vec::new();
        let mut other = Vec::new();
        for pod in pods {
            let mut violated = false;
            for (pdb, left) in self.0.iter().zip(allowed.iter_mut()) {
                if pdb.covers(&pod) {
                    *left -= 1;
                    violated |= *left < 0;
                }
            }
            if violated {
                violating.push(pod);
            } else {
                other.push(pod);
            }
        }
        (violating, other)
    }
}

impl Pdb {
    fn parse(pdb: &PodDisruptionBudget) -> Option<Self> {
        let sel = pdb.spec.as_ref()?.selector.clone()?;
        let empty = sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && sel.match_expressions.as_ref().is_none_or(Vec::is_empty);
        if empty {
            return None;
        }
        let status = pdb.status.as_ref();
        Some(Pdb {
            namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
            selector: sel.try_into().ok()?,
            disrupted: status
                .and_then(|s| s.disrupted_pods.as_ref())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            allowed: status.map_or(0, |s| s.disruptions_allowed),
        })
    }

    /// Whether evicting `pod` uses up this budget: it selects the pod and
    /// has not already counted it.
    fn covers(&self, pod: &PodInfo) -> bool {
        !pod.labels.is_empty()
            && pod.namespace == self.namespace
            && self.selector.matches(&pod.labels)
            && !self.disrupted.contains(pod.name())
    }
}

/// When a pod started, for ordering: `status.startTime`, else its
/// creation; `None` (not started) sorts as the latest, as upstream treats
/// it as "now".
fn start_time(pod: &PodInfo) -> Option<Timestamp> {
    pod.pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// Sort key for start times with "not started" last.
fn start_key(pod: &PodInfo) -> (bool, Option<Timestamp>) {
    let t = start_time(pod);
    (t.is_none(), t)
}

/// Most important first: higher priority, then longer running (upstream's
/// `MoreImportantPod`).
fn by_importance(a: &Arc<PodInfo>, b: &Arc<PodInfo>) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| start_key(a).cmp(&start_key(b)))
}

/// What every node's dry run shares.
struct DryRun<'a> {
    profile: &'a Profile,
    cycle: &'a Cycle,
    pod: &'a PodInfo,
    pdbs: &'a Pdbs,
    nominated: &'a Nominated,
}

/// A copy of one node and of the cycle state, changed as pods are removed
/// and added back.
struct Simulation<'a> {
    profile: &'a Profile,
    pod: &'a PodInfo,
    node: NodeInfo,
    cycle: Cycle,
}

impl Simulation<'_> {
    fn remove(&mut self, victim: &PodInfo) {
        self.node.remove_pod(&victim.uid);
        self.profile
            .remove_pod(&mut self.cycle.state, self.pod, victim, &self.node);
    }

    fn add(&mut self, victim: &Arc<PodInfo>) {
        self.node.add_pod(victim.clone());
        self.profile
            .add_pod(&mut self.cycle.state, self.pod, victim, &self.node);
    }

    fn fits(&self, nominated: &Nominated) -> Status {
        algorithm::fits(self.profile, &self.cycle, self.pod, &self.node, nominated)
    }

    /// Adds `victim` back; if the pod no longer fits, removes it again and
    /// returns false (it stays a victim).
    fn reprieve(&mut self, victim: &Arc<PodInfo>, nominated: &Nominated) -> bool {
        self.add(victim);
        if self.fits(nominated).is_success() {
            return true;
        }
        self.remove(victim);
        false
    }
}

impl DryRun<'_> {
    /// Tries nodes from `offset` until `want` candidates are found (at
    /// least one of them without PDB violations, as upstream), returning
    /// the candidates (non-violating first) and the failed nodes' statuses.
    fn run(
        &self,
        nodes: &[&NodeInfo],
        offset: usize,
        want: usize,
    ) -> (Vec<Candidate>, HashMap<String, Status>) {
        let mut clean = Vec::new();
        let mut violating = Vec::new();
        let mut statuses = HashMap::new();
        for i in 0..nodes.len() {
            let node = nodes[(offset + i) % nodes.len()];
            match self.select_victims(node) {
                Ok(c) if c.num_pdb_violations == 0 => clean.push(c),
                Ok(c) if violating.len() < want => violating.push(c),
                Ok(_) => {}
                Err(status) => {
                    statuses.insert(node.name.clone(), status);
                }
            }
            if !clean.is_empty() && clean.len() + violating.len() >= want {
                break;
            }
        }
        clean.extend(violating);
        (clean, statuses)
    }

    /// Upstream's `SelectVictimsOnNode`: remove every lower-priority pod;
    /// if the pod then fits, add back as many as possible, most important
    /// first and PDB-protected ones before the rest.
    fn select_victims(&self, node: &NodeInfo) -> Result<Candidate, Status> {
        let mut sim = Simulation {
            profile: self.profile,
            pod: self.pod,
            node: node.clone(),
            cycle: Cycle {
                state: self.cycle.state.clone(),
                skipped: self.cycle.skipped,
            },
        };
        let mut potential: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|p| p.priority < self.pod.priority)
            .cloned()
            .collect();
        if potential.is_empty() {
            return Err(Status::unresolvable(NO_VICTIMS));
        }
        for v in &potential {
            sim.remove(v);
        }
        let status = sim.fits(self.nominated);
        if !status.is_success() {
            return Err(status);
        }
        potential.sort_by(by_importance);
        let (protected, other) = self.pdbs.split(potential);
        let mut victims = Vec::new();
        let mut num_pdb_violations = 0;
        for v in protected {
            if !sim.reprieve(&v, self.nominated) {
                victims.push(v);
                num_pdb_violations += 1;
            }
        }
        for v in other {
            if !sim.reprieve(&v, self.nominated) {
                victims.push(v);
            }
        }
        victims.sort_by(by_importance);
        Ok(Candidate {
            node: node.name.clone(),
            victims,
            num_pdb_violations,
        })
    }
}

/// Upstream's `pickOneNodeForPreemption`: a node needing no eviction wins;
/// otherwise fewest PDB violations, then the lowest highest-priority
/// victim, the smallest priority sum, the fewest victims, the latest start
/// among the highest-priority victims, and finally the first.
fn pick_one(mut candidates: Vec<Candidate>) -> Option<Candidate> {
    if let Some(i) = candidates.iter().position(|c| c.victims.is_empty()) {
        return Some(candidates.swap_remove(i));
    }
    let best = candidates
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| rank(c))
        .map(|(i, _)| i)?;
    Some(candidates.swap_remove(best))
}

/// Lower is better; compared field by field.
type Rank = (usize, i32, i64, usize, Reverse<(bool, Option<Timestamp>)>);

fn rank(c: &Candidate) -> Rank {
    let highest = c
        .victims
        .iter()
        .map(|v| v.priority)
        .max()
        .unwrap_or(i32::MIN);
    // Shifting every priority to be positive keeps a node with a few
    // negative-priority victims from beating one with fewer of them.
    let sum: i64 = c
        .victims
        .iter()
        .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
        .sum();
    let earliest_top = c
        .victims
        .iter()
        .filter(|v| v.priority == highest)
        .map(|v| start_key(v))
        .min()
        .unwrap_or((true, None));
    (
        c.num_pdb_violations,
        highest,
        sum,
        c.victims.len(),
        Reverse(earliest_top),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{ScheduleError, schedule};
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{Value, json};

    const ARGS: PreemptionArgs = PreemptionArgs {
        min_candidate_nodes_percentage: 10,
        min_candidate_nodes_absolute: 100,
    };

    fn node(name: &str, cpu: &str, taints: Value) -> NodeInfo {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"taints": taints},
            "status": {"allocatable": {"cpu": cpu, "memory": "16Gi", "pods": "110"}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        NodeInfo::new(Arc::new(n))
    }

    /// A pod asking for `cpu`, bound to `node` when one is given.
    fn pod(name: &str, priority: i32, cpu: &str, extra: Value) -> Arc<PodInfo> {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"priority": priority, "containers": [{"name": "c",
                "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"startTime": "2024-01-01T00:00:00Z"}
        });
        merge(&mut v, extra);
        let p: Pod = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    fn merge(into: &mut Value, from: Value) {
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    fn snapshot(nodes: Vec<(NodeInfo, Vec<Arc<PodInfo>>)>) -> Snapshot {
        let mut s = Snapshot::default();
        for (mut n, pods) in nodes {
            for p in pods {
                n.add_pod(p);
            }
            s.upsert_node(n);
        }
        s
    }

    fn run_with(s: &Snapshot, p: &PodInfo, nominated: &Nominated) -> Outcome {
        let profile = Profile::default_named("default-scheduler").unwrap_or_else(|e| panic!("{e}"));
        let (cycle, result) = schedule(&profile, p, s, nominated, 0, &mut 0);
        let fit = match result {
            Err(ScheduleError::Fit(fit)) => fit,
            other => panic!("expected a fit error, got {other:?}"),
        };
        preempt(&profile, &ARGS, &cycle, p, s, &fit, nominated)
    }

    fn run(s: &Snapshot, p: &PodInfo) -> Outcome {
        run_with(s, p, &Nominated::new())
    }

    fn chosen(o: Outcome) -> (String, Vec<String>, usize) {
        match o {
            Outcome::Preempt(c) => (
                c.node,
                c.victims.iter().map(|v| v.name().to_string()).collect(),
                c.num_pdb_violations,
            ),
            other => panic!("expected a candidate, got {other:?}"),
        }
    }

    #[test]
    fn the_node_with_the_least_important_victims_wins() {
        let s = snapshot(vec![
            (
                node("a", "2", json!([])),
                vec![pod("mid", 5, "2", json!({}))],
            ),
            (
                node("b", "2", json!([])),
                vec![pod("low", 1, "2", json!({}))],
            ),
        ]);
        let (n, victims, _) = chosen(run(&s, &pod("p", 10, "1", json!({}))));
        assert_eq!((n.as_str(), victims), ("b", vec!["low".to_string()]));
    }

    #[test]
    fn only_as_many_victims_as_needed_are_evicted() {
        let pods = (1..=4)
            .map(|i| pod(&format!("p{i}"), i, "1", json!({})))
            .collect();
        let s = snapshot(vec![(node("a", "4", json!([])), pods)]);
        let (n, victims, _) = chosen(run(&s, &pod("big", 10, "2", json!({}))));
        assert_eq!(n, "a");
        assert_eq!(
            victims,
            vec!["p2", "p1"],
            "lowest two, most important first"
        );
    }

    #[test]
    fn equal_or_higher_priority_pods_are_never_victims() {
        let s = snapshot(vec![(
            node("a", "2", json!([])),
            vec![
                pod("same", 10, "1", json!({})),
                pod("higher", 20, "1", json!({})),
            ],
        )]);
        let Outcome::NoCandidate(msg) = run(&s, &pod("p", 10, "1", json!({}))) else {
            panic!("expected no candidate");
        };
        assert_eq!(
            msg,
            format!("preemption: 0/1 nodes are available: 1 {NO_VICTIMS}.")
        );

        // Evicting the one lower-priority pod is not enough: no candidate.
        let s = snapshot(vec![(
            node("a", "2", json!([])),
            vec![
                pod("same", 10, "1", json!({})),
                pod("low", 1, "1", json!({})),
            ],
        )]);
        let Outcome::NoCandidate(msg) = run(&s, &pod("p", 10, "2", json!({}))) else {
            panic!("expected no candidate");
        };
        assert_eq!(
            msg,
            "preemption: 0/1 nodes are available: 1 Insufficient cpu."
        );
    }

    #[test]
    fn pdb_protected_pods_are_spared_when_another_node_works() {
        let guarded = json!({"metadata": {"labels": {"app": "db"}}});
        let mut s = snapshot(vec![
            (
                node("a", "2", json!([])),
                vec![pod("db", 1, "2", guarded.clone())],
            ),
            (
                node("b", "2", json!([])),
                vec![pod("web", 1, "2", json!({}))],
            ),
        ]);
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "db"}}},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1,
                "expectedPods": 1}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        s.pdbs.insert("default/db".into(), Arc::new(pdb));
        let p = pod("p", 10, "1", json!({}));
        assert_eq!(chosen(run(&s, &p)), ("b".into(), vec!["web".into()], 0));

        // With no other choice the protected pod is evicted, and counted.
        s.remove_node("b");
        assert_eq!(chosen(run(&s, &p)), ("a".into(), vec!["db".into()], 1));
    }

    #[test]
    fn preemption_policy_never_is_not_eligible() {
        let s = snapshot(vec![(
            node("a", "1", json!([])),
            vec![pod("low", 1, "1", json!({}))],
        )]);
        let p = pod("p", 10, "1", json!({"spec": {"preemptionPolicy": "Never"}}));
        let Outcome::NotEligible(msg) = run(&s, &p) else {
            panic!("expected not eligible");
        };
        assert_eq!(
            msg,
            "preemption: not eligible due to preemptionPolicy=Never."
        );
    }

    #[test]
    fn a_terminating_victim_on_the_nominated_node_is_waited_for() {
        let dying = json!({"metadata": {"deletionTimestamp": "2024-01-02T00:00:00Z"}});
        let s = snapshot(vec![(
            node("a", "2", json!([])),
            vec![pod("dying", 1, "1", dying), pod("low", 1, "1", json!({}))],
        )]);
        let p = pod("p", 10, "2", json!({"status": {"nominatedNodeName": "a"}}));
        let Outcome::NotEligible(msg) = run(&s, &p) else {
            panic!("expected not eligible");
        };
        assert_eq!(msg, format!("preemption: {NOT_ELIGIBLE_TERMINATING}"));
        // Without the nomination the pod preempts as usual.
        let p = pod("p", 10, "2", json!({}));
        assert_eq!(chosen(run(&s, &p)).1.len(), 2);
    }

    #[test]
    fn a_node_rejected_by_taints_is_not_a_candidate() {
        let taint = json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]);
        let s = snapshot(vec![(
            node("t", "2", taint.clone()),
            vec![pod("low", 1, "2", json!({}))],
        )]);
        let Outcome::NoCandidate(msg) = run(&s, &pod("p", 10, "1", json!({}))) else {
            panic!("expected no candidate");
        };
        assert_eq!(
            msg,
            format!("preemption: 0/1 nodes are available: 1 {NOT_HELPFUL}.")
        );

        let s = snapshot(vec![
            (
                node("t", "2", taint),
                vec![pod("lowest", 0, "2", json!({}))],
            ),
            (
                node("n", "2", json!([])),
                vec![pod("low", 5, "2", json!({}))],
            ),
        ]);
        let (n, victims, _) = chosen(run(&s, &pod("p", 10, "1", json!({}))));
        assert_eq!((n.as_str(), victims), ("n", vec!["low".to_string()]));
    }

    #[test]
    fn nominated_pods_of_higher_priority_keep_their_room() {
        // Evicting "low" frees 2 cpu, but a nominated pod of higher
        // priority already claims 1 of them.
        let s = snapshot(vec![(
            node("a", "2", json!([])),
            vec![pod("low", 1, "2", json!({}))],
        )]);
        let mut nominated = Nominated::new();
        nominated.insert("a".into(), vec![pod("vip", 50, "1", json!({}))]);
        let Outcome::NoCandidate(_) = run_with(&s, &pod("p", 10, "2", json!({})), &nominated)
        else {
            panic!("expected no candidate");
        };
        nominated.insert("a".into(), vec![pod("minor", 5, "1", json!({}))]);
        let p = pod("p", 10, "2", json!({}));
        assert_eq!(chosen(run_with(&s, &p, &nominated)).1, vec!["low"]);
        let cleared = lower_priority_nominated(&p, "a", &nominated);
        assert_eq!(
            cleared.iter().map(|c| c.name()).collect::<Vec<_>>(),
            vec!["minor"]
        );
        assert!(lower_priority_nominated(&p, "b", &nominated).is_empty());
    }

    fn cand(node: &str, victims: Vec<Arc<PodInfo>>, pdb: usize) -> Candidate {
        Candidate {
            node: node.into(),
            victims,
            num_pdb_violations: pdb,
        }
    }

    fn started(name: &str, priority: i32, at: &str) -> Arc<PodInfo> {
        pod(name, priority, "1", json!({"status": {"startTime": at}}))
    }

    fn pick(cs: Vec<Candidate>) -> String {
        pick_one(cs).map(|c| c.node).unwrap_or_default()
    }

    #[test]
    fn ties_are_broken_as_upstream() {
        let t0 = "2024-01-01T00:00:00Z";
        let t1 = "2024-01-02T00:00:00Z";
        // No victims wins outright.
        assert_eq!(
            pick(vec![
                cand("a", vec![started("x", 1, t0)], 0),
                cand("b", vec![], 3)
            ]),
            "b"
        );
        // Fewer PDB violations beats lower priorities.
        assert_eq!(
            pick(vec![
                cand("a", vec![started("x", 1, t0)], 1),
                cand("b", vec![started("y", 9, t0)], 0)
            ]),
            "b"
        );
        // Smaller sum: two negative victims are worse than one.
        assert_eq!(
            pick(vec![
                cand("a", vec![started("x", -5, t0), started("y", -5, t0)], 0),
                cand("b", vec![started("z", -5, t0)], 0)
            ]),
            "b"
        );
        // Same victims' priorities: the later-started ones are evicted.
        assert_eq!(
            pick(vec![
                cand("a", vec![started("x", 3, t0)], 0),
                cand("b", vec![started("y", 3, t1)], 0)
            ]),
            "b"
        );
        // Full tie: the first.
        assert_eq!(
            pick(vec![
                cand("a", vec![started("x", 3, t0)], 0),
                cand("b", vec![started("y", 3, t0)], 0)
            ]),
            "a"
        );
        assert!(pick_one(vec![]).is_none());
    }

    #[test]
    fn budgets_count_earlier_victims() {
        let mut s = Snapshot::default();
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "db"}}},
            "status": {"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1,
                "expectedPods": 2, "disruptedPods": {"gone": "2024-01-01T00:00:00Z"}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        s.pdbs.insert("default/db".into(), Arc::new(pdb));
        let db = json!({"metadata": {"labels": {"app": "db"}}});
        let pods = vec![
            pod("a", 1, "1", db.clone()),
            pod("gone", 1, "1", db.clone()),
            pod("b", 1, "1", db),
            pod("c", 1, "1", json!({"metadata": {"labels": {"app": "web"}}})),
        ];
        let (violating, other) = Pdbs::new(&s).split(pods);
        let names =
            |v: Vec<Arc<PodInfo>>| v.iter().map(|p| p.name().to_string()).collect::<Vec<_>>();
        assert_eq!(names(violating), vec!["b"]);
        assert_eq!(names(other), vec!["a", "gone", "c"]);
    }

    #[test]
    fn candidate_count_follows_args() {
        assert_eq!(num_candidates(&ARGS, 50), 50);
        assert_eq!(num_candidates(&ARGS, 5000), 500);
        let few = PreemptionArgs {
            min_candidate_nodes_percentage: 0,
            min_candidate_nodes_absolute: 3,
        };
        assert_eq!(num_candidates(&few, 10), 3);
    }
}
