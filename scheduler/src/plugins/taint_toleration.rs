//! TaintToleration: keeps pods off nodes whose NoSchedule/NoExecute taints
//! they do not tolerate, and steers them away from nodes with
//! PreferNoSchedule taints they do not tolerate, as upstream's plugin.

use k8s_openapi::api::core::v1::Toleration;
use serde_json::Value;

use crate::framework;
use crate::framework::{CycleState, NodeInfo, Plugin, PodInfo, Snapshot, Status};
use capstan_component_helpers::scheduling::{first_untolerated, tolerates};

/// Cycle-state key for the pod's PreferNoSchedule tolerations.
const PRE_SCORE_KEY: &str = "PreScoreTaintToleration";

/// Filters on hard taints; scores by soft ones.
pub struct TaintToleration;

impl TaintToleration {
    /// Builds the plugin; it takes no args.
    pub fn new(_args: &Value) -> Result<Self, String> {
        Ok(TaintToleration)
    }
}

/// The tolerations that can tolerate a PreferNoSchedule taint: those for
/// that effect or for every effect.
fn prefer_no_schedule_tolerations(pod: &PodInfo) -> Vec<Toleration> {
    pod.tolerations()
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .cloned()
        .collect()
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match first_untolerated(
            node.taints(),
            pod.tolerations(),
            &["NoSchedule", "NoExecute"],
        ) {
            None => Status::Success,
            Some(taint) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or_default()
            )),
        }
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
    ) -> Status {
        state.write(PRE_SCORE_KEY, prefer_no_schedule_tolerations(pod));
        Status::Success
    }

    /// The number of PreferNoSchedule taints the pod does not tolerate;
    /// normalisation turns fewer into better.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let tolerations = state.read_or(PRE_SCORE_KEY, || prefer_no_schedule_tolerations(pod));
        node.taints()
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
            .count() as i64
    }

    fn normalize_scores(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        framework::default_normalize_score(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing;
    use serde_json::json;

    fn pod(tolerations: Value) -> PodInfo {
        testing::pod(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c"}], "tolerations": tolerations},
        }))
    }

    fn node(name: &str, taints: Value) -> NodeInfo {
        testing::node(
            json!({"metadata": {"name": name}, "spec": {"taints": taints}}),
            vec![],
        )
    }

    fn scores(p: &PodInfo, nodes: &[NodeInfo]) -> Vec<i64> {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        testing::scores(&TaintToleration, p, &refs, &Snapshot::default(), true).expect("scored")
    }

    #[test]
    fn untolerated_hard_taint_rejects_with_upstream_reason() {
        let n = node(
            "n",
            json!([
                {"key": "soft", "effect": "PreferNoSchedule"},
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
            ]),
        );
        let state = CycleState::default();
        assert_eq!(
            TaintToleration.filter(&state, &pod(json!([])), &n),
            Status::UnschedulableAndUnresolvable(vec![
                "node(s) had untolerated taint {dedicated: gpu}".into()
            ])
        );
        let cp = node(
            "cp",
            json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoExecute"}]),
        );
        assert_eq!(
            TaintToleration
                .filter(&state, &pod(json!([])), &cp)
                .reasons(),
            ["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"]
        );
        let tolerant = pod(
            json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]),
        );
        assert!(TaintToleration.filter(&state, &tolerant, &n).is_success());
    }

    #[test]
    fn prefer_no_schedule_taints_never_reject() {
        let n = node("n", json!([{"key": "soft", "effect": "PreferNoSchedule"}]));
        assert!(
            TaintToleration
                .filter(&CycleState::default(), &pod(json!([])), &n)
                .is_success()
        );
    }

    #[test]
    fn fewer_untolerated_soft_taints_score_higher() {
        let nodes = [
            node("clean", json!([])),
            node("one", json!([{"key": "a", "effect": "PreferNoSchedule"}])),
            node(
                "two",
                json!([
                    {"key": "a", "effect": "PreferNoSchedule"},
                    {"key": "b", "effect": "PreferNoSchedule"}
                ]),
            ),
        ];
        assert_eq!(scores(&pod(json!([])), &nodes), vec![100, 50, 0]);
        // Tolerating `a` (no effect given means every effect) leaves only `b`.
        let tolerant = pod(json!([{"key": "a", "operator": "Exists"}]));
        assert_eq!(scores(&tolerant, &nodes), vec![100, 100, 0]);
        // A toleration for another effect does not count.
        let wrong = pod(json!([{"key": "a", "operator": "Exists", "effect": "NoSchedule"}]));
        assert_eq!(scores(&wrong, &nodes), vec![100, 50, 0]);
    }

    #[test]
    fn all_clean_nodes_score_max() {
        let nodes = [node("a", json!([])), node("b", json!([]))];
        assert_eq!(scores(&pod(json!([])), &nodes), vec![100, 100]);
    }
}
