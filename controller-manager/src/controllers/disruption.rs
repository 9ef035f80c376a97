//! The disruption controller (upstream's `disruption`): keeps each
//! PodDisruptionBudget's status — `expectedPods`, `currentHealthy`,
//! `desiredHealthy`, `disruptionsAllowed` and the `DisruptionAllowed`
//! condition — which the apiserver's eviction subresource (and so
//! `kubectl drain`) trusts once `observedGeneration` is current.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{GroupVersionKind, Selector, SelectorExt};
use kube::discovery::ApiResource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::json;

use super::replicaset::pods::{controller_of, is_ready};
use crate::informer;
use crate::metrics::Metrics;
use crate::runner::{Outcome, Runner, split_key};

/// The controller's name, as upstream's `--controllers` spells it.
pub const NAME: &str = "disruption";

/// How often a budget is recomputed besides pod and budget changes (its
/// pods' controllers may be scaled meanwhile).
const RESYNC: Duration = Duration::from_secs(30);

/// Runs the controller until the process stops.
pub async fn run(client: kube::Client, metrics: Metrics) -> Result<()> {
    let runner = Runner::new(NAME, &metrics);
    let queue = runner.queue();
    let budgets = informer::spawn(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
        informer::enqueue_own_key(queue),
    );
    let queue = runner.queue();
    let budgets_for_pods = budgets.clone();
    let pods = informer::spawn(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            let Some(pod) = informer::object(event) else {
                return;
            };
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            for pdb in budgets_for_pods.state() {
                if pdb.metadata.namespace.as_deref() == Some(ns) {
                    queue.add(crate::runner::key(
                        Some(ns),
                        pdb.metadata.name.as_deref().unwrap_or_default(),
                    ));
                }
            }
        },
    );
    budgets.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    runner
        .run(2, move |key| {
            reconcile(client.clone(), budgets.clone(), pods.clone(), key)
        })
        .await;
    Err(anyhow!("the workers stopped"))
}

/// How long a pod an eviction let go stays out of the healthy count while
/// its deletion is not seen yet (upstream's `DeletionTimeout`).
const DELETION_TIMEOUT: jiff::SignedDuration = jiff::SignedDuration::from_secs(120);

/// The budget's `disruptedPods` still in force: pods the eviction
/// subresource let go whose deletion this controller has not seen yet,
/// for at most [`DELETION_TIMEOUT`]. Without this a recount from a cache
/// that still holds an evicted pod would hand its disruption out twice.
fn still_disrupted(
    recorded: &BTreeMap<String, Time>,
    pods: &[Arc<Pod>],
    now: jiff::Timestamp,
) -> BTreeMap<String, Time> {
    recorded
        .iter()
        .filter(|(name, at)| {
            let present = pods.iter().any(|p| {
                p.metadata.name.as_deref() == Some(name.as_str())
                    && p.metadata.deletion_timestamp.is_none()
            });
            present && at.0 + DELETION_TIMEOUT > now
        })
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect()
}

/// `value` of `total` for an int-or-percent, percentages rounded up.
fn scaled(value: &IntOrString, total: i32) -> Result<i32> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| anyhow!("invalid value {s:?}: a number or a percentage"))?;
            Ok(((pct * i64::from(total) + 99) / 100) as i32)
        }
    }
}

/// (expected pods, desired healthy) as upstream's `getExpectedPodCount`.
fn expectation(
    pdb: &PodDisruptionBudget,
    matched: i32,
    controllers_scale: Option<i32>,
) -> Result<(i32, i32)> {
    let spec = pdb.spec.clone().unwrap_or_default();
    match (&spec.max_unavailable, &spec.min_available) {
        (Some(max), _) => {
            let expected = controllers_scale
                .ok_or_else(|| anyhow!("found pods without a scalable controller"))?;
            Ok((expected, (expected - scaled(max, expected)?).max(0)))
        }
        (None, Some(IntOrString::Int(min))) => Ok((matched, *min)),
        (None, Some(min)) => {
            let expected = controllers_scale
                .ok_or_else(|| anyhow!("found pods without a scalable controller"))?;
            Ok((expected, scaled(min, expected)?))
        }
        (None, None) => Ok((matched, matched)),
    }
}

/// The replicas of the controllers of `pods` (a ReplicaSet owned by a
/// Deployment counts as the Deployment); `None` if a pod has none.
async fn controllers_scale(
    client: &kube::Client,
    ns: &str,
    pods: &[Arc<Pod>],
) -> Result<Option<i32>> {
    // Each controller is read once, however many pods it has.
    let mut owners = std::collections::BTreeSet::new();
    for pod in pods {
        let Some(owner) = controller_of(&pod.metadata) else {
            return Ok(None);
        };
        owners.insert((
            owner.api_version.clone(),
            owner.kind.clone(),
            owner.name.clone(),
        ));
    }
    let mut counted = std::collections::HashSet::new();
    let mut total = 0;
    for (api_version, kind, name) in owners {
        let Some((replicas, uid)) = replicas_of(client, ns, &api_version, &kind, &name).await?
        else {
            return Ok(None);
        };
        // ReplicaSets of one Deployment count it once.
        if counted.insert(uid) {
            total += replicas;
        }
    }
    Ok(Some(total))
}

/// `spec.replicas` of a controller (following a ReplicaSet up to its
/// Deployment) and the uid counted.
async fn replicas_of(
    client: &kube::Client,
    ns: &str,
    api_version: &str,
    kind: &str,
    name: &str,
) -> Result<Option<(i32, String)>> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let Some(obj) = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource)
        .get_opt(name)
        .await?
    else {
        return Ok(None);
    };
    if kind == "ReplicaSet"
        && let Some(deploy) = controller_of(&obj.metadata).filter(|o| o.kind == "Deployment")
    {
        return Box::pin(replicas_of(
            client,
            ns,
            &deploy.api_version,
            "Deployment",
            &deploy.name,
        ))
        .await;
    }
    let replicas = obj
        .data
        .pointer("/spec/replicas")
        .and_then(|v| v.as_i64())
        .unwrap_or(1) as i32;
    Ok(Some((replicas, obj.metadata.uid.unwrap_or_default())))
}

async fn reconcile(
    client: kube::Client,
    budgets: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    key: String,
) -> Outcome {
    let (ns, name) = split_key(&key);
    let Some(pdb) = budgets.get(&ObjectRef::new(name).within(ns)) else {
        return Ok(None);
    };
    let selector = pdb
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .map(Selector::try_from)
        .transpose()?
        .unwrap_or_default();
    let matched: Vec<Arc<Pod>> = pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| selector.matches(p.metadata.labels.as_ref().unwrap_or(&Default::default())))
        .collect();
    let active: Vec<Arc<Pod>> = matched
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    let previous = pdb.status.clone().unwrap_or_default();
    let disrupted = still_disrupted(
        &previous.disrupted_pods.clone().unwrap_or_default(),
        &active,
        jiff::Timestamp::now(),
    );
    let healthy = active
        .iter()
        .filter(|p| {
            is_ready(p) && !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default())
        })
        .count() as i32;
    let scale = controllers_scale(&client, ns, &active).await?;
    // Upstream fails safe: a budget it cannot compute allows nothing.
    let (expected, desired, allowed, reason) = match expectation(&pdb, active.len() as i32, scale) {
        Ok((expected, desired)) => {
            let allowed = (healthy - desired).max(0);
            let reason = if allowed > 0 {
                "SufficientPods"
            } else {
                "InsufficientPods"
            };
            (expected, desired, allowed, reason)
        }
        Err(e) => {
            tracing::debug!(budget = %key, error = %e, "cannot compute the budget; allowing no disruptions");
            (0, 0, 0, "SyncFailed")
        }
    };
    let old_disrupted = previous.disrupted_pods.clone().unwrap_or_default();
    let generation = pdb.metadata.generation.unwrap_or(0);
    let condition_status = if allowed > 0 { "True" } else { "False" };
    let unchanged = previous.observed_generation == Some(generation)
        && previous.expected_pods == expected
        && previous.current_healthy == healthy
        && previous.desired_healthy == desired
        && previous.disruptions_allowed == allowed
        && old_disrupted == disrupted
        && previous.conditions.iter().flatten().any(|c| {
            c.type_ == "DisruptionAllowed" && c.status == condition_status && c.reason == reason
        });
    if !unchanged {
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        // A merge patch removes map keys by nulling them.
        let mut disrupted_patch = serde_json::Map::new();
        for pod in old_disrupted.keys() {
            disrupted_patch.insert(pod.clone(), serde_json::Value::Null);
        }
        for (pod, at) in &disrupted {
            disrupted_patch.insert(pod.clone(), json!(at));
        }
        // Pinned to the version read: the eviction subresource writes this
        // status too, and a recount from an older version must not undo it.
        let status = json!({"metadata": {"resourceVersion": pdb.metadata.resource_version}, "status": {
            "observedGeneration": generation,
            "disruptedPods": disrupted_patch,
            "expectedPods": expected,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "disruptionsAllowed": allowed,
            "conditions": [{"type": "DisruptionAllowed", "status": condition_status, "reason": reason,
                "message": "", "observedGeneration": generation, "lastTransitionTime": now}],
        }});
        Api::<PodDisruptionBudget>::namespaced(client, ns)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
    }
    Ok(Some(RESYNC))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "b"}, "spec": spec})).unwrap_or_default()
    }

    #[test]
    fn evicted_pods_stay_disrupted_until_their_deletion_is_seen_or_times_out() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z"
            .parse()
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let pod = |name: &str| -> Arc<Pod> {
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name}})).unwrap_or_default(),
            )
        };
        let at = |t: &str| Time(t.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH));
        let recorded: BTreeMap<String, Time> = [
            ("recent".to_string(), at("2026-01-01T00:09:30Z")),
            ("old".to_string(), at("2026-01-01T00:05:00Z")),
            ("gone".to_string(), at("2026-01-01T00:09:50Z")),
        ]
        .into();
        let kept = still_disrupted(&recorded, &[pod("recent"), pod("old")], now);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["recent"]);
    }

    #[test]
    fn expectations_follow_upstream() {
        assert_eq!(
            expectation(&pdb(json!({"minAvailable": 2})), 3, None).ok(),
            Some((3, 2))
        );
        assert_eq!(
            expectation(&pdb(json!({"maxUnavailable": 1})), 3, Some(4)).ok(),
            Some((4, 3))
        );
        assert_eq!(
            expectation(&pdb(json!({"minAvailable": "50%"})), 3, Some(3)).ok(),
            Some((3, 2)),
            "percentages round up"
        );
        assert_eq!(
            expectation(&pdb(json!({"maxUnavailable": "25%"})), 4, Some(4)).ok(),
            Some((4, 3))
        );
        assert!(expectation(&pdb(json!({"maxUnavailable": 1})), 3, None).is_err());
    }
}
