//! The plugin interface: one trait with a default for every extension
//! point, so a plugin implements only the points it has. The profile's
//! configuration decides which points of which plugins run.

use super::cycle_state::CycleState;
use super::snapshot::Snapshot;
use super::status::Status;
use super::types::{NodeInfo, PodInfo};

/// A scheduling plugin (upstream's framework.Plugin and its extension
/// points). Plugins are stateless between cycles: whatever a pod needs is
/// computed in PreFilter/PreScore into the cycle state.
pub trait Plugin: Send + Sync {
    /// The name used in configuration, e.g. `NodeResourcesFit`.
    fn name(&self) -> &'static str;

    /// Runs once per pod before any Filter. `Skip` means this plugin's
    /// Filter has nothing to check for the pod; an unschedulable status
    /// rejects the pod on every node.
    fn pre_filter(&self, _state: &mut CycleState, _pod: &PodInfo, _snapshot: &Snapshot) -> Status {
        Status::Success
    }

    /// Whether `pod` fits `node`. `node` may be a copy with pods removed
    /// (preemption) or nominated pods added, so read the node only from
    /// here and the cluster only from what PreFilter stored.
    fn filter(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> Status {
        Status::Success
    }

    /// Updates this plugin's PreFilter state as if `other` were added to
    /// `node` (preemption and nominated pods).
    fn add_pod(&self, _state: &mut CycleState, _pod: &PodInfo, _other: &PodInfo, _node: &NodeInfo) {
    }

    /// Updates this plugin's PreFilter state as if `other` were removed
    /// from `node`.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _other: &PodInfo,
        _node: &NodeInfo,
    ) {
    }

    /// Runs once per pod before any Score, with the nodes that passed the
    /// filters. `Skip` means this plugin's Score is not run for the pod.
    fn pre_score(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
    ) -> Status {
        Status::Success
    }

    /// The raw score of `node` for `pod`; higher is better.
    fn score(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> i64 {
        0
    }

    /// Maps this plugin's raw scores for all feasible nodes onto
    /// 0..=[`super::MAX_NODE_SCORE`], in place.
    fn normalize_scores(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [i64]) {}
}
