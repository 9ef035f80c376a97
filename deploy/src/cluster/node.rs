//! The seam where the cluster's node plugs in: containerd (with its
//! config, CNI config and the locally built pause image) and
//! `capstan-kubelet`, being built in `deploy/src/runtime/`.
//!
//! `create` asks [`steps`] for the node's components up front (so a
//! missing binary fails before anything starts, and "already running"
//! covers the node too), calls [`prepare`] after the PKI exists, runs the
//! node's steps after the control plane's exactly like those
//! (idempotently, pid files, logs, probes), then [`wait_ready`]. `delete` stops the
//! components named in [`COMPONENTS`] first (in reverse), then the control
//! plane, then calls [`teardown`]. Today the node has no parts, so every
//! function here is empty.

use super::components::Step;
use super::layout::ClusterDir;
use super::state::ClusterState;

/// Component names of the node, in start order (`containerd`, `kubelet`
/// once they exist); `delete` stops them in reverse before the control
/// plane. Their pid files are `run/<name>.pid`.
pub const COMPONENTS: &[&str] = &[];

/// Writes what the node's processes need before they start (containerd's
/// config, CNI config, the pause image import); runs on every `create`, so
/// it must be idempotent.
pub fn prepare(_dir: &ClusterDir, _state: &ClusterState) -> anyhow::Result<()> {
    Ok(())
}

/// The node's steps, run after the control plane is ready (e.g. `Starting
/// containerd`, `Starting kubelet`), each a [`super::components::Component`]
/// with a probe. Called before [`prepare`], so it only describes: it must
/// not write anything.
pub fn steps(_dir: &ClusterDir, _state: &ClusterState) -> anyhow::Result<Vec<Step>> {
    Ok(Vec::new())
}

/// Waits until the node is Ready in the API (the issue's "waits until the
/// node is Ready"); returns at once while there is no node.
pub async fn wait_ready(
    _client: &kube::Client,
    _deadline: tokio::time::Instant,
) -> anyhow::Result<()> {
    Ok(())
}

/// Removes what stopping the node's processes leaves behind (network
/// namespaces, mounts, cgroups), before the state directory is removed.
pub fn teardown(_dir: &ClusterDir) -> anyhow::Result<()> {
    Ok(())
}
