//! NodeResourcesFit: a pod goes only where its requests fit in what the
//! node has left, and nodes are scored by how full they would be
//! (spreading with LeastAllocated, packing with MostAllocated, or a custom
//! curve with RequestedToCapacityRatio), as upstream's plugin.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use crate::framework::resources::Resources;
use crate::framework::resources::{is_extended, is_scalar};
use crate::framework::{CycleState, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, Snapshot, Status};

/// Cycle-state key for the pod's requests of the scored resources.
const PRE_SCORE_KEY: &str = "PreScoreNodeResourcesFit";

/// Upstream's `MaxCustomPriorityScore`: shape scores are 0..=10.
const MAX_CUSTOM_PRIORITY_SCORE: i64 = 10;
/// Utilisation is expressed in percent on the shape's x axis.
const MAX_UTILIZATION: i64 = 100;

/// `NodeResourcesFitArgs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Args {
    #[serde(default)]
    ignored_resources: Vec<String>,
    #[serde(default)]
    ignored_resource_groups: Vec<String>,
    scoring_strategy: Option<StrategyArgs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StrategyArgs {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    resources: Vec<ResourceSpec>,
    requested_to_capacity_ratio: Option<RatioArgs>,
}

/// A resource to score and its weight.
#[derive(Clone, Debug, Deserialize)]
struct ResourceSpec {
    name: String,
    #[serde(default)]
    weight: i64,
}

#[derive(Debug, Default, Deserialize)]
struct RatioArgs {
    #[serde(default)]
    shape: Vec<ShapePoint>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
struct ShapePoint {
    utilization: i64,
    score: i64,
}

/// How a node's utilisation of one resource becomes a score.
#[derive(Clone, Debug)]
enum Strategy {
    LeastAllocated,
    MostAllocated,
    /// (utilisation %, score 0..=100) points of a piecewise linear curve.
    RequestedToCapacityRatio(Vec<(i64, i64)>),
}

/// Filters nodes without room for the pod; scores by allocation.
pub struct NodeResourcesFit {
    ignored_resources: BTreeSet<String>,
    ignored_resource_groups: BTreeSet<String>,
    strategy: Strategy,
    resources: Vec<ResourceSpec>,
}

impl NodeResourcesFit {
    /// Builds the plugin from `NodeResourcesFitArgs`, defaulted and
    /// validated as upstream (unknown strategy, bad weights or shape are
    /// errors).
    pub fn new(args: &Value) -> Result<Self, String> {
        let args: Args = if args.is_null() {
            Args::default()
        } else {
            serde_json::from_value(args.clone())
                .map_err(|e| format!("NodeResourcesFitArgs: {e}"))?
        };
        if let Some(g) = args
            .ignored_resource_groups
            .iter()
            .find(|g| g.contains('/'))
        {
            return Err(format!(
                "ignoredResourceGroups: {g:?}: resource group name can't contain '/'"
            ));
        }
        let strategy_args = args.scoring_strategy.unwrap_or_else(|| StrategyArgs {
            kind: "LeastAllocated".to_string(),
            ..StrategyArgs::default()
        });
        let mut resources = strategy_args.resources;
        if resources.is_empty() {
            resources = default_resources();
        }
        for r in &mut resources {
            if r.weight == 0 {
                r.weight = 1;
            }
            if !(1..=100).contains(&r.weight) {
                return Err(format!(
                    "scoringStrategy.resources: resource weight of {} not in valid range (0, 100]",
                    r.name
                ));
            }
        }
        let strategy = match (
            strategy_args.kind.as_str(),
            strategy_args.requested_to_capacity_ratio,
        ) {
            ("RequestedToCapacityRatio", Some(ratio)) => {
                Strategy::RequestedToCapacityRatio(validate_shape(&ratio.shape)?)
            }
            ("RequestedToCapacityRatio", None) => {
                return Err("scoringStrategy.requestedToCapacityRatio: must be specified when type is RequestedToCapacityRatio".to_string());
            }
            (_, Some(_)) => {
                return Err("scoringStrategy.requestedToCapacityRatio: must be nil when type is not RequestedToCapacityRatio".to_string());
            }
            ("LeastAllocated", None) => Strategy::LeastAllocated,
            ("MostAllocated", None) => Strategy::MostAllocated,
            (other, None) => {
                return Err(format!(
                    "scoringStrategy.type: unsupported value {other:?}: supported values are LeastAllocated, MostAllocated, RequestedToCapacityRatio"
                ));
            }
        };
        Ok(NodeResourcesFit {
            ignored_resources: args.ignored_resources.into_iter().collect(),
            ignored_resource_groups: args.ignored_resource_groups.into_iter().collect(),
            strategy,
            resources,
        })
    }

    /// The pod's request of each scored resource, CPU and memory defaulted
    /// where a container names none (so empty pods still spread).
    fn pod_requests(&self, pod: &PodInfo) -> Vec<i64> {
        self.resources
            .iter()
            .map(|r| pod.requests.non_zero.get(&r.name))
            .collect()
    }

    fn resource_score(&self, requested: i64, capacity: i64) -> i64 {
        match &self.strategy {
            Strategy::LeastAllocated => {
                if capacity == 0 || requested > capacity {
                    0
                } else {
                    (capacity - requested) * MAX_NODE_SCORE / capacity
                }
            }
            Strategy::MostAllocated => {
                if capacity == 0 {
                    0
                } else {
                    requested.min(capacity) * MAX_NODE_SCORE / capacity
                }
            }
            Strategy::RequestedToCapacityRatio(shape) => {
                if capacity == 0 || requested > capacity {
                    broken_linear(shape, MAX_UTILIZATION)
                } else {
                    broken_linear(shape, requested * MAX_UTILIZATION / capacity)
                }
            }
        }
    }
}

fn default_resources() -> Vec<ResourceSpec> {
    ["cpu", "memory"]
        .into_iter()
        .map(|name| ResourceSpec {
            name: name.to_string(),
            weight: 1,
        })
        .collect()
}

/// Checks the shape as upstream and scales its scores to 0..=100.
fn validate_shape(shape: &[ShapePoint]) -> Result<Vec<(i64, i64)>, String> {
    if shape.is_empty() {
        return Err(
            "requestedToCapacityRatio.shape: at least one point must be specified".to_string(),
        );
    }
    if shape
        .windows(2)
        .any(|w| w[0].utilization >= w[1].utilization)
    {
        return Err(
            "requestedToCapacityRatio.shape: utilization values must be sorted in increasing order"
                .to_string(),
        );
    }
    for p in shape {
        if !(0..=MAX_UTILIZATION).contains(&p.utilization) {
            return Err(format!(
                "requestedToCapacityRatio.shape: utilization {} not in valid range [0, 100]",
                p.utilization
            ));
        }
        if !(0..=MAX_CUSTOM_PRIORITY_SCORE).contains(&p.score) {
            return Err(format!(
                "requestedToCapacityRatio.shape: score {} not in valid range [0, 10]",
                p.score
            ));
        }
    }
    Ok(shape
        .iter()
        .map(|p| {
            (
                p.utilization,
                p.score * (MAX_NODE_SCORE / MAX_CUSTOM_PRIORITY_SCORE),
            )
        })
        .collect())
}

/// Upstream's `BuildBrokenLinearFunction` evaluated at `p`.
fn broken_linear(shape: &[(i64, i64)], p: i64) -> i64 {
    for (i, &(u, s)) in shape.iter().enumerate() {
        if p <= u {
            let Some(&(pu, ps)) = i.checked_sub(1).and_then(|j| shape.get(j)) else {
                return s;
            };
            return ps + (s - ps) * (p - pu) / (u - pu);
        }
    }
    shape.last().map_or(0, |&(_, s)| s)
}

/// Every reason `request` does not fit `node`, in upstream's order.
fn insufficient(
    request: &Resources,
    node: &NodeInfo,
    ignored: &BTreeSet<String>,
    ignored_groups: &BTreeSet<String>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > node.allocatable.allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    let free = |name: &str| node.allocatable.get(name) - node.requested.get(name);
    for (name, want) in [
        ("cpu", request.milli_cpu),
        ("memory", request.memory),
        ("ephemeral-storage", request.ephemeral_storage),
    ] {
        if want > 0 && want > free(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    for (name, &want) in &request.scalar {
        if want == 0 || !is_scalar(name) {
            continue;
        }
        if is_extended(name) {
            let group = name.split('/').next().unwrap_or_default();
            if ignored.contains(name) || ignored_groups.contains(group) {
                continue;
            }
        }
        let alloc = node.allocatable.scalar.get(name).copied().unwrap_or(0);
        let used = node.requested.scalar.get(name).copied().unwrap_or(0);
        if want > alloc - used {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    /// Unschedulable with every resource the node lacks (each counts in
    /// the "0/N nodes are available" summary), since preemption may free
    /// them.
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = insufficient(
            &pod.requests.requests,
            node,
            &self.ignored_resources,
            &self.ignored_resource_groups,
        );
        if reasons.is_empty() {
            Status::Success
        } else {
            Status::Unschedulable(reasons)
        }
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
    ) -> Status {
        state.write(PRE_SCORE_KEY, self.pod_requests(pod));
        Status::Success
    }

    /// The weighted average of the per-resource scores, 0..=100.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let requests = state.read_or(PRE_SCORE_KEY, || self.pod_requests(pod));
        let (mut total, mut weights) = (0i64, 0i64);
        for (spec, &req) in self.resources.iter().zip(requests.iter()) {
            let (alloc, requested) = node.allocatable_and_requested(&spec.name, req, true);
            if alloc == 0 {
                continue;
            }
            let score = self.resource_score(requested, alloc);
            // The ratio strategy leaves zero-scored resources out of the
            // average, as upstream.
            if matches!(self.strategy, Strategy::RequestedToCapacityRatio(_)) && score <= 0 {
                continue;
            }
            total += score * spec.weight;
            weights += spec.weight;
        }
        if weights == 0 {
            return 0;
        }
        match self.strategy {
            Strategy::RequestedToCapacityRatio(_) => (total as f64 / weights as f64).round() as i64,
            _ => total / weights,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing;
    use serde_json::json;

    fn pod(name: &str, requests: Value) -> PodInfo {
        testing::pod(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}]},
        }))
    }

    fn node(name: &str, allocatable: Value, pods: Vec<PodInfo>) -> NodeInfo {
        testing::node(
            json!({"metadata": {"name": name}, "status": {"allocatable": allocatable}}),
            pods,
        )
    }

    fn plugin(args: Value) -> NodeResourcesFit {
        NodeResourcesFit::new(&args).expect("valid args")
    }

    fn scores(pl: &NodeResourcesFit, p: &PodInfo, nodes: &[NodeInfo]) -> Vec<i64> {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        testing::scores(pl, p, &refs, &Snapshot::default(), false).expect("scored")
    }

    /// An empty node and a half-full one, both 4 CPUs / 8Gi.
    fn empty_and_half_full() -> Vec<NodeInfo> {
        let alloc = json!({"cpu": "4", "memory": "8Gi", "pods": "110"});
        vec![
            node("empty", alloc.clone(), vec![]),
            node(
                "half",
                alloc,
                vec![pod("old", json!({"cpu": "2", "memory": "4Gi"}))],
            ),
        ]
    }

    #[test]
    fn every_missing_resource_is_a_separate_reason() {
        let n = node(
            "small",
            json!({"cpu": "1", "memory": "1Gi", "pods": "1", "example.com/gpu": "1"}),
            vec![pod("old", json!({"cpu": "500m"}))],
        );
        let p = pod(
            "new",
            json!({"cpu": "1", "memory": "2Gi", "example.com/gpu": "2"}),
        );
        assert_eq!(
            plugin(json!({})).filter(&CycleState::default(), &p, &n),
            Status::Unschedulable(vec![
                "Too many pods".into(),
                "Insufficient cpu".into(),
                "Insufficient memory".into(),
                "Insufficient example.com/gpu".into(),
            ])
        );
    }

    #[test]
    fn pod_that_fits_passes_and_best_effort_pod_only_counts_pods() {
        let pl = plugin(json!({}));
        let n = node(
            "n",
            json!({"cpu": "2", "memory": "2Gi", "pods": "2"}),
            vec![],
        );
        let state = CycleState::default();
        assert!(
            pl.filter(&state, &pod("p", json!({"cpu": "2", "memory": "2Gi"})), &n)
                .is_success()
        );
        let full = node(
            "full",
            json!({"cpu": "2", "memory": "2Gi", "pods": "1"}),
            vec![pod("o", json!({}))],
        );
        assert_eq!(
            pl.filter(&state, &pod("p", json!({})), &full).reasons(),
            ["Too many pods"]
        );
        let ephemeral = pod("e", json!({"ephemeral-storage": "1Gi"}));
        assert_eq!(
            pl.filter(&state, &ephemeral, &n).reasons(),
            ["Insufficient ephemeral-storage"]
        );
    }

    #[test]
    fn ignored_resources_and_groups_are_not_checked() {
        let n = node(
            "n",
            json!({"cpu": "4", "memory": "4Gi", "pods": "10"}),
            vec![],
        );
        let p = pod("p", json!({"example.com/foo": "1", "vendor.io/bar": "1"}));
        let state = CycleState::default();
        assert_eq!(
            plugin(json!({})).filter(&state, &p, &n).reasons(),
            ["Insufficient example.com/foo", "Insufficient vendor.io/bar"]
        );
        let pl = plugin(
            json!({"ignoredResources": ["example.com/foo"], "ignoredResourceGroups": ["vendor.io"]}),
        );
        assert!(pl.filter(&state, &p, &n).is_success());
    }

    #[test]
    fn least_allocated_prefers_the_emptier_node() {
        let p = pod("p", json!({"cpu": "1", "memory": "2Gi"}));
        // empty: cpu 3/4 free, memory 6/8 free → 75; half: 1/4 → 25.
        assert_eq!(
            scores(&plugin(json!({})), &p, &empty_and_half_full()),
            vec![75, 25]
        );
    }

    #[test]
    fn most_allocated_reverses_the_order() {
        let pl = plugin(json!({"scoringStrategy": {"type": "MostAllocated"}}));
        let p = pod("p", json!({"cpu": "1", "memory": "2Gi"}));
        assert_eq!(scores(&pl, &p, &empty_and_half_full()), vec![25, 75]);
    }

    #[test]
    fn requested_to_capacity_ratio_follows_the_shape() {
        let packing = plugin(
            json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
            "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}}),
        );
        let p = pod("p", json!({"cpu": "1", "memory": "2Gi"}));
        assert_eq!(scores(&packing, &p, &empty_and_half_full()), vec![25, 75]);
        let spreading = plugin(
            json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
            "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]}}}),
        );
        assert_eq!(scores(&spreading, &p, &empty_and_half_full()), vec![75, 25]);
    }

    #[test]
    fn weights_and_extended_resources_shape_the_average() {
        let alloc = json!({"cpu": "4", "memory": "8Gi", "pods": "110", "example.com/gpu": "4"});
        let nodes = [node("a", alloc, vec![])];
        let pl = plugin(
            json!({"scoringStrategy": {"type": "LeastAllocated", "resources": [
                {"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}, {"name": "example.com/gpu", "weight": 2}
            ]}}),
        );
        // cpu 3/4 free → 75 ×3, memory 8Gi-2Gi → 75 ×1; no gpu asked: left out.
        assert_eq!(
            scores(&pl, &pod("p", json!({"cpu": "1", "memory": "2Gi"})), &nodes),
            vec![75]
        );
        // gpu 2 of 4 → 50 ×2: (225 + 75 + 100) / 6 = 66.
        let gpu = pod(
            "g",
            json!({"cpu": "1", "memory": "2Gi", "example.com/gpu": "2"}),
        );
        assert_eq!(scores(&pl, &gpu, &nodes), vec![66]);
    }

    #[test]
    fn pods_without_requests_score_as_default_requests() {
        let alloc = json!({"cpu": "1", "memory": "1000Mi", "pods": "110"});
        let nodes = [node("n", alloc, vec![])];
        // 100m of 1000m → 90; 200Mi of 1000Mi → 80; average 85.
        assert_eq!(
            scores(&plugin(json!({})), &pod("p", json!({})), &nodes),
            vec![85]
        );
    }

    #[test]
    fn invalid_args_are_errors() {
        assert!(NodeResourcesFit::new(&json!({"scoringStrategy": {"type": "Balanced"}})).is_err());
        assert!(NodeResourcesFit::new(&json!({"scoringStrategy": {}})).is_err());
        assert!(
            NodeResourcesFit::new(
                &json!({"scoringStrategy": {"type": "RequestedToCapacityRatio"}})
            )
            .is_err()
        );
        assert!(NodeResourcesFit::new(&json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
            "requestedToCapacityRatio": {"shape": [{"utilization": 50, "score": 1}, {"utilization": 10, "score": 2}]}}})).is_err());
        assert!(
            NodeResourcesFit::new(&json!({"scoringStrategy": {"type": "LeastAllocated",
            "resources": [{"name": "cpu", "weight": 101}]}}))
            .is_err()
        );
        assert!(
            NodeResourcesFit::new(&json!({"ignoredResourceGroups": ["example.com/foo"]})).is_err()
        );
        assert!(NodeResourcesFit::new(&Value::Null).is_ok());
    }
}
