//! The cluster's nodes. Each is a network namespace of its own (made by
//! [`super::netns`]) running a private containerd (config, CNI template
//! and the locally built images, from [`crate::runtime`]), the kubelet and
//! the proxy, detached components like the control plane's.
//!
//! `create` asks [`steps`] for every node's components up front (so a
//! missing binary fails before anything starts, and "already running"
//! covers the nodes too), calls [`prepare`] after the PKI exists, runs the
//! nodes' steps after the control plane's exactly like those
//! (idempotently, pid files, logs, probes), then [`wait_ready`]. `delete`
//! calls [`teardown`] for every node first: it stops the proxy and the
//! kubelet, removes the pods through CRI, stops containerd and removes
//! what outlives it (shims, mounts, pod cgroups); the namespaces go after.
//!
//! What a node owns outside the cluster directory is named after its
//! directory: the pods' bridge `cap<token>` (inside its namespace) and the
//! pods' cgroup `/capstan-<token>`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use tokio::time::Instant;

use super::binaries;
use super::components::{self, Component, Probe, Step, Task};
use super::delete;
use super::layout::{ClusterDir, NodeDir};
use super::netns;
use super::network::{self, ClusterNetwork};
use super::process::Launch;
use super::runner;
use super::state::{ClusterState, NodeState};
use crate::runtime::containerd::{self, Options};
use crate::runtime::{cleanup, images};

/// Component kind of a node's containerd (its name is `<node>-containerd`).
pub const CONTAINERD: &str = "containerd";
/// Component kind of a node's kubelet.
pub const KUBELET: &str = "kubelet";
/// Component kind of a node's proxy.
pub const PROXY: &str = "proxy";

/// A node's component kinds, in start order; `delete` stops them in
/// reverse.
pub const COMPONENTS: &[&str] = &[CONTAINERD, KUBELET, PROXY];

/// The kubelet's port, the same on every node (each has its own address).
pub const KUBELET_PORT: u16 = 10250;
/// The proxy's health port (`--healthz-bind-address`), upstream's.
pub const PROXY_HEALTH_PORT: u16 = 10256;

/// Where the CNI plugins are installed (containerd's config names it).
const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// Longest unix socket path the kernel takes (`sun_path` less the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// How long killed pod processes get to leave their cgroups.
const CGROUP_GRACE: Duration = Duration::from_secs(10);

/// The directory of `node` in cluster `dir`.
pub fn node_dir(dir: &ClusterDir, node: &NodeState) -> NodeDir {
    dir.node(&node.name, node.index)
}

/// A node's containerd settings (a pure function of its directory, so
/// `delete` finds the same socket, runc root and bridge).
pub fn runtime_options(node: &NodeDir) -> Options {
    Options::new(&node.containerd_dir(), images::PAUSE_IMAGE)
}

/// The cgroup the kubelet puts every pod of `node` under (`--cgroup-root`),
/// one per node so `delete` removes exactly its own.
pub fn cgroup_root(node: &NodeDir) -> String {
    format!("/capstan-{}", containerd::dir_token(&node.root))
}

/// Writes what a node's processes need before they start (containerd's
/// config, the CNI template, the kubelet's directories); idempotent.
pub fn prepare(node: &NodeDir) -> anyhow::Result<()> {
    runtime_options(node).write_files()?;
    for d in [node.kubelet_dir(), node.pod_log_dir(), node.manifests()] {
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    Ok(())
}

/// The programs every node runs, looked up once.
struct Programs {
    containerd: std::path::PathBuf,
    kubelet: std::path::PathBuf,
    proxy: std::path::PathBuf,
}

impl Programs {
    fn find() -> anyhow::Result<Self> {
        let containerd = binaries::system("containerd", "containerd")?;
        binaries::system("ctr", "containerd")?;
        binaries::system("runc", "runc")?;
        binaries::system("nft", "nftables")?;
        if !Path::new(CNI_BIN_DIR).join("bridge").is_file() {
            bail!(
                "the CNI plugins are not in {CNI_BIN_DIR}; install them with `apt-get install containernetworking-plugins`"
            );
        }
        Ok(Programs {
            containerd,
            kubelet: binaries::component("capstan-kubelet")?,
            proxy: binaries::component("capstan-proxy")?,
        })
    }
}

/// Every node's steps, run after the control plane is up: per node its
/// containerd and images, then its kubelet and proxy. Only describes (it
/// is called before [`prepare`]), but looks every program up so a missing
/// one is reported before anything starts.
pub fn steps(dir: &ClusterDir, state: &ClusterState) -> anyhow::Result<Vec<Step>> {
    let programs = Programs::find()?;
    let net = state.network()?;
    let mut steps = Vec::new();
    for node in &state.nodes {
        steps.extend(node_steps(dir, &net, node, &programs)?);
    }
    Ok(steps)
}

/// One node's steps; the control-plane node's titles are kind's
/// single-node ones, a worker's name the worker.
fn node_steps(
    dir: &ClusterDir,
    net: &ClusterNetwork,
    node: &NodeState,
    programs: &Programs,
) -> anyhow::Result<Vec<Step>> {
    let nd = node_dir(dir, node);
    let rt = runtime_options(&nd);
    let socket = rt.socket();
    // containerd also listens on `<socket>.ttrpc`.
    let longest = socket.as_os_str().len() + ".ttrpc".len();
    if longest > MAX_SOCKET_PATH {
        bail!(
            "containerd's socket {}.ttrpc would be longer than the {MAX_SOCKET_PATH} bytes a unix socket path may have; use a shorter CAPSTAN_HOME",
            socket.display()
        );
    }
    let pki = dir.pki();
    let netns = Some(netns::namespace_path(dir, node.index));
    let ip = net.node_ip(node.index);
    let flag = |name: &str, value: &dyn std::fmt::Display| -> OsString {
        format!("--{name}={value}").into()
    };

    let containerd = Component {
        name: nd.component(CONTAINERD),
        launch: Launch {
            program: programs.containerd.clone(),
            args: vec!["--config".into(), rt.config_path().into()],
            env: vec![],
            log: dir.log(&nd.component(CONTAINERD)),
            netns: netns.clone(),
        },
        ports: vec![],
        probe: Probe::Socket {
            path: socket.clone(),
        },
    };
    let kubelet = Component {
        name: nd.component(KUBELET),
        launch: Launch {
            program: programs.kubelet.clone(),
            args: vec![
                // Its own `system:node:<node>` identity, as kubeadm's.
                flag("kubeconfig", &nd.kubelet_kubeconfig().display()),
                flag("hostname-override", &nd.name),
                flag("node-ip", &ip),
                flag("address", &ip),
                flag("port", &KUBELET_PORT),
                flag(
                    "container-runtime-endpoint",
                    &format!("unix://{}", socket.display()),
                ),
                flag("root-dir", &nd.kubelet_dir().display()),
                flag("pod-log-dir", &nd.pod_log_dir().display()),
                flag("pod-manifest-path", &nd.manifests().display()),
                flag("cgroup-root", &cgroup_root(&nd)),
                flag("pod-infra-container-image", &images::PAUSE_IMAGE),
                flag("cluster-dns", &network::CLUSTER_DNS),
                flag("cluster-domain", &network::CLUSTER_DOMAIN),
                // Only the apiserver's client certificate (signed by the
                // cluster CA) may use the kubelet's port.
                flag("client-ca-file", &pki.join(crate::pki::CA_CERT).display()),
            ],
            env: components::log_env(),
            log: dir.log(&nd.component(KUBELET)),
            netns: netns.clone(),
        },
        ports: vec![],
        probe: Probe::Listening {
            addr: SocketAddr::from((ip, KUBELET_PORT)),
        },
    };
    let proxy = Component {
        name: nd.component(PROXY),
        launch: Launch {
            program: programs.proxy.clone(),
            args: vec![
                flag("kubeconfig", &nd.proxy_kubeconfig().display()),
                flag("hostname-override", &nd.name),
                flag("cluster-cidr", &net.cluster_cidr_text()),
                flag(
                    "healthz-bind-address",
                    &SocketAddr::from((ip, PROXY_HEALTH_PORT)),
                ),
            ],
            env: components::log_env(),
            log: dir.log(&nd.component(PROXY)),
            netns,
        },
        ports: vec![],
        probe: Probe::Listening {
            addr: SocketAddr::from((ip, PROXY_HEALTH_PORT)),
        },
    };
    let import = Task::ImportBaseImages {
        socket,
        work: dir.images_dir(),
    };
    Ok(if node.index == 0 {
        vec![
            Step {
                title: "Starting containerd".into(),
                components: vec![containerd],
                then: None,
            },
            Step {
                title: "Loading node images".into(),
                components: vec![],
                then: Some(import),
            },
            Step {
                title: "Starting kubelet and proxy".into(),
                components: vec![kubelet, proxy],
                then: None,
            },
        ]
    } else {
        vec![
            Step {
                title: format!("Preparing worker node {}", nd.name),
                components: vec![containerd],
                then: Some(import),
            },
            Step {
                title: format!("Joining worker node {}", nd.name),
                components: vec![kubelet, proxy],
                then: None,
            },
        ]
    })
}

/// The progress line of [`wait_ready`], as kind words it.
pub fn ready_title(state: &ClusterState) -> String {
    match state.nodes.as_slice() {
        [only] => format!("Waiting for node {} to be Ready", only.name),
        nodes => format!("Waiting for {} nodes to be Ready", nodes.len()),
    }
}

/// Waits until every node is registered with its Ready condition True;
/// returns them.
pub async fn wait_ready(
    dir: &ClusterDir,
    state: &ClusterState,
    client: &kube::Client,
    deadline: Instant,
) -> anyhow::Result<Vec<Node>> {
    let api: Api<Node> = Api::all(client.clone());
    loop {
        let mut ready = Vec::new();
        let mut waiting = None;
        for node in &state.nodes {
            match api.get_opt(&node.name).await {
                Ok(Some(n)) if is_ready(&n) => ready.push(n),
                _ => {
                    waiting = Some(node);
                    break;
                }
            }
        }
        let Some(node) = waiting else {
            return Ok(ready);
        };
        if Instant::now() >= deadline {
            let log = dir.log(&node_dir(dir, node).component(KUBELET));
            bail!(
                "node {} did not become Ready in time (raise --wait, or see {}); last lines of its log:\n{}",
                node.name,
                log.display(),
                runner::log_tail(&log, 25)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// True when the Node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Routes every node's pod CIDR (given by node IPAM, read from `nodes`)
/// through that node, on the host and in every other node.
pub fn route_pod_networks(
    dir: &ClusterDir,
    state: &ClusterState,
    nodes: &[Node],
) -> anyhow::Result<()> {
    let mut routes = Vec::new();
    for node in &state.nodes {
        let cidr = nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(node.name.as_str()))
            .and_then(|n| n.spec.as_ref()?.pod_cidr.clone())
            .with_context(|| format!("node {} has no spec.podCIDR", node.name))?;
        routes.push((node.index, cidr));
    }
    netns::ensure_routes(dir, &state.network()?, &routes)
}

/// Takes a node apart so nothing is left: the proxy and the kubelet
/// stopped (so it starts no pod meanwhile), every pod sandbox removed
/// through CRI (CNI releases its address, veth and network namespace),
/// runc's leftovers killed, containerd stopped, its shims killed, every
/// mount under the node's directory detached and the pods' cgroups
/// removed. Its namespace is removed with the cluster's network.
pub fn teardown(dir: &ClusterDir, node: &NodeDir) -> anyhow::Result<()> {
    let rt = runtime_options(node);
    delete::stop_component(dir, &node.component(PROXY))?;
    delete::stop_component(dir, &node.component(KUBELET))?;
    if runner::is_running(dir, &node.component(CONTAINERD)) {
        cleanup::remove_sandboxes(&rt.socket());
    }
    cleanup::kill_runc_containers(&rt.runc_root());
    delete::stop_component(dir, &node.component(CONTAINERD))?;
    cleanup::after_stop(&rt, &node.root);
    cleanup::remove_cgroups(&cgroup_root(node), CGROUP_GRACE)
}

/// The nodes of cluster `dir` with a directory, for `delete` (which must
/// work without the state file).
pub fn existing_nodes(dir: &ClusterDir) -> Vec<NodeDir> {
    let mut found: Vec<NodeDir> = std::fs::read_dir(dir.root.join("nodes"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<usize>().ok())
        .map(|index| {
            let name = state_node_name(dir, index);
            dir.node(&name, index)
        })
        .collect();
    found.sort_by_key(|n| n.index);
    found
}

/// The name node `index` was created with (from the state file, else
/// kind's naming).
fn state_node_name(dir: &ClusterDir, index: usize) -> String {
    super::state::ClusterState::load(dir)
        .ok()
        .flatten()
        .and_then(|s| s.nodes.into_iter().find(|n| n.index == index))
        .map(|n| n.name)
        .unwrap_or_else(|| {
            NodeState::for_cluster(&dir.name, index + 1)
                .pop()
                .map(|n| n.name)
                .unwrap_or_default()
        })
}
