//! InterPodAffinity: places a pod next to (affinity) or away from
//! (anti-affinity) pods it selects, per topology domain, and keeps pods off
//! domains where existing pods' required anti-affinity rejects them, as
//! upstream's plugin (`pkg/scheduler/framework/plugins/interpodaffinity`).
//!
//! PreFilter counts, once per pod, the matching pods per topology pair
//! (`topologyKey`, value) so Filter checks a node with a few map lookups;
//! PreScore sums preferred-term weights per topology pair the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kube::core::SelectorExt;
use serde::Deserialize;
use serde_json::Value;

use crate::framework::snapshot::{DomainCounts, FastMap};
use crate::framework::{
    AffinityTerm, CycleState, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, Snapshot, Status,
    WeightedAffinityTerm,
};

/// Cycle-state key of the PreFilter counts.
const PRE_FILTER_KEY: &str = "PreFilterInterPodAffinity";
/// Cycle-state key of the PreScore weights.
const PRE_SCORE_KEY: &str = "PreScoreInterPodAffinity";

/// The incoming pod's required affinity is not met (unresolvable).
pub const ERR_REASON_AFFINITY_RULES_NOT_MATCH: &str = "node(s) didn't match pod affinity rules";
/// The incoming pod's required anti-affinity is not met.
pub const ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't match pod anti-affinity rules";
/// An existing pod's required anti-affinity rejects the incoming pod.
pub const ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// Labels of a namespace the snapshot does not know: upstream treats a
/// missing namespace as one without labels.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// `InterPodAffinityArgs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Args {
    hard_pod_affinity_weight: Option<i32>,
    #[serde(default)]
    ignore_preferred_terms_of_existing_pods: bool,
    #[serde(rename = "kind", default)]
    _kind: Option<Value>,
    #[serde(rename = "apiVersion", default)]
    _api_version: Option<Value>,
}

/// Filters on required (anti-)affinity, scores on preferred terms.
pub struct InterPodAffinity {
    /// Weight an existing pod's required affinity term adds to the score of
    /// the domains it would be satisfied in (0 disables).
    hard_pod_affinity_weight: i32,
    /// Score only by the incoming pod's preferred terms, skipping the
    /// (costly) scan of existing pods' terms when it has none.
    ignore_preferred_terms_of_existing_pods: bool,
}

impl InterPodAffinity {
    /// Builds the plugin from `InterPodAffinityArgs`, defaulted (weight 1)
    /// and validated (weight 0-100) as upstream.
    pub fn new(args: &Value) -> Result<Self, String> {
        let args: Args = if args.is_null() {
            Args::default()
        } else {
            serde_json::from_value(args.clone())
                .map_err(|e| format!("InterPodAffinityArgs: {e}"))?
        };
        let weight = args.hard_pod_affinity_weight.unwrap_or(1);
        if !(0..=100).contains(&weight) {
            return Err(format!(
                "hardPodAffinityWeight: Invalid value: {weight}: not in valid range [0-100]"
            ));
        }
        Ok(InterPodAffinity {
            hard_pod_affinity_weight: weight,
            ignore_preferred_terms_of_existing_pods: args.ignore_preferred_terms_of_existing_pods,
        })
    }
}

/// Counts per topology pair: shared per-group domain counts from the
/// snapshot (`base`, each read for one `topologyKey`) plus what this cycle
/// added or removed itself (`overlay`: groups counted node by node, and
/// preemption's what-ifs). Referring to the snapshot's counts keeps
/// PreFilter from recounting thousands of nodes per decision.
#[derive(Clone, Debug, Default)]
struct TopologyCounts {
    base: Vec<(String, Arc<DomainCounts>)>,
    overlay: DomainCounts,
}

impl TopologyCounts {
    fn get(&self, key: &str, value: &str) -> i64 {
        let own = self
            .overlay
            .get(key)
            .and_then(|m| m.get(value))
            .copied()
            .unwrap_or(0);
        let shared: i64 = self
            .base
            .iter()
            .filter(|(k, _)| k == key)
            .filter_map(|(k, d)| d.get(k.as_str())?.get(value))
            .sum();
        own + shared
    }

    /// Whether no pair has a non-zero count. Preemption's what-ifs may
    /// cancel shared counts with negative ones, so then every total is
    /// checked (upstream drops pairs that reach zero).
    fn is_empty(&self) -> bool {
        let cancelling = self
            .overlay
            .values()
            .flat_map(|m| m.values())
            .any(|n| *n < 0);
        if !cancelling {
            return self.base.is_empty() && self.overlay.is_empty();
        }
        let shared = self
            .base
            .iter()
            .filter_map(|(k, d)| Some((k.as_str(), d.get(k.as_str())?)));
        let own = self.overlay.iter().map(|(k, m)| (k.as_str(), m));
        !shared
            .chain(own)
            .any(|(k, values)| values.keys().any(|v| self.get(k, v) != 0))
    }

    /// Counts the snapshot's domain counts of a group for `key`.
    fn add_shared(&mut self, key: &str, domains: &Arc<DomainCounts>) {
        if domains.get(key).is_some_and(|m| !m.is_empty()) {
            self.base.push((key.to_string(), domains.clone()));
        }
    }

    /// Whether any domain of a node with these labels has a positive count.
    fn any_at(&self, node_labels: &BTreeMap<String, String>) -> bool {
        let keys = self.overlay.keys().chain(self.base.iter().map(|(k, _)| k));
        keys.into_iter()
            .any(|key| node_labels.get(key).is_some_and(|v| self.get(key, v) > 0))
    }

    fn add(&mut self, key: &str, value: &str, delta: i64) {
        if !self.overlay.contains_key(key) {
            self.overlay.insert(key.to_string(), FastMap::default());
        }
        let Some(values) = self.overlay.get_mut(key) else {
            return;
        };
        match values.get_mut(value) {
            Some(n) => {
                *n += delta;
                if *n == 0 {
                    values.remove(value);
                }
            }
            None if delta != 0 => {
                values.insert(value.to_string(), delta);
            }
            None => {}
        }
        if values.is_empty() {
            self.overlay.remove(key);
        }
    }

    /// Adds `delta` to the pair the node has for `key`, if it has one.
    fn add_at(&mut self, node_labels: &BTreeMap<String, String>, key: &str, delta: i64) {
        if let Some(value) = node_labels.get(key) {
            self.add(key, value, delta);
        }
    }
}

/// Upstream's `AffinityTerm.Matches`: the pod's namespace is named by the
/// term or selected by its namespace selector (against `ns_labels`, the
/// labels of the pod's namespace), and its labels match the selector.
fn term_matches(term: &AffinityTerm, pod: &PodInfo, ns_labels: &BTreeMap<String, String>) -> bool {
    let in_namespace = term.namespaces.contains(&pod.namespace)
        || term
            .namespace_selector
            .as_ref()
            .is_some_and(|sel| sel.matches(ns_labels));
    in_namespace
        && term
            .selector
            .as_ref()
            .is_some_and(|sel| sel.matches(&pod.labels))
}

/// The labels of `namespace`, empty when the snapshot does not know it.
fn labels_of<'a>(
    all: &'a HashMap<String, BTreeMap<String, String>>,
    namespace: &str,
) -> &'a BTreeMap<String, String> {
    all.get(namespace).unwrap_or(&NO_LABELS)
}

/// The incoming pod's term with its namespace selector resolved into
/// namespace names now (upstream's `mergeAffinityTermNamespacesIfNotEmpty`),
/// so later matching needs no namespace labels; a `{}` selector stays, as
/// it selects every namespace.
fn resolve_namespaces(
    term: &AffinityTerm,
    all: &HashMap<String, BTreeMap<String, String>>,
) -> AffinityTerm {
    let mut resolved = term.clone();
    if let Some(sel) = term
        .namespace_selector
        .as_ref()
        .filter(|s| !s.selects_all())
    {
        resolved.namespaces.extend(
            all.iter()
                .filter(|(_, l)| sel.matches(l))
                .map(|(n, _)| n.clone()),
        );
        resolved.namespace_selector = None;
    }
    resolved
}

/// Whether `pod` matches every term (false for no terms), for terms whose
/// namespaces are resolved.
fn matches_all(terms: &[AffinityTerm], pod: &PodInfo) -> bool {
    !terms.is_empty() && terms.iter().all(|t| term_matches(t, pod, &NO_LABELS))
}

/// For each anti-affinity term matching `pod`, adds `delta` to the pair of
/// the node the term's owner (or target) runs on.
fn count_anti_affinity(
    counts: &mut TopologyCounts,
    terms: &[AffinityTerm],
    pod: &PodInfo,
    ns_labels: &BTreeMap<String, String>,
    node_labels: &BTreeMap<String, String>,
    delta: i64,
) {
    for t in terms {
        if term_matches(t, pod, ns_labels) {
            counts.add_at(node_labels, &t.topology_key, delta);
        }
    }
}

/// When `pod` matches all affinity terms, adds `delta` to each term's pair
/// of its node (upstream's `updateWithAffinityTerms`).
fn count_affinity(
    counts: &mut TopologyCounts,
    terms: &[AffinityTerm],
    pod: &PodInfo,
    node_labels: &BTreeMap<String, String>,
    delta: i64,
) {
    if matches_all(terms, pod) {
        for t in terms {
            counts.add_at(node_labels, &t.topology_key, delta);
        }
    }
}

/// The incoming pod's required terms, resolved once per cycle.
#[derive(Debug)]
struct IncomingTerms {
    affinity: Vec<AffinityTerm>,
    anti_affinity: Vec<AffinityTerm>,
    /// Labels of the incoming pod's namespace, for existing pods' terms.
    namespace_labels: BTreeMap<String, String>,
    /// Whether the pod matches all its own affinity terms (the first pod
    /// of a group with affinity to itself may go anywhere).
    matches_own_affinity: bool,
}

/// What PreFilter computes and Filter reads; add_pod/remove_pod keep it
/// true for preemption's what-ifs.
#[derive(Clone, Debug)]
struct PreFilterState {
    /// Pairs where existing pods' required anti-affinity matches the pod.
    existing_anti_affinity: TopologyCounts,
    /// Pairs with existing pods matching all the pod's affinity terms.
    affinity: TopologyCounts,
    /// Pairs with existing pods matching the pod's anti-affinity terms.
    anti_affinity: TopologyCounts,
    terms: Arc<IncomingTerms>,
}

impl PreFilterState {
    /// Upstream's `updateWithPod`: `other` joins (1) or leaves (-1) a node
    /// with these labels.
    fn update_with_pod(
        &mut self,
        pod: &PodInfo,
        other: &PodInfo,
        node_labels: &BTreeMap<String, String>,
        delta: i64,
    ) {
        count_anti_affinity(
            &mut self.existing_anti_affinity,
            &other.required_anti_affinity,
            pod,
            &self.terms.namespace_labels,
            node_labels,
            delta,
        );
        count_affinity(
            &mut self.affinity,
            &self.terms.affinity,
            other,
            node_labels,
            delta,
        );
        count_anti_affinity(
            &mut self.anti_affinity,
            &self.terms.anti_affinity,
            other,
            &NO_LABELS,
            node_labels,
            delta,
        );
    }

    /// Whether the node is in a domain with a pod matching every affinity
    /// term (or the pod is the first of its group).
    fn satisfies_affinity(&self, node: &NodeInfo) -> bool {
        let mut pods_exist = true;
        for t in &self.terms.affinity {
            let Some(value) = node.labels.get(&t.topology_key) else {
                // Every topology label must exist on the node.
                return false;
            };
            if self.affinity.get(&t.topology_key, value) <= 0 {
                pods_exist = false;
            }
        }
        // No pod in the cluster matches the terms yet and the pod matches
        // them itself: let it start the group anywhere.
        pods_exist || (self.affinity.is_empty() && self.terms.matches_own_affinity)
    }

    /// Whether no domain of the node holds a pod the anti-affinity selects.
    fn satisfies_anti_affinity(&self, node: &NodeInfo) -> bool {
        self.anti_affinity.is_empty()
            || !self.terms.anti_affinity.iter().any(|t| {
                node.labels
                    .get(&t.topology_key)
                    .is_some_and(|v| self.anti_affinity.get(&t.topology_key, v) > 0)
            })
    }

    /// Whether no existing pod's anti-affinity covers a domain of the node.
    fn satisfies_existing_anti_affinity(&self, node: &NodeInfo) -> bool {
        !self.existing_anti_affinity.any_at(&node.labels)
    }
}

/// Preferred-term weights summed per topology key and value.
#[derive(Clone, Debug, Default)]
struct PreScoreState {
    topology_score: HashMap<String, HashMap<String, i64>>,
}

impl PreScoreState {
    /// Adds each contribution (`topologyKey`, weight) of `count` pods to
    /// the pair of a node with these labels.
    fn add(
        &mut self,
        contributions: &[(&str, i64)],
        node_labels: &BTreeMap<String, String>,
        count: i64,
    ) {
        for (key, weight) in contributions {
            if let Some(value) = node_labels.get(*key) {
                let per_key = match self.topology_score.get_mut(*key) {
                    Some(m) => m,
                    None => self.topology_score.entry(key.to_string()).or_default(),
                };
                *per_key.entry(value.clone()).or_insert(0) += weight * count;
            }
        }
    }
}

/// Upstream's `processTerm`, split: when `pod` matches `term`, the
/// (`topologyKey`, weight × multiplier) it adds to the domain of each pod
/// of the group.
fn term_contribution<'a>(
    out: &mut Vec<(&'a str, i64)>,
    term: &'a AffinityTerm,
    weight: i32,
    pod: &PodInfo,
    ns_labels: &BTreeMap<String, String>,
    multiplier: i32,
) {
    if term_matches(term, pod, ns_labels) {
        out.push((
            &term.topology_key,
            i64::from(weight.saturating_mul(multiplier)),
        ));
    }
}

fn terms_contribution<'a>(
    out: &mut Vec<(&'a str, i64)>,
    terms: &'a [WeightedAffinityTerm],
    pod: &PodInfo,
    ns_labels: &BTreeMap<String, String>,
    multiplier: i32,
) {
    for t in terms {
        term_contribution(out, &t.term, t.weight, pod, ns_labels, multiplier);
    }
}

/// The incoming pod's preferred terms with namespaces resolved.
struct IncomingPreferred {
    affinity: Vec<WeightedAffinityTerm>,
    anti_affinity: Vec<WeightedAffinityTerm>,
    namespace_labels: BTreeMap<String, String>,
}

fn resolve_weighted(
    terms: &[WeightedAffinityTerm],
    all: &HashMap<String, BTreeMap<String, String>>,
) -> Vec<WeightedAffinityTerm> {
    terms
        .iter()
        .map(|w| WeightedAffinityTerm {
            term: resolve_namespaces(&w.term, all),
            weight: w.weight,
        })
        .collect()
}

impl InterPodAffinity {
    /// Upstream's `processExistingPod`, once for a group of identical
    /// existing pods: what each of them adds to the incoming pod's score
    /// of its node's domains.
    fn existing_pod_contributions<'a>(
        &self,
        incoming: &'a IncomingPreferred,
        pod: &PodInfo,
        existing: &'a PodInfo,
    ) -> Vec<(&'a str, i64)> {
        let mut out = Vec::new();
        terms_contribution(&mut out, &incoming.affinity, existing, &NO_LABELS, 1);
        terms_contribution(&mut out, &incoming.anti_affinity, existing, &NO_LABELS, -1);
        if self.hard_pod_affinity_weight > 0 {
            for t in &existing.required_affinity {
                term_contribution(
                    &mut out,
                    t,
                    self.hard_pod_affinity_weight,
                    pod,
                    &incoming.namespace_labels,
                    1,
                );
            }
        }
        terms_contribution(
            &mut out,
            &existing.preferred_affinity,
            pod,
            &incoming.namespace_labels,
            1,
        );
        terms_contribution(
            &mut out,
            &existing.preferred_anti_affinity,
            pod,
            &incoming.namespace_labels,
            -1,
        );
        out
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        let all_ns = &snapshot.namespace_labels;
        let affinity: Vec<AffinityTerm> = pod
            .required_affinity
            .iter()
            .map(|t| resolve_namespaces(t, all_ns))
            .collect();
        let anti_affinity: Vec<AffinityTerm> = pod
            .required_anti_affinity
            .iter()
            .map(|t| resolve_namespaces(t, all_ns))
            .collect();
        let terms = IncomingTerms {
            matches_own_affinity: matches_all(&affinity, pod),
            affinity,
            anti_affinity,
            namespace_labels: labels_of(all_ns, &pod.namespace).clone(),
        };

        // Existing pods' required anti-affinity, evaluated once per group
        // of identical pods (same namespace, labels and terms).
        let mut existing_anti_affinity = TopologyCounts::default();
        for group in snapshot
            .pod_groups
            .values()
            .filter(|g| !g.sample.required_anti_affinity.is_empty())
        {
            let matching: Vec<&AffinityTerm> = group
                .sample
                .required_anti_affinity
                .iter()
                .filter(|t| term_matches(t, pod, &terms.namespace_labels))
                .collect();
            // The group keeps its own counts per domain of its terms' keys.
            for t in matching {
                existing_anti_affinity.add_shared(&t.topology_key, &group.domains);
            }
        }

        // The incoming pod's required terms against every group of
        // existing pods.
        let mut affinity_counts = TopologyCounts::default();
        let mut anti_affinity_counts = TopologyCounts::default();
        if !terms.affinity.is_empty() || !terms.anti_affinity.is_empty() {
            for group in snapshot.pod_groups.values() {
                let all_affinity = matches_all(&terms.affinity, &group.sample);
                let anti: Vec<&AffinityTerm> = terms
                    .anti_affinity
                    .iter()
                    .filter(|t| term_matches(t, &group.sample, &NO_LABELS))
                    .collect();
                if !all_affinity && anti.is_empty() {
                    continue;
                }
                // Keys the group counts itself are shared; any other key is
                // counted node by node.
                let counted = |key: &str| group.domains.contains_key(key);
                let affinity_terms = terms.affinity.iter().filter(|_| all_affinity);
                for t in affinity_terms.clone().filter(|t| counted(&t.topology_key)) {
                    affinity_counts.add_shared(&t.topology_key, &group.domains);
                }
                for t in anti.iter().filter(|t| counted(&t.topology_key)) {
                    anti_affinity_counts.add_shared(&t.topology_key, &group.domains);
                }
                let affinity_rest: Vec<&AffinityTerm> = affinity_terms
                    .filter(|t| !counted(&t.topology_key))
                    .collect();
                let anti_rest: Vec<&&AffinityTerm> =
                    anti.iter().filter(|t| !counted(&t.topology_key)).collect();
                if affinity_rest.is_empty() && anti_rest.is_empty() {
                    continue;
                }
                for (node_name, count) in &group.nodes {
                    let Some(node) = snapshot.node(node_name) else {
                        continue;
                    };
                    for t in &affinity_rest {
                        affinity_counts.add_at(&node.labels, &t.topology_key, *count);
                    }
                    for t in &anti_rest {
                        anti_affinity_counts.add_at(&node.labels, &t.topology_key, *count);
                    }
                }
            }
        }

        if existing_anti_affinity.is_empty()
            && terms.affinity.is_empty()
            && terms.anti_affinity.is_empty()
        {
            return Status::Skip;
        }
        state.write(
            PRE_FILTER_KEY,
            PreFilterState {
                existing_anti_affinity,
                affinity: affinity_counts,
                anti_affinity: anti_affinity_counts,
                terms: Arc::new(terms),
            },
        );
        Status::Success
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_KEY) else {
            return Status::Error(format!(
                "reading {PRE_FILTER_KEY:?} from cycleState: not found"
            ));
        };
        if !s.satisfies_affinity(node) {
            return Status::unresolvable(ERR_REASON_AFFINITY_RULES_NOT_MATCH);
        }
        if !s.satisfies_anti_affinity(node) {
            return Status::unschedulable(ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        if !s.satisfies_existing_anti_affinity(node) {
            return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        Status::Success
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update_with_pod(pod, other, &node.labels, 1);
        }
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update_with_pod(pod, other, &node.labels, -1);
        }
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status {
        if nodes.is_empty() {
            return Status::Skip;
        }
        let has_constraints =
            !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if self.ignore_preferred_terms_of_existing_pods && !has_constraints {
            return Status::Skip;
        }
        let all_ns = &snapshot.namespace_labels;
        let incoming = IncomingPreferred {
            affinity: resolve_weighted(&pod.preferred_affinity, all_ns),
            anti_affinity: resolve_weighted(&pod.preferred_anti_affinity, all_ns),
            namespace_labels: labels_of(all_ns, &pod.namespace).clone(),
        };
        let mut scores = PreScoreState::default();
        // Identical pods (same namespace, labels and terms) contribute
        // identically: evaluate the terms once per group.
        for group in snapshot.pod_groups.values() {
            // Without preferred terms of its own, only pods with affinity
            // can add to the incoming pod's score.
            if !has_constraints && !group.sample.has_affinity() {
                continue;
            }
            let contributions = self.existing_pod_contributions(&incoming, pod, &group.sample);
            if contributions.is_empty() {
                continue;
            }
            for (node_name, count) in &group.nodes {
                if let Some(node) = snapshot.node(node_name) {
                    scores.add(&contributions, &node.labels, *count);
                }
            }
        }
        if scores.topology_score.is_empty() {
            return Status::Skip;
        }
        state.write(PRE_SCORE_KEY, scores);
        Status::Success
    }

    /// The summed weights of the node's domains: positive for affinity,
    /// negative for anti-affinity; normalised later.
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return 0;
        };
        s.topology_score
            .iter()
            .filter_map(|(key, values)| node.labels.get(key).and_then(|v| values.get(v)))
            .sum()
    }

    /// Min-max scaling onto 0..=100, as upstream.
    fn normalize_scores(&self, state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return;
        };
        if s.topology_score.is_empty() {
            return;
        }
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        let diff = max.saturating_sub(min);
        for score in scores.iter_mut() {
            *score = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((*score - min) as f64 / diff as f64)) as i64
            } else {
                0
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

    #[test]
    fn shared_counts_cancelled_by_what_ifs_count_as_empty() {
        let mut domains = DomainCounts::default();
        domains
            .entry("zone".to_string())
            .or_default()
            .insert("a".to_string(), 2);
        let mut counts = TopologyCounts::default();
        counts.add_shared("zone", &Arc::new(domains));
        assert!(!counts.is_empty());
        counts.add("zone", "a", -1);
        assert!(!counts.is_empty(), "one pod left");
        assert_eq!(counts.get("zone", "a"), 1);
        counts.add("zone", "a", -1);
        assert!(counts.is_empty(), "every matching pod removed");
    }

    fn node(name: &str, zone: Option<&str>) -> NodeInfo {
        let mut labels = json!({"kubernetes.io/hostname": name});
        if let Some(z) = zone {
            labels["topology.kubernetes.io/zone"] = json!(z);
        }
        let n: Node = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
            .unwrap_or_default();
        NodeInfo::new(Arc::new(n))
    }

    fn pod(name: &str, labels: Value, affinity: Value) -> PodInfo {
        pod_in("default", name, labels, affinity)
    }

    fn pod_in(ns: &str, name: &str, labels: Value, affinity: Value) -> PodInfo {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "labels": labels},
            "spec": {"containers": [{"name": "c"}], "affinity": affinity}
        }))
        .unwrap_or_default();
        PodInfo::new(Arc::new(p))
    }

    fn term(app: &str, key: &str) -> Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    const HOST: &str = "kubernetes.io/hostname";
    const ZONE: &str = "topology.kubernetes.io/zone";

    fn anti_affine(name: &str, app: &str) -> PodInfo {
        pod(
            name,
            json!({"app": app}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(app, HOST)]}}),
        )
    }

    use testing::snapshot;

    fn plugin() -> InterPodAffinity {
        InterPodAffinity::new(&json!({})).unwrap_or_else(|e| panic!("{e}"))
    }

    fn run_filter(snap: &Snapshot, p: &PodInfo) -> Vec<Status> {
        testing::filters(&plugin(), p, snap)
    }

    #[test]
    fn anti_affinity_by_hostname_sends_the_second_pod_elsewhere() {
        let mut n1 = node("n1", None);
        n1.add_pod(Arc::new(anti_affine("web-1", "web")));
        let snap = snapshot(vec![n1, node("n2", None)]);
        let statuses = run_filter(&snap, &anti_affine("web-2", "web"));
        assert_eq!(
            statuses[0],
            Status::unschedulable(ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH)
        );
        assert_eq!(statuses[1], Status::Success);
    }

    #[test]
    fn existing_pods_anti_affinity_rejects_the_pods_it_selects() {
        let mut n1 = node("n1", None);
        n1.add_pod(Arc::new(anti_affine("loner", "db")));
        let snap = snapshot(vec![n1, node("n2", None)]);
        let statuses = run_filter(&snap, &pod("db-1", json!({"app": "db"}), json!(null)));
        assert_eq!(
            statuses[0],
            Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH)
        );
        assert_eq!(statuses[1], Status::Success);

        // A pod the anti-affinity does not select, with no terms of its
        // own, has nothing to check.
        let mut state = CycleState::default();
        let other = pod("web", json!({"app": "web"}), json!(null));
        assert_eq!(plugin().pre_filter(&mut state, &other, &snap), Status::Skip);
    }

    #[test]
    fn required_affinity_follows_matching_pods_and_lets_the_first_one_start() {
        let affinity = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("cache", ZONE)]}});
        // No cache pod anywhere and the pod is a cache pod itself: any
        // node with a zone will do, a node without one will not.
        let snap = snapshot(vec![
            node("a1", Some("a")),
            node("b1", Some("b")),
            node("bare", None),
        ]);
        let first = pod("cache-1", json!({"app": "cache"}), affinity.clone());
        let statuses = run_filter(&snap, &first);
        assert_eq!(statuses[0], Status::Success);
        assert_eq!(statuses[1], Status::Success);
        assert_eq!(
            statuses[2],
            Status::unresolvable(ERR_REASON_AFFINITY_RULES_NOT_MATCH)
        );

        // A pod that does not match its own terms cannot start a group.
        let follower = pod("app-1", json!({"app": "app"}), affinity.clone());
        let statuses = run_filter(&snap, &follower);
        assert!(
            statuses
                .iter()
                .all(|s| *s == Status::unresolvable(ERR_REASON_AFFINITY_RULES_NOT_MATCH))
        );

        // Once a cache pod runs in zone a, only zone a fits.
        let mut a1 = node("a1", Some("a"));
        a1.add_pod(Arc::new(pod(
            "cache-0",
            json!({"app": "cache"}),
            json!(null),
        )));
        let mut a2 = node("a2", Some("a"));
        a2.add_pod(Arc::new(pod("other", json!({"app": "other"}), json!(null))));
        let snap = snapshot(vec![a1, a2, node("b1", Some("b"))]);
        let statuses = run_filter(&snap, &follower);
        assert_eq!(statuses[0], Status::Success);
        assert_eq!(statuses[1], Status::Success);
        assert_eq!(
            statuses[2],
            Status::unresolvable(ERR_REASON_AFFINITY_RULES_NOT_MATCH)
        );
    }

    #[test]
    fn add_pod_and_remove_pod_change_the_filter_result() {
        let pl = plugin();
        let victim = Arc::new(anti_affine("web-1", "web"));
        let mut n1 = node("n1", None);
        n1.add_pod(victim.clone());
        let n2 = node("n2", None);
        let snap = snapshot(vec![n1, n2]);
        let incoming = anti_affine("web-2", "web");
        let mut state = CycleState::default();
        assert_eq!(pl.pre_filter(&mut state, &incoming, &snap), Status::Success);
        let (n1, n2) = (&snap.nodes[0], &snap.nodes[1]);
        assert!(!pl.filter(&state, &incoming, n1).is_success());

        // Preempting the web pod on n1 frees n1 (on a copy of the state).
        let mut what_if = state.clone();
        pl.remove_pod(&mut what_if, &incoming, &victim, n1);
        assert_eq!(pl.filter(&what_if, &incoming, n1), Status::Success);
        assert!(
            !pl.filter(&state, &incoming, n1).is_success(),
            "the original state is untouched"
        );

        // A nominated web pod on n2 blocks n2, by both pods' anti-affinity.
        pl.add_pod(&mut what_if, &incoming, &anti_affine("web-3", "web"), n2);
        assert_eq!(
            pl.filter(&what_if, &incoming, n2),
            Status::unschedulable(ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH)
        );

        // A pod without terms of its own is blocked by the added pod's
        // anti-affinity alone.
        let plain = pod("web-4", json!({"app": "web"}), json!(null));
        let mut state = CycleState::default();
        assert_eq!(pl.pre_filter(&mut state, &plain, &snap), Status::Success);
        pl.add_pod(&mut state, &plain, &anti_affine("web-5", "web"), n2);
        assert_eq!(
            pl.filter(&state, &plain, n2),
            Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH)
        );
    }

    #[test]
    fn namespaces_and_namespace_selectors_scope_the_terms() {
        let mut n1 = node("n1", None);
        n1.add_pod(Arc::new(pod_in(
            "team-a",
            "db",
            json!({"app": "db"}),
            json!(null),
        )));
        let mut snap = snapshot(vec![n1, node("n2", None)]);
        snap.namespace_labels.insert(
            "team-a".into(),
            [("team".to_string(), "a".to_string())].into(),
        );
        snap.namespace_labels
            .insert("default".into(), BTreeMap::new());

        // Same namespace only by default: the db pod in team-a is not seen.
        let own_ns = pod(
            "x",
            json!({}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", HOST)]}}),
        );
        assert!(run_filter(&snap, &own_ns).iter().all(Status::is_success));

        let mut by_selector = term("db", HOST);
        by_selector["namespaceSelector"] = json!({"matchLabels": {"team": "a"}});
        let selecting = pod(
            "y",
            json!({}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [by_selector]}}),
        );
        let statuses = run_filter(&snap, &selecting);
        assert!(!statuses[0].is_success());
        assert!(statuses[1].is_success());

        let mut all = term("db", HOST);
        all["namespaceSelector"] = json!({});
        let everywhere = pod(
            "z",
            json!({}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [all]}}),
        );
        assert!(!run_filter(&snap, &everywhere)[0].is_success());
    }

    fn scores(pl: &InterPodAffinity, snap: &Snapshot, p: &PodInfo) -> Option<Vec<i64>> {
        let nodes: Vec<&NodeInfo> = snap.nodes.iter().collect();
        testing::scores(pl, p, &nodes, snap, true)
    }

    #[test]
    fn preferred_terms_score_min_max_normalised() {
        let mut a1 = node("a1", Some("a"));
        a1.add_pod(Arc::new(pod("cache", json!({"app": "cache"}), json!(null))));
        let mut b1 = node("b1", Some("b"));
        b1.add_pod(Arc::new(pod("noisy", json!({"app": "noisy"}), json!(null))));
        let snap = snapshot(vec![a1, node("a2", Some("a")), b1, node("c1", Some("c"))]);
        let p = pod(
            "p",
            json!({}),
            json!({
                "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 10, "podAffinityTerm": term("cache", ZONE)}]},
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 5, "podAffinityTerm": term("noisy", ZONE)}]}
            }),
        );
        // Zone a: +10, zone b: -5, zone c: 0 → (x+5)/15 * 100.
        assert_eq!(scores(&plugin(), &snap, &p), Some(vec![100, 100, 0, 33]));

        // A pod without preferred terms and no pods with affinity: skipped.
        assert_eq!(
            scores(&plugin(), &snap, &pod("q", json!({}), json!(null))),
            None
        );
    }

    #[test]
    fn existing_pods_terms_score_with_the_hard_weight() {
        let mut a1 = node("a1", Some("a"));
        a1.add_pod(Arc::new(pod(
            "friendly",
            json!({}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", ZONE)]}}),
        )));
        let mut b1 = node("b1", Some("b"));
        b1.add_pod(Arc::new(pod(
            "grumpy",
            json!({}),
            json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 3, "podAffinityTerm": term("web", ZONE)}]}}),
        )));
        let snap = snapshot(vec![a1, b1, node("c1", Some("c"))]);
        let web = pod("web", json!({"app": "web"}), json!(null));
        // a: +weight, b: -3, c: 0.
        let weighted = InterPodAffinity::new(&json!({"hardPodAffinityWeight": 3}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scores(&weighted, &snap, &web), Some(vec![100, 0, 50]));
        let unweighted = InterPodAffinity::new(&json!({"hardPodAffinityWeight": 0}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scores(&unweighted, &snap, &web), Some(vec![100, 0, 100]));
        let ignoring = InterPodAffinity::new(&json!({"ignorePreferredTermsOfExistingPods": true}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scores(&ignoring, &snap, &web), None);
    }

    #[test]
    fn args_are_validated() {
        assert!(InterPodAffinity::new(&json!({"hardPodAffinityWeight": 101})).is_err());
        assert!(InterPodAffinity::new(&json!({"hardPodAffinityWeigth": 1})).is_err());
        assert!(
            InterPodAffinity::new(
                &json!({"kind": "InterPodAffinityArgs", "hardPodAffinityWeight": 100})
            )
            .is_ok()
        );
        assert!(InterPodAffinity::new(&Value::Null).is_ok());
    }
}
