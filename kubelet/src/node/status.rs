//! The Node object as upstream's kubelet registers and reports it:
//! well-known labels, taints from `--register-with-taints`, capacity and
//! allocatable from the machine, addresses, `nodeInfo`, the four
//! conditions with upstream's reasons and messages, and the kubelet's
//! endpoint.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::machine::{self, Machine};

/// What the kubelet version reports itself as (the API it implements).
pub const KUBELET_VERSION: &str = "v1.33.0-capstan";

/// Everything about this node that does not change while it runs.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// The Node's name.
    pub name: String,
    /// Its InternalIP.
    pub ip: String,
    /// Extra labels from `--node-labels`.
    pub labels: BTreeMap<String, String>,
    /// Taints from `--register-with-taints`.
    pub taints: Vec<Taint>,
    /// `--max-pods`.
    pub max_pods: u32,
    /// `--port`.
    pub port: u16,
    /// `containerd://1.6.20`, from CRI Version.
    pub runtime_version: String,
}

/// Parses `k=v` labels.
pub fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items.iter().filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// Parses `key[=value]:Effect` taints as upstream's `--register-with-taints`.
pub fn parse_taints(items: &[String]) -> Result<Vec<Taint>> {
    let mut out = Vec::new();
    for item in items.iter().filter(|s| !s.is_empty()) {
        let (kv, effect) = item
            .rsplit_once(':')
            .with_context(|| format!("invalid taint spec {item:?}: no effect"))?;
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            bail!("invalid taint effect {effect:?} in {item:?}");
        }
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv, None),
        };
        out.push(Taint {
            key: key.into(),
            value,
            effect: effect.into(),
            time_added: None,
        });
    }
    Ok(out)
}

/// The Node to create when registering.
pub fn initial_node(id: &NodeIdentity) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), id.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "kubernetes.io/arch".to_string(),
            machine::architecture().to_string(),
        ),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "beta.kubernetes.io/arch".to_string(),
            machine::architecture().to_string(),
        ),
    ]);
    labels.extend(id.labels.clone());
    Node {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!id.taints.is_empty()).then(|| id.taints.clone()),
            ..Default::default()
        }),
        status: None,
    }
}

/// Whether the runtime is ready to run pods, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeHealth {
    /// RuntimeReady and NetworkReady are both true.
    Ready,
    /// Upstream's message for the failing condition(s).
    NotReady(String),
}

/// Upstream's Ready message from CRI Status conditions: "container runtime
/// is down" / "container runtime network not ready: ...".
pub fn runtime_health(conditions: &[k8s_cri::v1::RuntimeCondition]) -> RuntimeHealth {
    let find = |t: &str| conditions.iter().find(|c| c.r#type == t);
    let describe = |c: &k8s_cri::v1::RuntimeCondition| {
        format!(
            "{}={} reason:{} message:{}",
            c.r#type, c.status, c.reason, c.message
        )
    };
    match (find("RuntimeReady"), find("NetworkReady")) {
        (Some(r), _) if !r.status => {
            RuntimeHealth::NotReady(format!("container runtime not ready: {}", describe(r)))
        }
        (None, _) => RuntimeHealth::NotReady(
            "container runtime status check may not have completed yet".into(),
        ),
        (_, Some(n)) if !n.status => RuntimeHealth::NotReady(format!(
            "container runtime network not ready: {}",
            describe(n)
        )),
        _ => RuntimeHealth::Ready,
    }
}

fn condition(
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    previous: Option<&NodeStatus>,
) -> NodeCondition {
    let status = if status { "True" } else { "False" };
    let now = crate::time::now();
    let transition = previous
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    NodeCondition {
        type_: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now),
        last_transition_time: Some(transition),
    }
}

/// The node's status now; transition times carried over from `previous`.
pub fn node_status(
    id: &NodeIdentity,
    m: &Machine,
    runtime: &RuntimeHealth,
    previous: Option<&NodeStatus>,
) -> NodeStatus {
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(m.cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", m.memory_bytes / 1024)),
        ),
        ("pods".to_string(), Quantity(id.max_pods.to_string())),
        (
            "ephemeral-storage".to_string(),
            Quantity(format!("{}Ki", m.fs_bytes / 1024)),
        ),
        ("hugepages-1Gi".to_string(), Quantity("0".into())),
        ("hugepages-2Mi".to_string(), Quantity("0".into())),
    ]);
    let mem = m.memory_pressure();
    let disk = m.disk_pressure();
    let pid = m.pid_pressure();
    let (ready, ready_reason, ready_message) = match runtime {
        RuntimeHealth::Ready => (
            true,
            "KubeletReady",
            "kubelet is posting ready status".to_string(),
        ),
        RuntimeHealth::NotReady(msg) => (false, "KubeletNotReady", msg.clone()),
    };
    let conditions = vec![
        condition(
            "MemoryPressure",
            mem,
            if mem {
                "KubeletHasInsufficientMemory"
            } else {
                "KubeletHasSufficientMemory"
            },
            if mem {
                "kubelet has insufficient memory available"
            } else {
                "kubelet has sufficient memory available"
            },
            previous,
        ),
        condition(
            "DiskPressure",
            disk,
            if disk {
                "KubeletHasDiskPressure"
            } else {
                "KubeletHasNoDiskPressure"
            },
            if disk {
                "kubelet has disk pressure"
            } else {
                "kubelet has no disk pressure"
            },
            previous,
        ),
        condition(
            "PIDPressure",
            pid,
            if pid {
                "KubeletHasInsufficientPID"
            } else {
                "KubeletHasSufficientPID"
            },
            if pid {
                "kubelet has insufficient PID available"
            } else {
                "kubelet has sufficient PID available"
            },
            previous,
        ),
        condition("Ready", ready, ready_reason, &ready_message, previous),
    ];
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: id.ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: id.name.clone(),
            },
        ]),
        conditions: Some(conditions),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(id.port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: machine::architecture().into(),
            boot_id: machine::read_id("/proc/sys/kernel/random/boot_id"),
            container_runtime_version: id.runtime_version.clone(),
            kernel_version: machine::kernel_version(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: machine::read_id("/etc/machine-id"),
            operating_system: "linux".into(),
            os_image: machine::os_image(),
            system_uuid: machine::read_id("/sys/class/dmi/id/product_uuid"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether `new` differs from `old` in anything but heartbeat times: the
/// kubelet writes at once on a change, otherwise only every
/// `--node-status-report-frequency`.
pub fn changed(old: Option<&NodeStatus>, new: &NodeStatus) -> bool {
    let Some(old) = old else { return true };
    let strip = |s: &NodeStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = None;
        }
        // Only the fields the kubelet owns.
        NodeStatus {
            capacity: s.capacity,
            allocatable: s.allocatable,
            addresses: s.addresses,
            conditions: s.conditions,
            daemon_endpoints: s.daemon_endpoints,
            node_info: s.node_info,
            ..Default::default()
        }
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> NodeIdentity {
        NodeIdentity {
            name: "n1".into(),
            ip: "10.0.0.1".into(),
            labels: parse_labels(&["a=b".into()]).unwrap(),
            taints: parse_taints(&["k=v:NoSchedule".into(), "only:NoExecute".into()]).unwrap(),
            max_pods: 110,
            port: 10250,
            runtime_version: "containerd://1.6.20".into(),
        }
    }

    #[test]
    fn taints_and_labels_parse_as_upstream_flags() {
        let t = parse_taints(&["k=v:NoSchedule".into(), "only:NoExecute".into()]).unwrap();
        assert_eq!(t[0].key, "k");
        assert_eq!(t[0].value.as_deref(), Some("v"));
        assert_eq!(t[1].value, None);
        assert!(parse_taints(&["k=v:Bad".into()]).is_err());
        let n = initial_node(&id());
        let labels = n.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert_eq!(labels["a"], "b");
    }

    #[test]
    fn ready_follows_the_runtime_and_heartbeats_alone_are_no_change() {
        let m = Machine::sample(std::path::Path::new("/"));
        let s = node_status(&id(), &m, &RuntimeHealth::Ready, None);
        let ready = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("kubelet is posting ready status")
        );
        let again = node_status(&id(), &m, &RuntimeHealth::Ready, Some(&s));
        assert!(!changed(Some(&s), &again));
        let down = node_status(&id(), &m, &RuntimeHealth::NotReady("x".into()), Some(&s));
        assert!(changed(Some(&s), &down));
    }
}
