//! A scheduling profile: the plugins one scheduler name runs at each
//! extension point, resolved from upstream's defaults and the config file,
//! and the code that runs them in order.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::config::{PluginSet, ProfileConfig};
use crate::framework::{CycleState, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, Snapshot, Status};
use crate::plugins::{self, REGISTRY};

/// The name of upstream's preemption plugin, the only PostFilter.
pub const DEFAULT_PREEMPTION: &str = "DefaultPreemption";

/// Candidate limits for preemption (DefaultPreemptionArgs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreemptionArgs {
    pub min_candidate_nodes_percentage: usize,
    pub min_candidate_nodes_absolute: usize,
}

/// One profile, ready to run.
pub struct Profile {
    pub scheduler_name: String,
    /// PreFilter + Filter plugins, in upstream's order.
    pub filters: Vec<Arc<dyn Plugin>>,
    /// PreScore + Score plugins with their weights.
    pub scorers: Vec<(Arc<dyn Plugin>, i64)>,
    /// Preemption arguments; `None` when DefaultPreemption is disabled.
    pub preemption: Option<PreemptionArgs>,
    /// This profile's share of nodes to score, if it sets one.
    pub percentage_of_nodes_to_score: Option<u32>,
}

// A profile's filters are distinct registry plugins, so they fit the set.
const _: () = assert!(REGISTRY.len() <= 128);

/// The filter plugins (by position in [`Profile::filters`]) whose
/// PreFilter said to skip them for this pod: a bit set, since it is read
/// for every plugin on every node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped(u128);

impl Skipped {
    /// Nothing skipped.
    pub fn new() -> Self {
        Skipped(0)
    }

    /// Marks the filter at `index` skipped.
    pub fn insert(&mut self, index: usize) {
        if index < 128 {
            self.0 |= 1 << index;
        }
    }

    /// Whether the filter at `index` is skipped.
    pub fn contains(&self, index: usize) -> bool {
        index < 128 && self.0 & (1 << index) != 0
    }
}

impl Profile {
    /// Upstream's default profile under `name`.
    pub fn default_named(name: &str) -> Result<Self, String> {
        Self::from_config(&ProfileConfig {
            scheduler_name: Some(name.to_string()),
            ..Default::default()
        })
    }

    /// Resolves a profile: upstream's defaults, then `multiPoint`, then the
    /// per-point `filter`/`preFilter`/`score`/`postFilter` sets.
    pub fn from_config(cfg: &ProfileConfig) -> Result<Self, String> {
        let name = cfg
            .scheduler_name
            .clone()
            .unwrap_or_else(|| crate::DEFAULT_SCHEDULER_NAME.to_string());
        let plugins = cfg.plugins.clone().unwrap_or_default();
        // name → weight (None: not enabled at that point).
        let mut filters: Vec<&'static str> = REGISTRY
            .iter()
            .filter(|s| s.filter)
            .map(|s| s.name)
            .collect();
        let mut scores: Vec<(&'static str, i64)> = REGISTRY
            .iter()
            .filter(|s| s.default_weight > 0)
            .map(|s| (s.name, s.default_weight))
            .collect();
        let mut preemption = true;
        let check = |n: &str| -> Result<&'static str, String> {
            if n == DEFAULT_PREEMPTION {
                return Ok(DEFAULT_PREEMPTION);
            }
            plugins::spec(n)
                .map(|s| s.name)
                .ok_or_else(|| format!("profile {name:?}: unknown plugin {n:?}"))
        };
        if let Some(set) = &plugins.multi_point {
            if disables_all(set) {
                filters.clear();
                scores.clear();
                preemption = false;
            }
            for d in set.disabled.iter().filter(|d| d.name != "*") {
                let d = check(&d.name)?;
                filters.retain(|n| *n != d);
                scores.retain(|(n, _)| *n != d);
                preemption &= d != DEFAULT_PREEMPTION;
            }
            for e in &set.enabled {
                let n = check(&e.name)?;
                if n == DEFAULT_PREEMPTION {
                    preemption = true;
                    continue;
                }
                let spec = plugins::spec(n).ok_or("unreachable")?;
                if spec.filter && !filters.contains(&n) {
                    filters.push(n);
                }
                if spec.score {
                    scores.retain(|(s, _)| *s != n);
                    scores.push((n, e.weight.unwrap_or(spec.default_weight.max(1))));
                }
            }
        }
        for set in [&plugins.pre_filter, &plugins.filter].into_iter().flatten() {
            if disables_all(set) {
                filters.clear();
            }
            for d in set.disabled.iter().filter(|d| d.name != "*") {
                let d = check(&d.name)?;
                filters.retain(|n| *n != d);
            }
            for e in &set.enabled {
                let n = check(&e.name)?;
                if !plugins::spec(n).is_some_and(|s| s.filter) {
                    return Err(format!("profile {name:?}: {n} has no filter"));
                }
                if !filters.contains(&n) {
                    filters.push(n);
                }
            }
        }
        for set in [&plugins.pre_score, &plugins.score].into_iter().flatten() {
            if disables_all(set) {
                scores.clear();
            }
            for d in set.disabled.iter().filter(|d| d.name != "*") {
                let d = check(&d.name)?;
                scores.retain(|(n, _)| *n != d);
            }
            for e in &set.enabled {
                let n = check(&e.name)?;
                let spec = plugins::spec(n).filter(|s| s.score);
                let Some(spec) = spec else {
                    return Err(format!("profile {name:?}: {n} has no score"));
                };
                if e.weight.is_some_and(|w| !(0..=100).contains(&w)) {
                    return Err(format!("profile {name:?}: weight of {n} must be 1-100"));
                }
                scores.retain(|(s, _)| *s != n);
                scores.push((
                    n,
                    e.weight
                        .filter(|w| *w > 0)
                        .unwrap_or(spec.default_weight.max(1)),
                ));
            }
        }
        if let Some(set) = &plugins.post_filter {
            if disables_all(set) || set.disabled.iter().any(|d| d.name == DEFAULT_PREEMPTION) {
                preemption = false;
            }
            if set.enabled.iter().any(|e| e.name == DEFAULT_PREEMPTION) {
                preemption = true;
            }
        }
        // Build each plugin once, so Filter and Score share an instance.
        let args_of = |n: &str| -> Value {
            cfg.plugin_config
                .iter()
                .find(|c| c.name == n)
                .map(|c| c.args.clone())
                .filter(|a| !a.is_null())
                .unwrap_or_else(|| json!({}))
        };
        for c in &cfg.plugin_config {
            check(&c.name)?;
        }
        let mut built: Vec<(&'static str, Arc<dyn Plugin>)> = Vec::new();
        let mut instance = |n: &'static str| -> Result<Arc<dyn Plugin>, String> {
            if let Some((_, p)) = built.iter().find(|(b, _)| *b == n) {
                return Ok(p.clone());
            }
            let spec = plugins::spec(n).ok_or("unreachable")?;
            let p = (spec.build)(&args_of(n)).map_err(|e| format!("plugin {n}: {e}"))?;
            built.push((n, p.clone()));
            Ok(p)
        };
        // Keep upstream's filter order whatever order the config named them.
        let order = |n: &str| {
            REGISTRY
                .iter()
                .position(|s| s.name == n)
                .unwrap_or(usize::MAX)
        };
        filters.sort_by_key(|n| order(n));
        let filters = filters
            .into_iter()
            .map(&mut instance)
            .collect::<Result<_, _>>()?;
        let scorers = scores
            .into_iter()
            .map(|(n, w)| instance(n).map(|p| (p, w)))
            .collect::<Result<_, _>>()?;
        let preemption = preemption
            .then(|| preemption_args(&args_of(DEFAULT_PREEMPTION)))
            .transpose()?;
        Ok(Profile {
            scheduler_name: name,
            filters,
            scorers,
            preemption,
            percentage_of_nodes_to_score: cfg.percentage_of_nodes_to_score,
        })
    }

    /// Runs every PreFilter. `Err` carries the first rejection (and the
    /// plugin that made it), which applies to every node.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<Skipped, (&'static str, Status)> {
        let mut skipped = Skipped::new();
        for (i, p) in self.filters.iter().enumerate() {
            match p.pre_filter(state, pod, snapshot) {
                Status::Success => {}
                Status::Skip => {
                    skipped.insert(i);
                }
                other => return Err((p.name(), other)),
            }
        }
        Ok(skipped)
    }

    /// Runs the filters on one node, stopping at the first rejection as
    /// upstream does.
    pub fn run_filters(
        &self,
        state: &CycleState,
        skipped: &Skipped,
        pod: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.run_filters_named(state, skipped, pod, node).1
    }

    /// [`Self::run_filters`], also naming the plugin that rejected the
    /// node (the queue retries the pod on events that plugin cares about).
    pub fn run_filters_named(
        &self,
        state: &CycleState,
        skipped: &Skipped,
        pod: &PodInfo,
        node: &NodeInfo,
    ) -> (Option<&'static str>, Status) {
        for (i, p) in self.filters.iter().enumerate() {
            if skipped.contains(i) {
                continue;
            }
            let status = p.filter(state, pod, node);
            if !status.is_success() {
                return (Some(p.name()), status);
            }
        }
        (None, Status::Success)
    }

    /// Tells every filter plugin that `other` joined `node` (nominated
    /// pods, preemption reprieves).
    pub fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        for p in &self.filters {
            p.add_pod(state, pod, other, node);
        }
    }

    /// Tells every filter plugin that `other` left `node` (preemption).
    pub fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        other: &PodInfo,
        node: &NodeInfo,
    ) {
        for p in &self.filters {
            p.remove_pod(state, pod, other, node);
        }
    }

    /// Total weighted score per node, in the order of `nodes`.
    pub fn run_scores(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Result<Vec<i64>, String> {
        let mut totals = vec![0i64; nodes.len()];
        let mut scores = vec![0i64; nodes.len()];
        for (p, weight) in &self.scorers {
            match p.pre_score(state, pod, nodes, snapshot) {
                Status::Success => {}
                Status::Skip => continue,
                Status::Error(e) => return Err(format!("{}: {e}", p.name())),
                other => return Err(format!("{}: unexpected {other:?} from PreScore", p.name())),
            }
            for (s, n) in scores.iter_mut().zip(nodes) {
                *s = p.score(state, pod, n);
            }
            p.normalize_scores(state, pod, &mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s.clamp(&0, &MAX_NODE_SCORE) * weight;
            }
        }
        Ok(totals)
    }
}

fn disables_all(set: &PluginSet) -> bool {
    set.disabled.iter().any(|d| d.name == "*")
}

fn preemption_args(args: &Value) -> Result<PreemptionArgs, String> {
    let get = |k: &str, default: usize| -> Result<usize, String> {
        match args.get(k) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| format!("DefaultPreemption: {k} must be a non-negative integer")),
        }
    };
    let pct = get("minCandidateNodesPercentage", 10)?;
    if pct > 100 {
        return Err("DefaultPreemption: minCandidateNodesPercentage must be 0-100".into());
    }
    Ok(PreemptionArgs {
        min_candidate_nodes_percentage: pct,
        min_candidate_nodes_absolute: get("minCandidateNodesAbsolute", 100)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SchedulerConfiguration;

    fn names(p: &Profile) -> (Vec<&'static str>, Vec<(&'static str, i64)>) {
        (
            p.filters.iter().map(|f| f.name()).collect(),
            p.scorers.iter().map(|(s, w)| (s.name(), *w)).collect(),
        )
    }

    #[test]
    fn the_default_profile_is_upstreams() {
        let p = Profile::default_named("default-scheduler").unwrap_or_else(|e| panic!("{e}"));
        let (filters, scores) = names(&p);
        assert_eq!(filters[0], "NodeUnschedulable");
        assert_eq!(filters.last(), Some(&"InterPodAffinity"));
        assert!(scores.contains(&("TaintToleration", 3)));
        assert!(scores.contains(&("NodeResourcesFit", 1)));
        assert!(p.preemption.is_some());
    }

    #[test]
    fn config_disables_and_reweights() {
        let cfg = SchedulerConfiguration::parse(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: packer
  plugins:
    filter: {disabled: [{name: NodePorts}]}
    score:
      disabled: [{name: "*"}]
      enabled: [{name: NodeResourcesFit, weight: 7}]
    postFilter: {disabled: [{name: DefaultPreemption}]}
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let p = Profile::from_config(&cfg.profiles[0]).unwrap_or_else(|e| panic!("{e}"));
        let (filters, scores) = names(&p);
        assert!(!filters.contains(&"NodePorts"));
        assert_eq!(scores, vec![("NodeResourcesFit", 7)]);
        assert!(p.preemption.is_none());
    }

    #[test]
    fn an_unknown_plugin_is_an_error() {
        let cfg = ProfileConfig {
            plugins: Some(crate::config::Plugins {
                score: Some(PluginSet {
                    enabled: vec![crate::config::PluginRef {
                        name: "Nope".into(),
                        weight: None,
                    }],
                    disabled: vec![],
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(Profile::from_config(&cfg).is_err_and(|e| e.contains("Nope")));
    }
}
