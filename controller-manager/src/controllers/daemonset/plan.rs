//! One step of a DaemonSet, decided from cached state with no I/O:
//! upstream's `manage` (a pod on every node that should run one, none
//! elsewhere, one per node) and `rollingUpdate` (replace old-revision pods
//! within `maxUnavailable`, or surge new ones within `maxSurge`).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::placement::Fit;
use crate::controllers::replicaset::pods::is_available;
use crate::history::CONTROLLER_REVISION_HASH;

/// A DaemonSet's pods by the node they are for.
pub type NodePods = BTreeMap<String, Vec<Arc<Pod>>>;

/// What one step does.
#[derive(Debug, Default)]
pub struct Step {
    /// Nodes to create a pod on.
    pub create_on: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<Arc<Pod>>,
    /// Failed pods being replaced, for a warning each (pod, node).
    pub failed: Vec<(String, String)>,
    /// Nodes whose failed pod waits out its back-off.
    pub backing_off: Vec<String>,
}

impl Step {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty()
    }
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH)
        .map(String::as_str)
}

/// Whether `pod` runs the current revision.
pub fn is_updated(pod: &Pod, hash: &str) -> bool {
    hash_of(pod) == Some(hash)
}

/// Upstream's `podByCreationTimestampAndPhase`: bound pods first, then
/// oldest, then by name.
pub fn sort_oldest_first(pods: &mut [Arc<Pod>]) {
    pods.sort_by(|a, b| {
        let bound = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
        };
        bound(b)
            .cmp(&bound(a))
            .then_with(|| {
                let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                created(a).cmp(&created(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// Upstream's `manage`: `nodes` with their fit, `pods` the DaemonSet's
/// pods by target node, `surge` whether `maxSurge` allows two pods on a
/// node, `in_backoff(node)` whether a failed pod there was replaced too
/// recently.
pub fn manage(
    nodes: &[(String, Fit)],
    pods: &NodePods,
    hash: &str,
    surge: bool,
    mut in_backoff: impl FnMut(&str) -> bool,
) -> Step {
    let mut step = Step::default();
    for (node, fit) in nodes {
        let on_node = pods.get(node).map(Vec::as_slice).unwrap_or_default();
        let exists = !on_node.is_empty();
        if fit.should_run && !exists {
            step.create_on.push(node.clone());
        } else if fit.should_continue_running {
            let mut running = Vec::new();
            for pod in on_node {
                if pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match phase(pod) {
                    Some("Failed") | Some("Succeeded") => {
                        if in_backoff(node) {
                            step.backing_off.push(node.clone());
                            continue;
                        }
                        step.failed
                            .push((pod.metadata.name.clone().unwrap_or_default(), node.clone()));
                        step.delete.push(pod.clone());
                    }
                    _ => running.push(pod.clone()),
                }
            }
            if running.len() <= 1 {
                continue;
            }
            sort_oldest_first(&mut running);
            if !surge {
                step.delete.extend(running.into_iter().skip(1));
                continue;
            }
            // With surge, the oldest new pod and the oldest old pod stay.
            let (mut kept_new, mut kept_old) = (false, false);
            for pod in running {
                let kept = if is_updated(&pod, hash) {
                    &mut kept_new
                } else {
                    &mut kept_old
                };
                if *kept {
                    step.delete.push(pod);
                } else {
                    *kept = true;
                }
            }
        } else {
            step.delete.extend(
                on_node
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .cloned(),
            );
        }
    }
    // Pods for nodes that are gone (upstream's getUnscheduledPodsWithoutNode).
    for (node, on_node) in pods {
        if nodes.iter().all(|(n, _)| n != node) {
            step.delete.extend(
                on_node
                    .iter()
                    .filter(|p| {
                        p.metadata.deletion_timestamp.is_none()
                            && p.spec
                                .as_ref()
                                .and_then(|s| s.node_name.as_deref())
                                .is_none_or(str::is_empty)
                    })
                    .cloned(),
            );
        }
    }
    step
}

/// A node's pod of the current revision and its pod of an older one.
type NewAndOld<'a> = (Option<&'a Arc<Pod>>, Option<&'a Arc<Pod>>);

/// The new and old pod on one node, ignoring those being deleted;
/// `None` when there are two of either (manage sorts that out first).
fn updated_and_old<'a>(pods: &'a [Arc<Pod>], hash: &str) -> Option<NewAndOld<'a>> {
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_updated(pod, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some((new, old))
}

/// The rolling-update budget, resolved against the desired pod count.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Old pods that may be unavailable at once.
    pub max_unavailable: i32,
    /// New pods that may run beside old ones at once.
    pub max_surge: i32,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i32,
}

/// Upstream's `rollingUpdate`: which old pods to delete and on which nodes
/// to surge a new pod, within `budget`. `should_run(node)` is the node's
/// current fit.
pub fn rolling_update(
    pods: &NodePods,
    hash: &str,
    budget: Budget,
    now: jiff::Timestamp,
    should_run: impl Fn(&str) -> bool,
) -> Step {
    let available = |p: &Pod| is_available(p, budget.min_ready_seconds, now);
    let mut step = Step::default();
    if budget.max_surge == 0 {
        let mut unavailable = 0;
        let mut replace_now = Vec::new();
        let mut candidates = Vec::new();
        for on_node in pods.values() {
            match updated_and_old(on_node, hash) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(old) {
                        replace_now.push(old.clone());
                    } else if unavailable < budget.max_unavailable {
                        candidates.push(old.clone());
                    }
                }
            }
        }
        let room = (budget.max_unavailable - unavailable).max(0) as usize;
        step.delete = replace_now;
        step.delete.extend(candidates.into_iter().take(room));
        return step;
    }
    let mut surging = 0;
    let mut replace_now = Vec::new();
    let mut candidates = Vec::new();
    for (node, on_node) in pods {
        match updated_and_old(on_node, hash) {
            None => surging += 1,
            Some((_, None)) => {}
            Some((None, Some(old))) => {
                if !available(old) {
                    if should_run(node) {
                        replace_now.push(node.clone());
                    } else {
                        step.delete.push(old.clone());
                    }
                } else if surging < budget.max_surge {
                    candidates.push(node.clone());
                }
            }
            Some((Some(new), Some(old))) => {
                if available(new) {
                    step.delete.push(old.clone());
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = (budget.max_surge - surging).max(0) as usize;
    step.create_on = replace_now;
    step.create_on.extend(candidates.into_iter().take(room));
    step
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RUN: Fit = Fit {
        should_run: true,
        should_continue_running: true,
    };

    fn pod(name: &str, hash: &str, ready: bool, phase: &str, created: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {
                    "name": name,
                    "labels": {CONTROLLER_REVISION_HASH: hash},
                    "creationTimestamp": created,
                },
                "spec": {"nodeName": "x", "containers": []},
                "status": {
                    "phase": phase,
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                },
            }))
            .expect("pod"),
        )
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    fn nodes(names: &[&str]) -> Vec<(String, Fit)> {
        names.iter().map(|n| (n.to_string(), RUN)).collect()
    }

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:01:00Z";

    #[test]
    fn manage_fills_empty_nodes_and_keeps_one_pod_per_node() {
        let mut pods = NodePods::new();
        pods.insert(
            "a".into(),
            vec![
                pod("young", "h1", true, "Running", T1),
                pod("old", "h1", true, "Running", T0),
            ],
        );
        pods.insert("gone".into(), vec![]);
        let mut fits = nodes(&["a", "b"]);
        fits.push((
            "c".into(),
            Fit {
                should_run: false,
                should_continue_running: false,
            },
        ));
        pods.insert(
            "c".into(),
            vec![pod("misplaced", "h1", true, "Running", T0)],
        );
        let step = manage(&fits, &pods, "h1", false, |_| false);
        assert_eq!(step.create_on, vec!["b".to_string()]);
        assert_eq!(names(&step.delete), vec!["young", "misplaced"]);
    }

    #[test]
    fn a_failed_pod_is_replaced_unless_backing_off() {
        let mut pods = NodePods::new();
        pods.insert("a".into(), vec![pod("dead", "h1", false, "Failed", T0)]);
        let step = manage(&nodes(&["a"]), &pods, "h1", false, |_| false);
        assert_eq!(names(&step.delete), vec!["dead"]);
        assert_eq!(step.failed, vec![("dead".to_string(), "a".to_string())]);
        let step = manage(&nodes(&["a"]), &pods, "h1", false, |_| true);
        assert!(step.is_empty());
        assert_eq!(step.backing_off, vec!["a".to_string()]);
    }

    #[test]
    fn rolling_update_replaces_within_max_unavailable() {
        let mut pods = NodePods::new();
        for n in ["a", "b", "c"] {
            pods.insert(
                n.into(),
                vec![pod(&format!("old-{n}"), "h1", true, "Running", T0)],
            );
        }
        let budget = Budget {
            max_unavailable: 1,
            max_surge: 0,
            min_ready_seconds: 0,
        };
        let now = jiff::Timestamp::now();
        let step = rolling_update(&pods, "h2", budget, now, |_| true);
        assert_eq!(names(&step.delete), vec!["old-a"]);
        // a's replacement is not ready yet: nothing more goes.
        pods.insert("a".into(), vec![pod("new-a", "h2", false, "Running", T1)]);
        assert!(rolling_update(&pods, "h2", budget, now, |_| true).is_empty());
        // An old pod that is not available anyway is replaced at once.
        pods.insert("c".into(), vec![pod("old-c", "h1", false, "Running", T0)]);
        let step = rolling_update(&pods, "h2", budget, now, |_| true);
        assert_eq!(names(&step.delete), vec!["old-c"]);
    }

    #[test]
    fn rolling_update_surges_then_deletes_the_old_pod() {
        let mut pods = NodePods::new();
        for n in ["a", "b"] {
            pods.insert(
                n.into(),
                vec![pod(&format!("old-{n}"), "h1", true, "Running", T0)],
            );
        }
        let budget = Budget {
            max_unavailable: 0,
            max_surge: 1,
            min_ready_seconds: 0,
        };
        let now = jiff::Timestamp::now();
        let step = rolling_update(&pods, "h2", budget, now, |_| true);
        assert_eq!(step.create_on, vec!["a".to_string()]);
        assert!(step.delete.is_empty());
        let old_a = pod("old-a", "h1", true, "Running", T0);
        pods.insert(
            "a".into(),
            vec![old_a.clone(), pod("new-a", "h2", false, "Running", T1)],
        );
        assert!(rolling_update(&pods, "h2", budget, now, |_| true).is_empty());
        pods.insert(
            "a".into(),
            vec![old_a, pod("new-a", "h2", true, "Running", T1)],
        );
        let step = rolling_update(&pods, "h2", budget, now, |_| true);
        assert_eq!(names(&step.delete), vec!["old-a"]);
        assert_eq!(step.create_on, vec!["b".to_string()]);
    }
}
