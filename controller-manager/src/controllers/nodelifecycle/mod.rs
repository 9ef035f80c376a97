//! Node lifecycle (upstream's `node-lifecycle`): every
//! `--node-monitor-period` it checks each node's heartbeats (its Lease in
//! `kube-node-lease` and its Ready condition). A node silent for longer
//! than `--node-monitor-grace-period` gets its conditions set to
//! `Unknown` ("Kubelet stopped posting node status.") and the
//! `node.kubernetes.io/unreachable` taints; a node reporting Ready=False
//! gets the `not-ready` ones; a healthy node loses them. Pods on nodes
//! with NoExecute taints are evicted (deleted) at once when they do not
//! tolerate them, else once their `tolerationSeconds` run out, so their
//! controllers recreate them elsewhere.
//!
//! Heartbeats are judged by when this controller saw them change, not by
//! the timestamps they carry, so clock skew between nodes and the control
//! plane does not matter (as upstream).

pub mod taints;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use serde_json::{Value, json};

use self::taints::{NOT_READY, UNREACHABLE};
use crate::informer;
use crate::metrics::Metrics;

/// The controller's name, as upstream's `--controllers` spells it.
pub const NAME: &str = "node-lifecycle";

/// The node conditions a silent node has set to Unknown.
const CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Timings from the flags.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// How often nodes are checked.
    pub period: Duration,
    /// How long a node may be silent before it is Unknown.
    pub grace: Duration,
}

/// What one node last showed: its heartbeat values and when they changed.
struct Seen {
    heartbeat: String,
    at: Instant,
}

/// Runs the controller until the process stops.
pub async fn run(client: kube::Client, metrics: Metrics, timings: Timings) -> Result<()> {
    let nodes = informer::spawn(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        |_| {},
    );
    let leases = informer::spawn(
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
        watcher::Config::default(),
        |_| {},
    );
    let pods = informer::spawn(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        |_| {},
    );
    nodes.wait_until_ready().await?;
    leases.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let passes = metrics.reconciles.with_label_values(&[NAME, "success"]);
    let failures = metrics.reconciles.with_label_values(&[NAME, "error"]);
    loop {
        let outcome = async {
            monitor(&client, &nodes, &leases, &mut seen, timings.grace).await?;
            evict(&client, &nodes, &pods).await
        }
        .await;
        match outcome {
            Ok(()) => passes.inc(),
            Err(e) => {
                failures.inc();
                tracing::warn!(error = %format!("{e:#}"), "node lifecycle pass failed");
            }
        }
        tokio::time::sleep(timings.period).await;
    }
}

fn condition<'a>(
    node: &'a Node,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The heartbeat values of a node: its Lease's renew time and its Ready
/// condition's heartbeat.
fn heartbeat(node: &Node, lease: Option<&Lease>) -> String {
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    let ready = condition(node, "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    format!("{renew}|{ready}")
}

/// The NoExecute/NoSchedule taints a node should carry for its state.
fn wanted_taints(unreachable: bool, not_ready: bool) -> Vec<&'static str> {
    if unreachable {
        vec![UNREACHABLE]
    } else if not_ready {
        vec![NOT_READY]
    } else {
        Vec::new()
    }
}

async fn monitor(
    client: &kube::Client,
    nodes: &Store<Node>,
    leases: &Store<Lease>,
    seen: &mut HashMap<String, Seen>,
    grace: Duration,
) -> Result<()> {
    let now = Instant::now();
    let leases: HashMap<String, std::sync::Arc<Lease>> = leases
        .state()
        .into_iter()
        .filter_map(|l| l.metadata.name.clone().map(|n| (n, l)))
        .collect();
    let api: Api<Node> = Api::all(client.clone());
    let names: Vec<String> = nodes
        .state()
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    seen.retain(|n, _| names.contains(n));
    for node in nodes.state() {
        let Some(name) = node.metadata.name.clone() else {
            continue;
        };
        let beat = heartbeat(&node, leases.get(&name).map(|l| l.as_ref()));
        let entry = seen.entry(name.clone()).or_insert(Seen {
            heartbeat: beat.clone(),
            at: now,
        });
        if entry.heartbeat != beat {
            entry.heartbeat = beat;
            entry.at = now;
        }
        let silent = now.duration_since(entry.at) > grace;
        let ready = condition(&node, "Ready").map(|c| c.status.as_str());
        if silent && ready != Some("Unknown") {
            mark_unknown(&api, &name).await?;
        }
        let unreachable = silent || ready == Some("Unknown");
        let not_ready = ready == Some("False");
        sync_taints(&api, &node, &wanted_taints(unreachable, not_ready)).await?;
    }
    Ok(())
}

/// Sets the node's conditions to Unknown, as upstream does for a node
/// whose kubelet stopped posting status.
async fn mark_unknown(api: &Api<Node>, name: &str) -> Result<()> {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let conditions: Vec<Value> = CONDITIONS
        .iter()
        .map(|t| {
            json!({"type": t, "status": "Unknown", "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.", "lastTransitionTime": now})
        })
        .collect();
    tracing::info!(
        node = name,
        "node stopped posting status; marking it Unknown"
    );
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"status": {"conditions": conditions}})),
    )
    .await?;
    Ok(())
}

/// Makes the lifecycle taints of `node` exactly `wanted` (NoExecute and
/// NoSchedule each), keeping every other taint.
async fn sync_taints(api: &Api<Node>, node: &Node, wanted: &[&str]) -> Result<()> {
    let current: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let lifecycle = |t: &Taint| t.key == UNREACHABLE || t.key == NOT_READY;
    let have: Vec<(&str, &str)> = current
        .iter()
        .filter(|t| lifecycle(t))
        .map(|t| (t.key.as_str(), t.effect.as_str()))
        .collect();
    let want: Vec<(&str, &str)> = wanted
        .iter()
        .flat_map(|k| [(*k, "NoSchedule"), (*k, "NoExecute")])
        .collect();
    let mut sorted_have = have.clone();
    sorted_have.sort();
    let mut sorted_want = want.clone();
    sorted_want.sort();
    if sorted_have == sorted_want {
        return Ok(());
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut taints: Vec<Value> = current
        .iter()
        .filter(|t| !lifecycle(t) || want.contains(&(t.key.as_str(), t.effect.as_str())))
        .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
        .collect();
    for (key, effect) in &want {
        if !have.contains(&(*key, *effect)) {
            let mut t = json!({"key": key, "effect": effect});
            if *effect == "NoExecute" {
                t["timeAdded"] = json!(now);
            }
            taints.push(t);
        }
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    tracing::info!(node = %name, taints = ?want, "updating node lifecycle taints");
    let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": taints}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes pods on NoExecute-tainted nodes whose tolerations have run
/// out (upstream's taint eviction).
async fn evict(client: &kube::Client, nodes: &Store<Node>, pods: &Store<Pod>) -> Result<()> {
    let tainted: HashMap<String, Vec<Taint>> = nodes
        .state()
        .iter()
        .filter_map(|n| {
            let taints: Vec<Taint> = n
                .spec
                .as_ref()?
                .taints
                .clone()?
                .into_iter()
                .filter(|t| t.effect == "NoExecute")
                .collect();
            (!taints.is_empty()).then(|| (n.metadata.name.clone().unwrap_or_default(), taints))
        })
        .collect();
    if tainted.is_empty() {
        return Ok(());
    }
    let now = jiff::Timestamp::now();
    for pod in pods.state() {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()) else {
            continue;
        };
        let Some(taints) = tainted.get(node) else {
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        let due = match taints::eviction_time(&tolerations, taints) {
            None => continue,
            Some(None) => true,
            Some(Some(at)) => at <= now,
        };
        if !due {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        tracing::info!(pod = %name, namespace = %ns, node = %node, "evicting a pod from a tainted node");
        match Api::<Pod>::namespaced(client.clone(), &ns)
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(anyhow!("evicting {ns}/{name}: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_node_is_unreachable_a_false_one_not_ready() {
        assert_eq!(wanted_taints(true, false), [UNREACHABLE]);
        assert_eq!(wanted_taints(true, true), [UNREACHABLE]);
        assert_eq!(wanted_taints(false, true), [NOT_READY]);
        assert!(wanted_taints(false, false).is_empty());
    }
}
