//! The cluster's node: a private containerd (config, CNI template and the
//! locally built pause and busybox images, from [`crate::runtime`]) and
//! `capstan-kubelet`, both detached components like the control plane's.
//!
//! `create` asks [`steps`] for the node's components up front (so a
//! missing binary fails before anything starts, and "already running"
//! covers the node too), calls [`prepare`] after the PKI exists, runs the
//! node's steps after the control plane's exactly like those
//! (idempotently, pid files, logs, probes), then [`wait_ready`]. `delete`
//! calls [`teardown`] first: it stops the kubelet, removes the pods through
//! CRI, stops containerd and removes what outlives it (shims, mounts, pod
//! cgroups, the bridge); the control plane is stopped after.
//!
//! Everything the node owns outside the cluster directory is named after
//! it: the bridge `cap<token>` and the pods' cgroup `/capstan-<token>`,
//! where the token is derived from the directory's path.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use tokio::time::Instant;

use super::binaries;
use super::components::{self, Component, Probe, Step, Task};
use super::delete;
use super::layout::ClusterDir;
use super::process::Launch;
use super::runner;
use super::state::ClusterState;
use crate::runtime::containerd::{self, Options};
use crate::runtime::{cleanup, images};

/// Component name of the node's containerd.
pub const CONTAINERD: &str = "containerd";
/// Component name of the node's kubelet.
pub const KUBELET: &str = "kubelet";

/// Component names of the node, in start order; their pid files are
/// `run/<name>.pid`.
pub const COMPONENTS: &[&str] = &[CONTAINERD, KUBELET];

/// Where the CNI plugins are installed (containerd's config names it).
const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// Longest unix socket path the kernel takes (`sun_path` less the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// How long killed pod processes get to leave their cgroups.
const CGROUP_GRACE: Duration = Duration::from_secs(10);

/// The cluster's containerd settings (a pure function of its directory,
/// so `delete` finds the same socket, runc root and bridge).
pub fn runtime_options(dir: &ClusterDir) -> Options {
    Options::new(&dir.containerd_dir(), images::PAUSE_IMAGE)
}

/// The cgroup the kubelet puts every pod under (`--cgroup-root`), one per
/// cluster so `delete` removes exactly its own.
pub fn cgroup_root(dir: &ClusterDir) -> String {
    format!("/capstan-{}", containerd::dir_token(&dir.root))
}

/// Writes what the node's processes need before they start (containerd's
/// config, the CNI template, the kubelet's directories); idempotent.
pub fn prepare(dir: &ClusterDir, _state: &ClusterState) -> anyhow::Result<()> {
    runtime_options(dir).write_files()?;
    for d in [dir.kubelet_dir(), dir.pod_log_dir(), dir.manifests()] {
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    Ok(())
}

/// The node's steps, run after the control plane is up: containerd, the
/// base images, the kubelet. Only describes (it is called before
/// [`prepare`]), but looks every program up so a missing one is reported
/// before anything starts.
pub fn steps(dir: &ClusterDir, state: &ClusterState) -> anyhow::Result<Vec<Step>> {
    let node = state
        .node
        .as_ref()
        .context("the cluster state has no node settings")?;
    let containerd_bin = binaries::system("containerd", "containerd")?;
    binaries::system("ctr", "containerd")?;
    binaries::system("runc", "runc")?;
    if !Path::new(CNI_BIN_DIR).join("bridge").is_file() {
        bail!(
            "the CNI plugins are not in {CNI_BIN_DIR}; install them with `apt-get install containernetworking-plugins`"
        );
    }
    let kubelet_bin = binaries::component("capstan-kubelet")?;
    let rt = runtime_options(dir);
    let socket = rt.socket();
    // containerd also listens on `<socket>.ttrpc`.
    let longest = socket.as_os_str().len() + ".ttrpc".len();
    if longest > MAX_SOCKET_PATH {
        bail!(
            "containerd's socket {}.ttrpc would be longer than the {MAX_SOCKET_PATH} bytes a unix socket path may have; use a shorter cluster name or CAPSTAN_HOME",
            socket.display()
        );
    }
    let pki = dir.pki();

    let containerd = Component {
        name: CONTAINERD,
        launch: Launch {
            program: containerd_bin,
            args: vec!["--config".into(), rt.config_path().into()],
            env: vec![],
            log: dir.log(CONTAINERD),
        },
        ports: vec![],
        probe: Probe::Socket {
            path: socket.clone(),
        },
    };
    let flag = |name: &str, value: &dyn std::fmt::Display| -> OsString {
        format!("--{name}={value}").into()
    };
    let kubelet = Component {
        name: KUBELET,
        launch: Launch {
            program: kubelet_bin,
            args: vec![
                // Its own `system:node:<node>` identity, as kubeadm's.
                flag("kubeconfig", &dir.kubelet_kubeconfig().display()),
                flag("hostname-override", &dir.node_name()),
                // The apiserver reaches the kubelet at the node's
                // InternalIP; both are on this machine.
                flag("node-ip", &"127.0.0.1"),
                flag("address", &"127.0.0.1"),
                flag("port", &node.kubelet_port),
                flag(
                    "container-runtime-endpoint",
                    &format!("unix://{}", socket.display()),
                ),
                flag("root-dir", &dir.kubelet_dir().display()),
                flag("pod-log-dir", &dir.pod_log_dir().display()),
                flag("pod-manifest-path", &dir.manifests().display()),
                flag("pod-cidr", &node.pod_cidr),
                flag("cgroup-root", &cgroup_root(dir)),
                flag("pod-infra-container-image", &images::PAUSE_IMAGE),
                // Only the apiserver's client certificate (signed by the
                // cluster CA) may use the kubelet's port.
                flag("client-ca-file", &pki.join(crate::pki::CA_CERT).display()),
            ],
            env: components::log_env(),
            log: dir.log(KUBELET),
        },
        ports: vec![node.kubelet_port],
        probe: Probe::Listening {
            port: node.kubelet_port,
        },
    };

    Ok(vec![
        Step {
            title: "Starting containerd".into(),
            components: vec![containerd],
            then: None,
        },
        Step {
            title: "Loading node images".into(),
            components: vec![],
            then: Some(Task::ImportBaseImages {
                socket,
                work: dir.images_dir(),
            }),
        },
        Step {
            title: "Starting kubelet".into(),
            components: vec![kubelet],
            then: None,
        },
    ])
}

/// The progress line of [`wait_ready`], as kind words it.
pub fn ready_title(dir: &ClusterDir) -> String {
    format!("Waiting for node {} to be Ready", dir.node_name())
}

/// Waits until the Node is registered and its Ready condition is True.
pub async fn wait_ready(
    dir: &ClusterDir,
    client: &kube::Client,
    deadline: Instant,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = dir.node_name();
    loop {
        if let Ok(Some(node)) = nodes.get_opt(&name).await
            && is_ready(&node)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let log = dir.log(KUBELET);
            bail!(
                "node {name} did not become Ready in time (raise --wait, or see {}); last lines of its log:\n{}",
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

/// Takes the node apart so nothing is left: the kubelet stopped (so it
/// starts no pod meanwhile), every pod sandbox removed through CRI (CNI
/// releases its address, veth and network namespace), runc's leftovers
/// killed, containerd stopped, its shims killed, every mount under the
/// cluster directory detached, the pods' cgroups and the bridge removed.
pub fn teardown(dir: &ClusterDir) -> anyhow::Result<()> {
    let rt = runtime_options(dir);
    delete::stop_component(dir, KUBELET)?;
    if runner::is_running(dir, CONTAINERD) {
        cleanup::remove_sandboxes(&rt.socket());
    }
    cleanup::kill_runc_containers(&rt.runc_root());
    delete::stop_component(dir, CONTAINERD)?;
    cleanup::after_stop(&rt, &dir.root);
    cleanup::remove_cgroups(&cgroup_root(dir), CGROUP_GRACE)
}
