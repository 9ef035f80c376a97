//! PodTopologySpread: spreads a pod's group evenly over topology domains
//! (zones, nodes, ...) as its `topologySpreadConstraints` ask, as upstream's
//! plugin (`pkg/scheduler/framework/plugins/podtopologyspread`):
//! `DoNotSchedule` constraints filter (a node is rejected when placing the
//! pod there would make its domain exceed the least crowded one by more
//! than `maxSkew`), `ScheduleAnyway` constraints score (emptier domains
//! score higher).
//!
//! PreFilter counts matching pods per domain once, so Filter is a few map
//! lookups per node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use kube::core::{Expression, Selector, SelectorExt};
use serde::Deserialize;
use serde_json::Value;

use crate::framework::spreading;
use crate::framework::{CycleState, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, Snapshot, Status};
use capstan_component_helpers::scheduling::{first_untolerated, pod_matches_node};

/// Cycle-state key of the Filter counts.
const PRE_FILTER_KEY: &str = "PreFilterPodTopologySpread";
/// Cycle-state key of the Score counts.
const PRE_SCORE_KEY: &str = "PreScorePodTopologySpread";

/// Placing the pod on the node would exceed a constraint's maxSkew.
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
/// The node lacks a constraint's topology key (unresolvable).
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const DO_NOT_SCHEDULE: &str = "DoNotSchedule";
const SCHEDULE_ANYWAY: &str = "ScheduleAnyway";
/// Hostname domains are counted per node at Score time, as upstream.
const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// Score of a node lacking a topology key; it normalises to 0.
const INVALID_SCORE: i64 = -1;

/// `PodTopologySpreadArgs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Args {
    #[serde(default)]
    default_constraints: Vec<TopologySpreadConstraint>,
    defaulting_type: Option<String>,
    #[serde(rename = "kind", default)]
    _kind: Option<Value>,
    #[serde(rename = "apiVersion", default)]
    _api_version: Option<Value>,
}

/// Filters on hard constraints, scores on soft ones.
pub struct PodTopologySpread {
    /// Constraints for pods that declare none: the configured ones
    /// (`defaultingType: List`) or upstream's system defaults (`System`,
    /// the default: ScheduleAnyway over hostnames with maxSkew 3 and zones
    /// with maxSkew 5). Either spreads the pod's group, as
    /// [`spreading::default_selector`] derives it from its Services and
    /// controller.
    default_constraints: Vec<TopologySpreadConstraint>,
    /// The defaults are upstream's system ones: then, as upstream, nodes
    /// lacking a topology key are still scored (by the keys they have).
    system_defaults: bool,
}

/// The domain a node is in for `key` when scoring: its label, or (under
/// system defaults, where nodes lacking a key still count) the empty
/// domain upstream reads a missing label as.
fn domain_of<'a>(
    labels: &'a BTreeMap<String, String>,
    key: &str,
    require_all_keys: bool,
) -> Option<&'a str> {
    match labels.get(key) {
        Some(v) => Some(v.as_str()),
        None if !require_all_keys => Some(""),
        None => None,
    }
}

/// Upstream's `systemDefaultConstraints`.
fn system_default_constraints() -> Vec<TopologySpreadConstraint> {
    let c = |key: &str, skew: i32| TopologySpreadConstraint {
        max_skew: skew,
        topology_key: key.to_string(),
        when_unsatisfiable: SCHEDULE_ANYWAY.to_string(),
        ..Default::default()
    };
    vec![
        c("kubernetes.io/hostname", 3),
        c("topology.kubernetes.io/zone", 5),
    ]
}

impl PodTopologySpread {
    /// Builds the plugin from `PodTopologySpreadArgs`, defaulted
    /// (`System`) and validated as upstream.
    pub fn new(args: &Value) -> Result<Self, String> {
        let args: Args = if args.is_null() {
            Args::default()
        } else {
            serde_json::from_value(args.clone())
                .map_err(|e| format!("PodTopologySpreadArgs: {e}"))?
        };
        let defaulting = args.defaulting_type.as_deref().unwrap_or("System");
        match defaulting {
            "List" => {}
            "System" if args.default_constraints.is_empty() => {}
            "System" => {
                return Err(
                    "defaultingType: Invalid value: \"System\": when .defaultConstraints are not empty".into(),
                );
            }
            other => {
                return Err(format!(
                    "defaultingType: Unsupported value: {other:?}: supported values: \"List\", \"System\""
                ));
            }
        }
        for (i, c) in args.default_constraints.iter().enumerate() {
            validate_default_constraint(i, c, &args.default_constraints)?;
        }
        let default_constraints = if defaulting == "System" {
            system_default_constraints()
        } else {
            args.default_constraints
        };
        Ok(PodTopologySpread {
            default_constraints,
            system_defaults: defaulting == "System",
        })
    }
}

/// Upstream's checks of one `defaultConstraints` entry.
fn validate_default_constraint(
    i: usize,
    c: &TopologySpreadConstraint,
    all: &[TopologySpreadConstraint],
) -> Result<(), String> {
    let path = format!("defaultConstraints[{i}]");
    if c.max_skew <= 0 {
        return Err(format!(
            "{path}.maxSkew: Invalid value: {}: not in valid range",
            c.max_skew
        ));
    }
    if c.topology_key.is_empty() {
        return Err(format!(
            "{path}.topologyKey: Required value: can not be empty"
        ));
    }
    if c.when_unsatisfiable != DO_NOT_SCHEDULE && c.when_unsatisfiable != SCHEDULE_ANYWAY {
        return Err(format!(
            "{path}.whenUnsatisfiable: Unsupported value: {:?}: supported values: \"DoNotSchedule\", \"ScheduleAnyway\"",
            c.when_unsatisfiable
        ));
    }
    if c.label_selector.is_some() {
        return Err(format!(
            "{path}.labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod"
        ));
    }
    let repeated = all[..i]
        .iter()
        .any(|o| o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable);
    if repeated {
        return Err(format!(
            "{path}: Duplicate value: {{{:?}, {:?}}}",
            c.topology_key, c.when_unsatisfiable
        ));
    }
    Ok(())
}

/// A constraint with its selector parsed and policies defaulted.
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    /// `None` when the constraint has no labelSelector: it selects nothing.
    selector: Option<Selector>,
    min_domains: i64,
    /// `nodeAffinityPolicy: Honor` (the default): only nodes the pod's
    /// nodeSelector/required node affinity accepts form domains.
    honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default Ignore): only nodes whose
    /// NoSchedule/NoExecute taints the pod tolerates form domains.
    honor_node_taints: bool,
}

impl Constraint {
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }

    /// Upstream's `countPodsMatchSelector`: pods of the namespace matching
    /// the selector, not being deleted; an empty selector counts none.
    fn count_matching(&self, pods: &[Arc<PodInfo>], namespace: &str) -> i64 {
        let Some(selector) = self.selector.as_ref().filter(|s| !s.selects_all()) else {
            return 0;
        };
        pods.iter()
            .filter(|p| {
                !p.is_terminating() && p.namespace == namespace && selector.matches(&p.labels)
            })
            .count() as i64
    }

    /// Whether the node forms a domain under this constraint's node
    /// inclusion policies.
    fn includes(&self, inclusion: &Inclusion) -> bool {
        (!self.honor_node_affinity || inclusion.affinity_ok)
            && (!self.honor_node_taints || inclusion.taints_ok)
    }
}

/// What the node inclusion policies ask of one node, computed once per
/// node.
struct Inclusion {
    affinity_ok: bool,
    taints_ok: bool,
}

impl Inclusion {
    fn of(pod: &PodInfo, node: &NodeInfo, constraints: &[Constraint]) -> Self {
        let affinity_ok = !constraints.iter().any(|c| c.honor_node_affinity)
            || pod_matches_node(&pod.pod, &node.labels, &node.name);
        let taints_ok = !constraints.iter().any(|c| c.honor_node_taints)
            || first_untolerated(
                node.taints(),
                pod.tolerations(),
                &["NoSchedule", "NoExecute"],
            )
            .is_none();
        Inclusion {
            affinity_ok,
            taints_ok,
        }
    }
}

/// Whether the node has every constraint's topology key.
fn has_all_keys(labels: &BTreeMap<String, String>, constraints: &[Constraint]) -> bool {
    constraints
        .iter()
        .all(|c| labels.contains_key(&c.topology_key))
}

/// Adds `n` to `map[key]`, allocating the key only when it is new.
fn add_count(map: &mut HashMap<String, i64>, key: &str, n: i64) {
    match map.get_mut(key) {
        Some(v) => *v += n,
        None => {
            map.insert(key.to_string(), n);
        }
    }
}

/// Upstream's `filterTopologySpreadConstraints`: the constraints with
/// `action`, with `matchLabelKeys` merged into the selector from the pod's
/// labels.
fn parse_constraints(
    specs: &[TopologySpreadConstraint],
    pod_labels: &BTreeMap<String, String>,
    action: &str,
) -> Result<Vec<Constraint>, String> {
    let mut out = Vec::new();
    for c in specs.iter().filter(|c| c.when_unsatisfiable == action) {
        let mut selector = match &c.label_selector {
            Some(ls) => Some(Selector::try_from(ls.clone()).map_err(|e| e.0)?),
            None => None,
        };
        if let Some(sel) = selector.as_mut() {
            let keys = c.match_label_keys.iter().flatten();
            sel.extend(keys.filter_map(|k| {
                pod_labels
                    .get(k)
                    .map(|v| Expression::Equal(k.clone(), v.clone()))
            }));
        }
        out.push(Constraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        });
    }
    Ok(out)
}

impl PodTopologySpread {
    /// The pod's constraints with `action`, or the default ones when it
    /// declares none.
    fn constraints_for(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        action: &str,
    ) -> Result<Vec<Constraint>, String> {
        let specs = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or_default();
        if !specs.is_empty() {
            return parse_constraints(specs, &pod.labels, action);
        }
        let mut constraints = parse_constraints(&self.default_constraints, &pod.labels, action)?;
        if constraints.is_empty() {
            return Ok(constraints);
        }
        let Some(selector) = spreading::default_selector(pod, snapshot) else {
            return Ok(Vec::new());
        };
        for c in &mut constraints {
            c.selector = Some(selector.clone());
        }
        Ok(constraints)
    }
}

/// Matching pods per domain for each hard constraint, from PreFilter;
/// add_pod/remove_pod keep it true for preemption's what-ifs.
#[derive(Clone, Debug)]
struct PreFilterState {
    constraints: Arc<Vec<Constraint>>,
    /// Per constraint: domain (topology value) → matching pods.
    domain_counts: Vec<HashMap<String, i64>>,
    /// Per constraint: matching-pod count → domains holding exactly that
    /// many; the first key is the exact global minimum, kept exact under
    /// add_pod/remove_pod.
    domains_at_count: Vec<BTreeMap<i64, usize>>,
}

impl PreFilterState {
    /// The global minimum for constraint `i`, 0 while there are fewer
    /// domains than `minDomains`.
    fn min_match(&self, i: usize, min_domains: i64) -> i64 {
        if (self.domain_counts[i].len() as i64) < min_domains {
            return 0;
        }
        self.domains_at_count[i]
            .keys()
            .next()
            .copied()
            .unwrap_or(i64::from(i32::MAX))
    }

    /// Moves domain `value` of constraint `i` by `delta` pods.
    fn update(&mut self, i: usize, value: &str, delta: i64) {
        let old = self.domain_counts[i].get(value).copied();
        let cur = old.unwrap_or(0) + delta;
        add_count(&mut self.domain_counts[i], value, delta);
        let hist = &mut self.domains_at_count[i];
        if let Some(old) = old
            && let Some(n) = hist.get_mut(&old)
        {
            *n -= 1;
            if *n == 0 {
                hist.remove(&old);
            }
        }
        *hist.entry(cur).or_insert(0) += 1;
    }

    /// Upstream's `updateWithPod`: `other` joins (1) or leaves (-1) `node`.
    fn update_with_pod(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, delta: i64) {
        let constraints = self.constraints.clone();
        if other.namespace != pod.namespace || !has_all_keys(&node.labels, &constraints) {
            return;
        }
        let inclusion = Inclusion::of(pod, node, &constraints);
        for (i, c) in constraints.iter().enumerate() {
            if !c.selects(&other.labels) || !c.includes(&inclusion) {
                continue;
            }
            if let Some(value) = node.labels.get(&c.topology_key) {
                self.update(i, value, delta);
            }
        }
    }
}

/// Matching pods per domain for each soft constraint, from PreScore.
#[derive(Clone, Debug)]
struct PreScoreState {
    constraints: Vec<Constraint>,
    /// Per constraint: domain → matching pods, for the domains of the
    /// scored nodes (hostname constraints are counted at Score).
    domain_counts: Vec<HashMap<String, i64>>,
    /// Per constraint: log(domains + 2), so small topologies are not
    /// drowned by big ones.
    weights: Vec<f64>,
    /// Whether a node lacking a topology key is left unscored (false only
    /// for system defaults).
    require_all_keys: bool,
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        let constraints = match self.constraints_for(pod, snapshot, DO_NOT_SCHEDULE) {
            Ok(c) => c,
            Err(e) => {
                return Status::Error(format!(
                    "obtaining pod's hard topology spread constraints: {e}"
                ));
            }
        };
        if constraints.is_empty() {
            return Status::Skip;
        }
        let mut domain_counts = vec![HashMap::new(); constraints.len()];
        for node in &snapshot.nodes {
            if !has_all_keys(&node.labels, &constraints) {
                continue;
            }
            let inclusion = Inclusion::of(pod, node, &constraints);
            for (i, c) in constraints.iter().enumerate() {
                if !c.includes(&inclusion) {
                    continue;
                }
                if let Some(value) = node.labels.get(&c.topology_key) {
                    add_count(
                        &mut domain_counts[i],
                        value,
                        c.count_matching(&node.pods, &pod.namespace),
                    );
                }
            }
        }
        let domains_at_count = domain_counts
            .iter()
            .map(|counts| {
                let mut hist = BTreeMap::new();
                for n in counts.values() {
                    *hist.entry(*n).or_insert(0) += 1;
                }
                hist
            })
            .collect();
        state.write(
            PRE_FILTER_KEY,
            PreFilterState {
                constraints: Arc::new(constraints),
                domain_counts,
                domains_at_count,
            },
        );
        Status::Success
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_KEY) else {
            return Status::Error(format!(
                "reading {PRE_FILTER_KEY:?} from cycleState: not found"
            ));
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            // 'existing matching num' + 'if self-match (1 or 0)' - 'global minimum' <= 'maxSkew'
            let self_match = i64::from(c.selects(&pod.labels));
            let matching = s.domain_counts[i].get(value).copied().unwrap_or(0);
            if matching + self_match - s.min_match(i, c.min_domains) > c.max_skew {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::Success
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update_with_pod(pod, other, node, 1);
        }
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update_with_pod(pod, other, node, -1);
        }
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status {
        if snapshot.nodes.is_empty() {
            return Status::Skip;
        }
        let constraints = match self.constraints_for(pod, snapshot, SCHEDULE_ANYWAY) {
            Ok(c) => c,
            Err(e) => {
                return Status::Error(format!(
                    "calculating preScoreState: obtaining pod's soft topology spread constraints: {e}"
                ));
            }
        };
        if constraints.is_empty() {
            return Status::Skip;
        }
        let declares_own = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        let require_all_keys = declares_own || !self.system_defaults;
        let has_keys = |labels: &BTreeMap<String, String>| {
            !require_all_keys || has_all_keys(labels, &constraints)
        };
        // The domains of the scored nodes; nodes lacking a key are ignored.
        let mut domain_counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
        let mut ignored = 0usize;
        for node in nodes {
            if !has_keys(&node.labels) {
                ignored += 1;
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == LABEL_HOSTNAME {
                    continue;
                }
                if let Some(value) = domain_of(&node.labels, &c.topology_key, require_all_keys) {
                    add_count(&mut domain_counts[i], value, 0);
                }
            }
        }
        let weights = constraints
            .iter()
            .zip(&domain_counts)
            .map(|(c, counts)| {
                let size = if c.topology_key == LABEL_HOSTNAME {
                    nodes.len() - ignored
                } else {
                    counts.len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        // Matching pods in those domains, over every node.
        for node in &snapshot.nodes {
            if !has_keys(&node.labels) {
                continue;
            }
            let inclusion = Inclusion::of(pod, node, &constraints);
            for (i, c) in constraints.iter().enumerate() {
                if !c.includes(&inclusion) {
                    continue;
                }
                let count = domain_of(&node.labels, &c.topology_key, require_all_keys)
                    .and_then(|value| domain_counts[i].get_mut(value));
                if let Some(count) = count {
                    *count += c.count_matching(&node.pods, &pod.namespace);
                }
            }
        }
        state.write(
            PRE_SCORE_KEY,
            PreScoreState {
                constraints,
                domain_counts,
                weights,
                require_all_keys,
            },
        );
        Status::Success
    }

    /// The weighted matching-pod count of the node's domains (lower is
    /// better; reversed at normalisation), or [`INVALID_SCORE`] for a node
    /// lacking a topology key.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return 0;
        };
        if s.require_all_keys && !has_all_keys(&node.labels, &s.constraints) {
            return INVALID_SCORE;
        }
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == LABEL_HOSTNAME {
                c.count_matching(&node.pods, &pod.namespace)
            } else {
                s.domain_counts[i].get(value).copied().unwrap_or(0)
            };
            // maxSkew-1 waters down differences the constraint tolerates.
            score += count as f64 * s.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    /// Reverses and scales onto 0..=100 (fewest matching pods best);
    /// nodes lacking a topology key get 0.
    fn normalize_scores(&self, state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        if state.read::<PreScoreState>(PRE_SCORE_KEY).is_none() {
            return;
        }
        let valid = || scores.iter().copied().filter(|s| *s >= 0);
        let min = valid().min().unwrap_or(i64::MAX);
        let max = valid().max().unwrap_or(0);
        for score in scores.iter_mut() {
            *score = if *score < 0 {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *score) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::testing;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    const ZONE: &str = "topology.kubernetes.io/zone";

    fn node(name: &str, zone: Option<&str>, taints: Value) -> NodeInfo {
        let mut labels = json!({LABEL_HOSTNAME: name});
        if let Some(z) = zone {
            labels[ZONE] = json!(z);
        }
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints}
        }))
        .unwrap_or_default();
        NodeInfo::new(Arc::new(n))
    }

    fn zone_node(name: &str, zone: &str) -> NodeInfo {
        node(name, Some(zone), json!(null))
    }

    fn pod_with(name: &str, labels: Value, spec: Value) -> PodInfo {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c"}]);
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": labels},
            "spec": spec
        }))
        .unwrap_or_default();
        PodInfo::new(Arc::new(p))
    }

    fn web(name: &str) -> Arc<PodInfo> {
        Arc::new(pod_with(name, json!({"app": "web"}), json!({})))
    }

    fn spread(key: &str, extra: Value) -> Value {
        let mut c = json!({
            "maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}
        });
        if let Value::Object(m) = extra {
            for (k, v) in m {
                c[k] = v;
            }
        }
        c
    }

    fn incoming(constraint: Value, spec: Value) -> PodInfo {
        let mut spec = spec;
        spec["topologySpreadConstraints"] = json!([constraint]);
        pod_with("incoming", json!({"app": "web"}), spec)
    }

    use testing::snapshot;

    fn plugin() -> PodTopologySpread {
        PodTopologySpread::new(&json!({})).unwrap_or_else(|e| panic!("{e}"))
    }

    fn run_filter(pl: &PodTopologySpread, snap: &Snapshot, p: &PodInfo) -> Vec<Status> {
        testing::filters(pl, p, snap)
    }

    fn rejected() -> Status {
        Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH)
    }

    #[test]
    fn max_skew_one_across_zones_rejects_the_crowded_zone() {
        let mut a1 = zone_node("a1", "a");
        a1.add_pod(web("w1"));
        let snap = snapshot(vec![
            a1,
            zone_node("a2", "a"),
            zone_node("b1", "b"),
            node("bare", None, json!(null)),
        ]);
        let statuses = run_filter(
            &plugin(),
            &snap,
            &incoming(spread(ZONE, json!({})), json!({})),
        );
        assert_eq!(statuses[0], rejected());
        assert_eq!(statuses[1], rejected());
        assert_eq!(statuses[2], Status::Success);
        assert_eq!(
            statuses[3],
            Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH)
        );

        // A pod without constraints is not this plugin's business.
        let mut state = CycleState::default();
        let plain = pod_with("plain", json!({"app": "web"}), json!({}));
        assert_eq!(plugin().pre_filter(&mut state, &plain, &snap), Status::Skip);
    }

    #[test]
    fn min_domains_treats_the_global_minimum_as_zero() {
        let mut a1 = zone_node("a1", "a");
        a1.add_pod(web("w1"));
        let mut b1 = zone_node("b1", "b");
        b1.add_pod(web("w2"));
        let snap = snapshot(vec![a1, b1]);
        let statuses = run_filter(
            &plugin(),
            &snap,
            &incoming(spread(ZONE, json!({})), json!({})),
        );
        assert!(statuses.iter().all(Status::is_success));
        // Two domains, three wanted: every domain already holds one pod.
        let statuses = run_filter(
            &plugin(),
            &snap,
            &incoming(spread(ZONE, json!({"minDomains": 3})), json!({})),
        );
        assert!(statuses.iter().all(|s| *s == rejected()));
    }

    #[test]
    fn node_inclusion_policies_decide_which_nodes_form_domains() {
        let mut a1 = zone_node("a1", "a");
        a1.add_pod(web("w1"));
        let mut b1 = zone_node("b1", "b");
        b1.add_pod(web("w2"));
        let c1 = node(
            "c1",
            Some("c"),
            json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]),
        );
        let snap = snapshot(vec![a1, b1, c1]);
        let only_a_b = json!({"nodeSelector": {}, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["a", "b"]}]}]}}}});
        // Honor (default): zone c is not a domain for this pod, the minimum is 1.
        let statuses = run_filter(
            &plugin(),
            &snap,
            &incoming(spread(ZONE, json!({})), only_a_b.clone()),
        );
        assert_eq!(statuses[0], Status::Success);
        // Ignore: empty zone c counts, so a and b are one too many.
        let ignore = incoming(
            spread(ZONE, json!({"nodeAffinityPolicy": "Ignore"})),
            only_a_b,
        );
        let statuses = run_filter(&plugin(), &snap, &ignore);
        assert_eq!(statuses[0], rejected());

        // Taints are ignored by default: tainted empty zone c is a domain.
        let statuses = run_filter(
            &plugin(),
            &snap,
            &incoming(spread(ZONE, json!({})), json!({})),
        );
        assert_eq!(statuses[0], rejected());
        let honor = incoming(
            spread(ZONE, json!({"nodeTaintsPolicy": "Honor"})),
            json!({}),
        );
        assert_eq!(run_filter(&plugin(), &snap, &honor)[0], Status::Success);
    }

    #[test]
    fn only_live_pods_of_the_namespace_and_the_label_keys_count() {
        let mut a1 = zone_node("a1", "a");
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "dying", "namespace": "default", "labels": {"app": "web"},
                "deletionTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .unwrap_or_default();
        a1.add_pod(Arc::new(PodInfo::new(Arc::new(p))));
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "elsewhere", "namespace": "other", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .unwrap_or_default();
        a1.add_pod(Arc::new(PodInfo::new(Arc::new(p))));
        a1.add_pod(Arc::new(pod_with(
            "old",
            json!({"app": "web", "rev": "1"}),
            json!({}),
        )));
        let snap = snapshot(vec![a1, zone_node("b1", "b")]);

        // Without matchLabelKeys the old revision's pod counts.
        let statuses = run_filter(
            &plugin(),
            &snap,
            &incoming(spread(ZONE, json!({})), json!({})),
        );
        assert_eq!(statuses[0], rejected());

        // With matchLabelKeys: [rev] only revision 2 pods count.
        let mut p = incoming(spread(ZONE, json!({"matchLabelKeys": ["rev"]})), json!({}));
        p.labels.insert("rev".into(), "2".into());
        let statuses = run_filter(&plugin(), &snap, &p);
        assert!(statuses.iter().all(Status::is_success));
    }

    #[test]
    fn add_pod_and_remove_pod_change_the_filter_result() {
        let pl = plugin();
        let victim = web("w1");
        let mut a1 = zone_node("a1", "a");
        a1.add_pod(victim.clone());
        let snap = snapshot(vec![a1, zone_node("b1", "b")]);
        let p = incoming(spread(ZONE, json!({})), json!({}));
        let mut state = CycleState::default();
        assert_eq!(pl.pre_filter(&mut state, &p, &snap), Status::Success);
        let (a1, b1) = (&snap.nodes[0], &snap.nodes[1]);
        assert_eq!(pl.filter(&state, &p, a1), rejected());

        let mut what_if = state.clone();
        pl.remove_pod(&mut what_if, &p, &victim, a1);
        assert_eq!(pl.filter(&what_if, &p, a1), Status::Success);
        assert_eq!(
            pl.filter(&state, &p, a1),
            rejected(),
            "the original state is untouched"
        );

        // Two nominated pods in zone b make b the crowded zone.
        pl.add_pod(&mut what_if, &p, &web("n1"), b1);
        pl.add_pod(&mut what_if, &p, &web("n2"), b1);
        assert_eq!(pl.filter(&what_if, &p, b1), rejected());
        assert_eq!(pl.filter(&what_if, &p, a1), Status::Success);
        // Pods the selector does not match change nothing.
        let other = Arc::new(pod_with("db", json!({"app": "db"}), json!({})));
        pl.add_pod(&mut what_if, &p, &other, a1);
        assert_eq!(pl.filter(&what_if, &p, a1), Status::Success);
    }

    fn scores(pl: &PodTopologySpread, snap: &Snapshot, p: &PodInfo) -> Option<Vec<i64>> {
        let nodes: Vec<&NodeInfo> = snap.nodes.iter().collect();
        testing::scores(pl, p, &nodes, snap, true)
    }

    #[test]
    fn schedule_anyway_prefers_the_emptier_domain() {
        let mut a1 = zone_node("a1", "a");
        a1.add_pod(web("w1"));
        a1.add_pod(web("w2"));
        let snap = snapshot(vec![
            a1,
            zone_node("b1", "b"),
            node("bare", None, json!(null)),
        ]);
        let soft = incoming(
            spread(ZONE, json!({"whenUnsatisfiable": "ScheduleAnyway"})),
            json!({}),
        );
        // a: round(2 * ln 4) = 3, b: 0; the node without a zone gets 0.
        assert_eq!(scores(&plugin(), &snap, &soft), Some(vec![0, 100, 0]));

        // Per hostname: the pods on each node itself.
        let mut n1 = zone_node("n1", "a");
        n1.add_pod(web("w1"));
        let snap = snapshot(vec![n1, zone_node("n2", "a")]);
        let soft = incoming(
            spread(
                LABEL_HOSTNAME,
                json!({"whenUnsatisfiable": "ScheduleAnyway"}),
            ),
            json!({}),
        );
        assert_eq!(scores(&plugin(), &snap, &soft), Some(vec![0, 100]));

        // Hard constraints do not score.
        assert_eq!(
            scores(
                &plugin(),
                &snap,
                &incoming(spread(ZONE, json!({})), json!({}))
            ),
            None
        );
    }

    #[test]
    fn list_defaults_apply_to_pods_without_constraints() {
        let args = json!({"defaultingType": "List", "defaultConstraints": [
            {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}]});
        let pl = PodTopologySpread::new(&args).unwrap_or_else(|e| panic!("{e}"));
        let mut a1 = zone_node("a1", "a");
        a1.add_pod(web("w1"));
        let mut snap = snapshot(vec![a1, zone_node("b1", "b")]);
        let plain = pod_with("plain", json!({"app": "web"}), json!({}));
        // Without a Service or controller the pod has no group to spread.
        let mut state = CycleState::default();
        assert_eq!(pl.pre_filter(&mut state, &plain, &snap), Status::Skip);
        // A Service selecting it defines the group.
        snap.spreading.set_service(
            "default",
            "web",
            Some([("app".into(), "web".into())].into()),
        );
        let statuses = run_filter(&pl, &snap, &plain);
        assert_eq!(statuses, vec![rejected(), Status::Success]);

        // System defaults are ScheduleAnyway only: they score, never filter.
        assert_eq!(plugin().pre_filter(&mut state, &plain, &snap), Status::Skip);
        let nodes: Vec<&NodeInfo> = snap.nodes.iter().collect();
        assert_eq!(
            plugin().pre_score(&mut state, &plain, &nodes, &snap),
            Status::Success
        );
        // A pod no Service or controller selects gets no defaults.
        let bare = pod_with("bare", json!({"other": "x"}), json!({}));
        assert_eq!(pl.pre_filter(&mut state, &bare, &snap), Status::Skip);
    }

    #[test]
    fn args_are_validated() {
        let c = |v: Value| json!({"defaultingType": "List", "defaultConstraints": [v]});
        let ok = json!({"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway"});
        assert!(PodTopologySpread::new(&c(ok.clone())).is_ok());
        assert!(
            PodTopologySpread::new(&json!({"defaultConstraints": [ok.clone()]})).is_err(),
            "System with constraints"
        );
        assert!(PodTopologySpread::new(&json!({"defaultingType": "Nope"})).is_err());
        let mut bad = ok.clone();
        bad["maxSkew"] = json!(0);
        assert!(PodTopologySpread::new(&c(bad)).is_err());
        let mut bad = ok.clone();
        bad["labelSelector"] = json!({});
        assert!(PodTopologySpread::new(&c(bad)).is_err());
        let dup = json!({"defaultingType": "List", "defaultConstraints": [ok.clone(), ok]});
        assert!(PodTopologySpread::new(&dup).is_err());
    }
}
