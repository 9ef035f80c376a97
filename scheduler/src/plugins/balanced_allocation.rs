//! NodeResourcesBalancedAllocation: prefers nodes whose resources would be
//! used evenly with the pod on them, so no node runs out of one resource
//! while the others sit idle, as upstream's plugin.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use crate::framework::{CycleState, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, Snapshot, Status};

/// Cycle-state key for the pod's requests of the balanced resources.
const PRE_SCORE_KEY: &str = "PreScoreNodeResourcesBalancedAllocation";

/// `NodeResourcesBalancedAllocationArgs`.
#[derive(Debug, Default, Deserialize)]
struct Args {
    #[serde(default)]
    resources: Vec<ResourceSpec>,
}

#[derive(Debug, Deserialize)]
struct ResourceSpec {
    name: String,
    #[serde(default)]
    weight: i64,
}

/// Scores `(1 - standard deviation of the requested fractions) * 100`.
pub struct BalancedAllocation {
    /// Resource names to balance (cpu and memory by default).
    resources: Vec<String>,
}

impl BalancedAllocation {
    /// Builds the plugin from its args; as upstream, every weight must be
    /// 1 (0 defaults to 1) and names must not repeat.
    pub fn new(args: &Value) -> Result<Self, String> {
        let args: Args = if args.is_null() {
            Args::default()
        } else {
            serde_json::from_value(args.clone())
                .map_err(|e| format!("NodeResourcesBalancedAllocationArgs: {e}"))?
        };
        if args.resources.is_empty() {
            return Ok(BalancedAllocation {
                resources: vec!["cpu".to_string(), "memory".to_string()],
            });
        }
        let mut seen = BTreeSet::new();
        for r in &args.resources {
            if !seen.insert(r.name.as_str()) {
                return Err(format!("resources: duplicate value {:?}", r.name));
            }
            if r.weight != 0 && r.weight != 1 {
                return Err(format!("resources: weight of {} must be 1", r.name));
            }
        }
        Ok(BalancedAllocation {
            resources: args.resources.into_iter().map(|r| r.name).collect(),
        })
    }

    /// The pod's actual requests (not defaulted) of each resource.
    fn pod_requests(&self, pod: &PodInfo) -> Vec<i64> {
        self.resources
            .iter()
            .map(|name| pod.requests.requests.get(name))
            .collect()
    }
}

/// Upstream's `balancedResourceScorer` over (requested, allocatable) pairs.
fn balanced_score(pairs: impl Iterator<Item = (i64, i64)>) -> i64 {
    let fractions: Vec<f64> = pairs
        .filter(|&(_, alloc)| alloc != 0)
        .map(|(req, alloc)| (req as f64 / alloc as f64).min(1.0))
        .collect();
    let std = match fractions.as_slice() {
        [a, b] => ((a - b) / 2.0).abs(),
        f if f.len() > 2 => {
            let n = f.len() as f64;
            let mean = f.iter().sum::<f64>() / n;
            (f.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
        }
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    /// Skips best-effort pods (no requests at all): scoring them would pile
    /// them onto one node (upstream issue 129138).
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
    ) -> Status {
        let requests = self.pod_requests(pod);
        if requests.iter().all(|&r| r == 0) {
            return Status::Skip;
        }
        state.write(PRE_SCORE_KEY, requests);
        Status::Success
    }

    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let requests = state.read_or(PRE_SCORE_KEY, || self.pod_requests(pod));
        balanced_score(
            self.resources
                .iter()
                .zip(requests.iter())
                .map(|(name, &req)| {
                    let (alloc, requested) = node.allocatable_and_requested(name, req, false);
                    (requested, alloc)
                }),
        )
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

    fn scores(pl: &BalancedAllocation, p: &PodInfo, nodes: &[NodeInfo]) -> Vec<i64> {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        testing::scores(pl, p, &refs, &Snapshot::default(), false).expect("scored")
    }

    #[test]
    fn prefers_the_node_left_evenly_used() {
        let alloc = json!({"cpu": "4", "memory": "8Gi", "pods": "110"});
        let nodes = [
            node("even", alloc.clone(), vec![]),
            node(
                "cpu-heavy",
                alloc,
                vec![pod("old", json!({"cpu": "2", "memory": "1Gi"}))],
            ),
        ];
        let p = pod("p", json!({"cpu": "1", "memory": "2Gi"}));
        // even: 1/4 and 2/8 → std 0 → 100; cpu-heavy: 3/4 and 3/8 → std
        // 0.1875 → 81.
        let pl = BalancedAllocation::new(&json!({})).expect("args");
        assert_eq!(scores(&pl, &p, &nodes), vec![100, 81]);
    }

    #[test]
    fn more_than_two_resources_use_the_standard_deviation() {
        let pl = BalancedAllocation::new(&json!({"resources": [
            {"name": "cpu", "weight": 1}, {"name": "memory"}, {"name": "example.com/gpu", "weight": 1}
        ]}))
        .expect("args");
        let nodes = [node(
            "n",
            json!({"cpu": "4", "memory": "8Gi", "example.com/gpu": "4"}),
            vec![],
        )];
        // Fractions 0.25, 0.25 and 2 capped at 1: std 0.3536 → 64.
        let p = pod(
            "p",
            json!({"cpu": "1", "memory": "2Gi", "example.com/gpu": "8"}),
        );
        assert_eq!(scores(&pl, &p, &nodes), vec![64]);
        // Without a gpu request the gpu is left out: 0.25, 0.25 → 100.
        let no_gpu = pod("q", json!({"cpu": "1", "memory": "2Gi"}));
        assert_eq!(scores(&pl, &no_gpu, &nodes), vec![100]);
    }

    #[test]
    fn best_effort_pods_skip_scoring() {
        let pl = BalancedAllocation::new(&Value::Null).expect("args");
        let n = node("n", json!({"cpu": "4", "memory": "8Gi"}), vec![]);
        assert_eq!(
            pl.pre_score(
                &mut CycleState::default(),
                &pod("p", json!({})),
                &[&n],
                &Snapshot::default()
            ),
            Status::Skip
        );
    }

    #[test]
    fn weights_other_than_one_and_duplicates_are_rejected() {
        assert!(
            BalancedAllocation::new(&json!({"resources": [{"name": "cpu", "weight": 2}]})).is_err()
        );
        assert!(
            BalancedAllocation::new(&json!({"resources": [{"name": "cpu"}, {"name": "cpu"}]}))
                .is_err()
        );
    }
}
