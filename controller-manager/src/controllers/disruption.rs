//! The disruption controller (upstream's `disruption`): keeps each
//! PodDisruptionBudget's status — `expectedPods`, `currentHealthy`,
//! `desiredHealthy`, `disruptionsAllowed` and the `DisruptionAllowed`
//! condition — which the apiserver's eviction subresource (and so
//! `kubectl drain`) trusts once `observedGeneration` is current.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
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
        move |event| {
            if let Some(pdb) = informer::object(event) {
                queue.add(crate::runner::key(
                    pdb.metadata.namespace.as_deref(),
                    pdb.metadata.name.as_deref().unwrap_or_default(),
                ));
            }
        },
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
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for pod in pods {
        let Some(owner) = controller_of(&pod.metadata) else {
            return Ok(None);
        };
        let Some((replicas, uid)) =
            replicas_of(client, ns, &owner.api_version, &owner.kind, &owner.name).await?
        else {
            return Ok(None);
        };
        if seen.insert(uid) {
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
    let healthy = active.iter().filter(|p| is_ready(p)).count() as i32;
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
    let previous = pdb.status.clone().unwrap_or_default();
    let generation = pdb.metadata.generation.unwrap_or(0);
    let condition_status = if allowed > 0 { "True" } else { "False" };
    let unchanged = previous.observed_generation == Some(generation)
        && previous.expected_pods == expected
        && previous.current_healthy == healthy
        && previous.desired_healthy == desired
        && previous.disruptions_allowed == allowed
        && previous.conditions.iter().flatten().any(|c| {
            c.type_ == "DisruptionAllowed" && c.status == condition_status && c.reason == reason
        });
    if !unchanged {
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let status = json!({"status": {
            "observedGeneration": generation,
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
