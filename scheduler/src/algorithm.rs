//! One scheduling decision: filter nodes (stopping once enough are
//! feasible, as upstream's `percentageOfNodesToScore`), score them, pick the
//! best (ties broken at random), or explain why nothing fits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rand::Rng;

use crate::framework::{CycleState, NodeInfo, PodInfo, Snapshot, Status};
use crate::profile::{Profile, Skipped};

/// Below this many nodes every node is checked (upstream's
/// `minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never drops below this.
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// Pods nominated to each node by preemption, which lower-or-equal
/// priority pods must leave room for.
pub type Nominated = HashMap<String, Vec<Arc<PodInfo>>>;

/// A node chosen for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
}

/// Why a pod fits nowhere.
#[derive(Debug, Clone, Default)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// A PreFilter's rejection, which applies to every node.
    pub pre_filter_msg: Option<String>,
    /// Each rejected node's status.
    pub node_statuses: HashMap<String, Status>,
    /// The preemption outcome, appended to the message.
    pub post_filter_msg: Option<String>,
    /// The plugins that rejected the pod somewhere.
    pub rejected_by: BTreeSet<&'static str>,
}

impl FitError {
    /// Upstream's message: "0/3 nodes are available: 1 Insufficient cpu,
    /// 2 node(s) had untolerated taint {k: v}." plus preemption's part.
    pub fn message(&self) -> String {
        if self.num_all_nodes == 0 {
            return "no nodes available to schedule pods".to_string();
        }
        let body = match &self.pre_filter_msg {
            Some(msg) => msg.clone(),
            None => {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for status in self.node_statuses.values() {
                    for r in status.reasons() {
                        *counts.entry(r.as_str()).or_default() += 1;
                    }
                }
                histogram(&counts)
            }
        };
        let mut msg = format!("0/{} nodes are available: {body}.", self.num_all_nodes);
        if let Some(post) = &self.post_filter_msg {
            // Upstream appends " %v." even though the part ends in a
            // period already: real messages end in "..".
            msg.push(' ');
            msg.push_str(post);
            msg.push('.');
        }
        msg
    }
}

/// "1 reason-a, 2 reason-b": each "count reason" string, sorted as text,
/// as upstream prints them.
pub fn histogram(counts: &BTreeMap<&str, usize>) -> String {
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

/// A decision's failure.
#[derive(Debug)]
pub enum ScheduleError {
    /// No node fits; preemption may help.
    Fit(FitError),
    /// A plugin failed; retry later.
    Internal(String),
}

/// How many feasible nodes to find before scoring (upstream's
/// `numFeasibleNodesToFind`).
pub fn num_feasible_nodes_to_find(percentage: u32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND || percentage >= 100 {
        return num_all_nodes;
    }
    let mut pct = percentage as usize;
    if pct == 0 {
        pct = 50usize.saturating_sub(num_all_nodes / 125);
        pct = pct.max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    (num_all_nodes * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// The state of one decision that preemption may continue from.
pub struct Cycle {
    pub state: CycleState,
    pub skipped: Skipped,
}

/// Schedules `pod`: returns the chosen node, or why none fits. `next_start`
/// rotates where filtering begins so consecutive pods spread their search.
pub fn schedule(
    profile: &Profile,
    pod: &PodInfo,
    snapshot: &Snapshot,
    nominated: &Nominated,
    percentage: u32,
    next_start: &mut usize,
) -> (Cycle, Result<Placement, ScheduleError>) {
    let mut cycle = Cycle {
        state: CycleState::default(),
        skipped: Skipped::new(),
    };
    let n = snapshot.nodes.len();
    if n == 0 {
        return (cycle, Err(ScheduleError::Fit(FitError::default())));
    }
    match profile.run_pre_filter(&mut cycle.state, pod, snapshot) {
        Ok(skipped) => cycle.skipped = skipped,
        Err((_, Status::Error(e))) => return (cycle, Err(ScheduleError::Internal(e))),
        Err((plugin, status)) => {
            let fit = FitError {
                num_all_nodes: n,
                pre_filter_msg: Some(status.reasons().join(", ")),
                node_statuses: snapshot
                    .nodes
                    .iter()
                    .map(|node| (node.name.clone(), status.clone()))
                    .collect(),
                post_filter_msg: None,
                rejected_by: [plugin].into(),
            };
            return (cycle, Err(ScheduleError::Fit(fit)));
        }
    }
    // A pod that preemption nominated tries its node first.
    let nominated_node = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|s| !s.is_empty());
    if let Some(node) = nominated_node.and_then(|name| snapshot.node(name))
        && fits(profile, &cycle, pod, node, nominated).is_success()
    {
        let placement = Placement {
            node: node.name.clone(),
            evaluated_nodes: 1,
            feasible_nodes: 1,
        };
        return (cycle, Ok(placement));
    }
    let to_find = num_feasible_nodes_to_find(percentage, n);
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(to_find.min(n));
    let mut statuses = HashMap::new();
    let mut rejected_by = BTreeSet::new();
    let start = *next_start % n;
    let mut processed = 0;
    for i in 0..n {
        let node = &snapshot.nodes[(start + i) % n];
        processed += 1;
        match fits_named(profile, &cycle, pod, node, nominated) {
            (_, Status::Success) => {
                feasible.push(node);
                if feasible.len() >= to_find {
                    break;
                }
            }
            (_, Status::Error(e)) => return (cycle, Err(ScheduleError::Internal(e))),
            (plugin, status) => {
                rejected_by.extend(plugin);
                statuses.insert(node.name.clone(), status);
            }
        }
    }
    *next_start = (start + processed) % n;
    if feasible.is_empty() {
        let fit = FitError {
            num_all_nodes: n,
            pre_filter_msg: None,
            node_statuses: statuses,
            post_filter_msg: None,
            rejected_by,
        };
        return (cycle, Err(ScheduleError::Fit(fit)));
    }
    let evaluated = processed;
    if feasible.len() == 1 {
        let placement = Placement {
            node: feasible[0].name.clone(),
            evaluated_nodes: evaluated,
            feasible_nodes: 1,
        };
        return (cycle, Ok(placement));
    }
    let scores = match profile.run_scores(&mut cycle.state, pod, &feasible, snapshot) {
        Ok(s) => s,
        Err(e) => return (cycle, Err(ScheduleError::Internal(e))),
    };
    let best = select_host(&scores);
    let placement = Placement {
        node: feasible[best].name.clone(),
        evaluated_nodes: evaluated,
        feasible_nodes: feasible.len(),
    };
    (cycle, Ok(placement))
}

/// Runs the filters on `node`; when pods of at least this pod's priority
/// are nominated there, the pod must fit both with them and without them
/// (upstream's two-pass check), so it neither steals their room nor relies
/// on pods that may never arrive.
pub fn fits(
    profile: &Profile,
    cycle: &Cycle,
    pod: &PodInfo,
    node: &NodeInfo,
    nominated: &Nominated,
) -> Status {
    fits_named(profile, cycle, pod, node, nominated).1
}

/// [`fits`], also naming the plugin that rejected the node.
pub fn fits_named(
    profile: &Profile,
    cycle: &Cycle,
    pod: &PodInfo,
    node: &NodeInfo,
    nominated: &Nominated,
) -> (Option<&'static str>, Status) {
    if nominated.is_empty() {
        return profile.run_filters_named(&cycle.state, &cycle.skipped, pod, node);
    }
    let others: Vec<&Arc<PodInfo>> = nominated
        .get(&node.name)
        .into_iter()
        .flatten()
        .filter(|p| p.uid != pod.uid && p.priority >= pod.priority)
        .collect();
    if !others.is_empty() {
        let mut with = node.clone();
        let mut state = cycle.state.clone();
        for o in others {
            with.add_pod(o.clone());
            profile.add_pod(&mut state, pod, o, &with);
        }
        let result = profile.run_filters_named(&state, &cycle.skipped, pod, &with);
        if !result.1.is_success() {
            return result;
        }
    }
    profile.run_filters_named(&cycle.state, &cycle.skipped, pod, node)
}

/// The index of the highest score, a random one among equals (reservoir
/// sampling, as upstream's `selectHost`).
pub fn select_host(scores: &[i64]) -> usize {
    let mut rng = rand::rng();
    let mut best = 0;
    let mut ties = 0u32;
    for (i, &s) in scores.iter().enumerate() {
        if i == 0 || s > scores[best] {
            best = i;
            ties = 1;
        } else if s == scores[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feasible_nodes_to_find_follows_upstream() {
        assert_eq!(num_feasible_nodes_to_find(0, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
        assert_eq!(num_feasible_nodes_to_find(0, 200), 100);
        assert_eq!(num_feasible_nodes_to_find(0, 100_000), 5000);
        assert_eq!(num_feasible_nodes_to_find(30, 5000), 1500);
        assert_eq!(num_feasible_nodes_to_find(100, 5000), 5000);
    }

    #[test]
    fn the_message_counts_reasons_per_node() {
        let mut e = FitError {
            num_all_nodes: 3,
            ..Default::default()
        };
        e.node_statuses
            .insert("a".into(), Status::unschedulable("Insufficient cpu"));
        e.node_statuses.insert(
            "b".into(),
            Status::unresolvable("node(s) had untolerated taint {k: v}"),
        );
        e.node_statuses.insert(
            "c".into(),
            Status::unresolvable("node(s) had untolerated taint {k: v}"),
        );
        assert_eq!(
            e.message(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {k: v}."
        );
    }

    #[test]
    fn ties_are_broken_among_the_best_only() {
        for _ in 0..50 {
            let i = select_host(&[1, 5, 3, 5]);
            assert!(i == 1 || i == 3);
        }
    }
}
