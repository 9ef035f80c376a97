//! NodeAffinity: a pod's `nodeSelector` and required node affinity decide
//! which nodes it may use, its preferred terms which it likes best; the
//! profile may add affinity of its own (`addedAffinity`). As upstream's
//! plugin of the same name.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    NodeAffinity as NodeAffinitySpec, NodeSelector, NodeSelectorRequirement,
    PreferredSchedulingTerm,
};
use serde::Deserialize;
use serde_json::Value;

use crate::framework;
use crate::framework::{CycleState, NodeInfo, Plugin, PodInfo, Snapshot, Status};
use capstan_component_helpers::scheduling::{
    node_selector_matches, pod_matches_node, term_matches,
};

/// Upstream's `ErrReasonPod`.
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
/// Upstream's `errReasonEnforced`: the node fails the profile's
/// `addedAffinity`.
pub const ERR_REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";
/// Upstream's `errReasonConflict`: the pod's required terms name no node.
pub const ERR_REASON_CONFLICT: &str = "pod affinity terms conflict";

/// `NodeAffinityArgs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Args {
    added_affinity: Option<NodeAffinitySpec>,
}

/// Filters by required node affinity and scores by preferred node
/// affinity, both the pod's and the profile's.
pub struct NodeAffinity {
    /// Required affinity every pod of the profile must also satisfy.
    added_required: Option<NodeSelector>,
    /// Preferred terms added to every pod's own.
    added_preferred: Vec<PreferredSchedulingTerm>,
}

impl NodeAffinity {
    /// Builds the plugin from `NodeAffinityArgs`; malformed added affinity
    /// is an error, as upstream's validation.
    pub fn new(args: &Value) -> Result<Self, String> {
        let args: Args = if args.is_null() {
            Args::default()
        } else {
            serde_json::from_value(args.clone()).map_err(|e| format!("NodeAffinityArgs: {e}"))?
        };
        let added = args.added_affinity.unwrap_or_default();
        let added_required = added.required_during_scheduling_ignored_during_execution;
        let added_preferred = added
            .preferred_during_scheduling_ignored_during_execution
            .unwrap_or_default();
        let required_reqs = added_required
            .iter()
            .flat_map(|s| &s.node_selector_terms)
            .map(|t| (t, "requiredDuringSchedulingIgnoredDuringExecution"));
        let preferred_reqs = added_preferred.iter().map(|p| {
            (
                &p.preference,
                "preferredDuringSchedulingIgnoredDuringExecution",
            )
        });
        for (term, path) in required_reqs.chain(preferred_reqs) {
            for r in term.match_expressions.iter().flatten() {
                validate_requirement(r, false).map_err(|e| format!("addedAffinity.{path}: {e}"))?;
            }
            for r in term.match_fields.iter().flatten() {
                validate_requirement(r, true).map_err(|e| format!("addedAffinity.{path}: {e}"))?;
            }
        }
        Ok(NodeAffinity {
            added_required,
            added_preferred,
        })
    }
}

/// Checks one requirement as upstream's node selector parsing does.
fn validate_requirement(r: &NodeSelectorRequirement, field: bool) -> Result<(), String> {
    let n = r.values.as_ref().map_or(0, Vec::len);
    if field {
        if r.key != "metadata.name" {
            return Err(format!("matchFields key {:?} not supported", r.key));
        }
        if !matches!(r.operator.as_str(), "In" | "NotIn") || n != 1 {
            return Err("matchFields must use In or NotIn with exactly one value".to_string());
        }
        return Ok(());
    }
    let ok = match r.operator.as_str() {
        "In" | "NotIn" => n > 0,
        "Exists" | "DoesNotExist" => n == 0,
        "Gt" | "Lt" => n == 1 && r.values.iter().flatten().all(|v| v.parse::<i64>().is_ok()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid requirement {:?} {} with {n} value(s)",
            r.key, r.operator
        ))
    }
}

fn pod_node_affinity(pod: &PodInfo) -> Option<&NodeAffinitySpec> {
    pod.pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()
}

/// Whether every required term pins the pod to nodes by name and no name
/// is left: then no node can ever match.
fn names_conflict(required: &NodeSelector) -> bool {
    let mut names: Option<BTreeSet<&str>> = None;
    for term in &required.node_selector_terms {
        let mut term_names: Option<BTreeSet<&str>> = None;
        for r in term.match_fields.iter().flatten() {
            if r.key == "metadata.name" && r.operator == "In" {
                let set: BTreeSet<&str> = r.values.iter().flatten().map(String::as_str).collect();
                term_names = Some(match term_names {
                    None => set,
                    Some(prev) => prev.intersection(&set).copied().collect(),
                });
            }
        }
        // A term without a name restriction lets every node through.
        let Some(term_names) = term_names else {
            return false;
        };
        names.get_or_insert_with(BTreeSet::new).extend(term_names);
    }
    names.is_some_and(|n| n.is_empty())
}

/// Sum of the weights of `terms` the node matches.
fn preferred_score(terms: &[PreferredSchedulingTerm], node: &NodeInfo) -> i64 {
    terms
        .iter()
        .filter(|t| t.weight != 0 && term_matches(&t.preference, &node.labels, &node.name))
        .map(|t| i64::from(t.weight))
        .sum()
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn pre_filter(&self, _state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> Status {
        let required = pod_node_affinity(pod).and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
        let has_selector = pod
            .pod
            .spec
            .as_ref()
            .is_some_and(|s| s.node_selector.is_some());
        if required.is_none() && self.added_required.is_none() && !has_selector {
            return Status::Skip;
        }
        if required.is_some_and(names_conflict) {
            return Status::unresolvable(ERR_REASON_CONFLICT);
        }
        Status::Success
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let enforced_ok = self
            .added_required
            .as_ref()
            .is_none_or(|added| node_selector_matches(added, &node.labels, &node.name));
        if !enforced_ok {
            return Status::unresolvable(ERR_REASON_ENFORCED);
        }
        if pod_matches_node(&pod.pod, &node.labels, &node.name) {
            Status::Success
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }

    fn pre_score(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        _snapshot: &Snapshot,
    ) -> Status {
        let preferred = pod_node_affinity(pod).and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
        if preferred.is_none() && self.added_preferred.is_empty() {
            return Status::Skip;
        }
        Status::Success
    }

    /// Sum of the weights of the preferred terms (the pod's and the
    /// profile's) the node matches.
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let own = pod_node_affinity(pod)
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or_default();
        preferred_score(&self.added_preferred, node) + preferred_score(own, node)
    }

    fn normalize_scores(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        framework::default_normalize_score(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing;
    use serde_json::json;

    fn pod(spec: Value) -> PodInfo {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c"}]);
        testing::pod(json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec}))
    }

    fn node(name: &str, labels: Value) -> NodeInfo {
        testing::node(
            json!({"metadata": {"name": name, "labels": labels}}),
            vec![],
        )
    }

    fn plugin(args: Value) -> NodeAffinity {
        NodeAffinity::new(&args).expect("valid args")
    }

    fn scores(pl: &NodeAffinity, p: &PodInfo, nodes: &[NodeInfo]) -> Vec<i64> {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        testing::scores(pl, p, &refs, &Snapshot::default(), true).expect("scored")
    }

    #[test]
    fn node_selector_and_required_affinity_filter() {
        let pl = plugin(json!({}));
        let p = pod(json!({
            "nodeSelector": {"disk": "ssd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
            }}}
        }));
        let state = CycleState::default();
        assert_eq!(
            pl.pre_filter(&mut CycleState::default(), &p, &Snapshot::default()),
            Status::Success
        );
        assert!(
            pl.filter(
                &state,
                &p,
                &node("good", json!({"disk": "ssd", "zone": "a"}))
            )
            .is_success()
        );
        for bad in [json!({"disk": "ssd", "zone": "b"}), json!({"zone": "a"})] {
            assert_eq!(
                pl.filter(&state, &p, &node("bad", bad)),
                Status::UnschedulableAndUnresolvable(vec![
                    "node(s) didn't match Pod's node affinity/selector".into()
                ])
            );
        }
    }

    #[test]
    fn pod_without_constraints_skips_filter_and_score() {
        let pl = plugin(json!({}));
        let p = pod(json!({}));
        assert_eq!(
            pl.pre_filter(&mut CycleState::default(), &p, &Snapshot::default()),
            Status::Skip
        );
        let n = node("n", json!({}));
        assert_eq!(
            pl.pre_score(&mut CycleState::default(), &p, &[&n], &Snapshot::default()),
            Status::Skip
        );
    }

    #[test]
    fn added_affinity_is_enforced_for_every_pod() {
        let pl = plugin(
            json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["batch"]}]}]
            }}}),
        );
        let p = pod(json!({}));
        assert_eq!(
            pl.pre_filter(&mut CycleState::default(), &p, &Snapshot::default()),
            Status::Success
        );
        let state = CycleState::default();
        assert!(
            pl.filter(&state, &p, &node("b", json!({"pool": "batch"})))
                .is_success()
        );
        assert_eq!(
            pl.filter(&state, &p, &node("w", json!({"pool": "web"})))
                .reasons(),
            ["node(s) didn't match scheduler-enforced node affinity"]
        );
    }

    #[test]
    fn required_terms_naming_no_node_conflict() {
        let pl = plugin(json!({}));
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": ["n1"]},
                    {"key": "metadata.name", "operator": "In", "values": ["n2"]}
                ]}]
            }}}}),
        );
        assert_eq!(
            pl.pre_filter(&mut CycleState::default(), &p, &Snapshot::default()),
            Status::UnschedulableAndUnresolvable(vec!["pod affinity terms conflict".into()])
        );
        let pinned = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]
            }}}}),
        );
        assert!(
            pl.pre_filter(&mut CycleState::default(), &pinned, &Snapshot::default())
                .is_success()
        );
        let state = CycleState::default();
        assert!(
            pl.filter(&state, &pinned, &node("n1", json!({})))
                .is_success()
        );
        assert!(
            !pl.filter(&state, &pinned, &node("n2", json!({})))
                .is_success()
        );
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let pl = plugin(json!({}));
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 80, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
                {"weight": 20, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}
            ]}}}),
        );
        let nodes = [
            node("none", json!({})),
            node("disk", json!({"disk": "ssd"})),
            node("zone", json!({"zone": "a"})),
            node("both", json!({"zone": "a", "disk": "ssd"})),
        ];
        assert_eq!(scores(&pl, &p, &nodes), vec![0, 20, 80, 100]);
    }

    #[test]
    fn added_preferred_terms_count_too() {
        let pl = plugin(
            json!({"addedAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "preference": {"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]}}
            ]}}),
        );
        let nodes = [
            node("spot", json!({"spot": "true"})),
            node("ondemand", json!({})),
        ];
        assert_eq!(scores(&pl, &pod(json!({})), &nodes), vec![0, 100]);
    }

    #[test]
    fn malformed_args_are_rejected() {
        assert!(NodeAffinity::new(&json!({"addedAffinity": "x"})).is_err());
        assert!(NodeAffinity::new(&json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "In", "values": []}]}]
        }}})).is_err());
        assert!(NodeAffinity::new(&json!({"addedAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchFields": [{"key": "metadata.labels", "operator": "In", "values": ["x"]}]}}
        ]}})).is_err());
        assert!(NodeAffinity::new(&Value::Null).is_ok());
    }
}
