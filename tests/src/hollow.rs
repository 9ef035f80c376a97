//! Hollow nodes for controller tests and the scale harness: one task plays
//! the kubelet of many Nodes with no containers. It registers each Node
//! (Ready, with hollow capacity, through the real kubelet's node status and
//! Lease code, as upstream's kubemark reuses the kubelet) and its Lease,
//! renews the Leases, reports every
//! pod bound to one of its nodes Running (and Ready unless its image names
//! itself `never-ready`), and finishes graceful deletions as a kubelet
//! does once containers stop. It never stands in for the real kubelet in a
//! test that claims pods really run.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Result;
use capstan_kubelet::node::lease;
use capstan_kubelet::node::machine::Machine;
use capstan_kubelet::node::status::{NodeIdentity, RuntimeHealth, node_status};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Pods whose first container's image contains this stay not ready.
pub const NEVER_READY: &str = "never-ready";

/// The InternalIP every hollow node reports.
const HOLLOW_IP: &str = "10.255.0.1";

/// Pod IPs handed out so far: each pod reported Running gets its own
/// address in 10.244.0.0/16 (after the first two), so endpoint tests see
/// distinct endpoints.
static POD_IPS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The next pod IP.
fn next_pod_ip() -> String {
    let n = POD_IPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 65_000;
    std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 244, 0, 2)) + n).to_string()
}

/// Status writes in flight at once.
const IN_FLIGHT: usize = 32;

/// The running hollow kubelet; stops when dropped.
pub struct HollowNodes {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for HollowNodes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// A Node named `name` with `labels` and `taints` (JSON arrays/objects as
/// the API spells them), for [`HollowNodes::start`].
pub fn node(name: &str, labels: Value, taints: Value) -> Result<Node> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
    }))?)
}

impl HollowNodes {
    /// Registers `nodes` and starts playing their kubelet. Needs a
    /// multi-threaded runtime: a test blocked on a `kubectl` child process
    /// must not stop the kubelets it waits for.
    pub async fn start(client: kube::Client, nodes: Vec<Node>) -> Result<Self> {
        if tokio::runtime::Handle::current().runtime_flavor()
            != tokio::runtime::RuntimeFlavor::MultiThread
        {
            anyhow::bail!("hollow nodes need #[tokio::test(flavor = \"multi_thread\")]");
        }
        let node_api: Api<Node> = Api::all(client.clone());
        let mut names = BTreeSet::new();
        for n in nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            register(&client, &node_api, n).await?;
            names.insert(name);
        }
        let names = Arc::new(names);
        let renewing = tokio::spawn(renew_leases(client.clone(), names.clone()));
        let kubelet = tokio::spawn(run_pods(client, names));
        Ok(HollowNodes {
            tasks: vec![renewing, kubelet],
        })
    }
}

/// What every hollow node claims to have: enough for scale tests.
fn hollow_machine() -> Machine {
    const GI: u64 = 1 << 30;
    Machine {
        cpus: 32,
        memory_bytes: 128 * GI,
        memory_available_bytes: 128 * GI,
        fs_bytes: 1024 * GI,
        fs_available_bytes: 1024 * GI,
        processes: 0,
        pid_max: 4_194_304,
    }
}

/// Registers a Node, reports it Ready with the real kubelet's node status
/// (hollow capacity) and creates its Lease the way the kubelet does.
async fn register(client: &kube::Client, nodes: &Api<Node>, node: Node) -> Result<()> {
    let name = node.metadata.name.clone().unwrap_or_default();
    nodes.create(&PostParams::default(), &node).await?;
    let id = NodeIdentity {
        name: name.clone(),
        ip: HOLLOW_IP.into(),
        labels: Default::default(),
        taints: Vec::new(),
        max_pods: 1000,
        port: 10250,
        runtime_version: "fake://0".into(),
    };
    let status = node_status(&id, &hollow_machine(), &RuntimeHealth::Ready, None);
    nodes
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Strategic(json!({ "status": status })),
        )
        .await?;
    lease::renew(client, &name).await?;
    Ok(())
}

async fn renew_leases(client: kube::Client, names: Arc<BTreeSet<String>>) {
    let mut tick = tokio::time::interval(lease::RENEW_INTERVAL);
    loop {
        tick.tick().await;
        for name in names.iter() {
            if let Err(e) = lease::renew(&client, name).await {
                eprintln!("hollow node {name}: renewing its lease failed: {e}");
            }
        }
    }
}

/// What the hollow kubelet does about one pod, if anything.
enum Action {
    Run { ready: bool },
    FinishDeletion,
}

fn action(pod: &Pod, names: &BTreeSet<String>) -> Option<Action> {
    let spec = pod.spec.as_ref()?;
    if !spec.node_name.as_ref().is_some_and(|n| names.contains(n)) {
        return None;
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(Action::FinishDeletion);
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Running" | "Succeeded" | "Failed")) {
        return None;
    }
    let ready = !spec
        .containers
        .iter()
        .any(|c| c.image.as_deref().unwrap_or_default().contains(NEVER_READY));
    Some(Action::Run { ready })
}

async fn run_pods(client: kube::Client, names: Arc<BTreeSet<String>>) {
    let pods: Api<Pod> = Api::all(client.clone());
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let stream = watcher(pods, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let Ok(pod) = event else { continue };
        let Some(act) = action(&pod, &names) else {
            continue;
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = apply(client, &pod, act).await {
                eprintln!(
                    "hollow kubelet: pod {}: {e}",
                    pod.metadata.name.as_deref().unwrap_or_default()
                );
            }
            drop(permit);
        });
    }
}

async fn apply(client: kube::Client, pod: &Pod, act: Action) -> Result<()> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client, ns);
    match act {
        Action::FinishDeletion => {
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(name, &params).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Action::Run { ready } => {
            let t = now();
            let ip = next_pod_ip();
            let flag = if ready { "True" } else { "False" };
            let containers: Vec<Value> = pod
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .map(|c| {
                    json!({"name": c.name, "image": c.image, "imageID": "", "ready": ready,
                        "restartCount": 0, "started": true, "state": {"running": {"startedAt": t}}})
                })
                .collect();
            let status = json!({"status": {
                "phase": "Running",
                "hostIP": HOLLOW_IP,
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "startTime": t,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                    {"type": "ContainersReady", "status": flag, "lastTransitionTime": t},
                    {"type": "Ready", "status": flag, "lastTransitionTime": t},
                ],
                "containerStatuses": containers,
            }});
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(status))
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}
