//! `capstan load image-archive TAR [--name]`: imports a docker or OCI
//! image archive into the cluster's containerd, in the `k8s.io` namespace
//! the kubelet's pods use, like `kind load image-archive`, so pods run it
//! with `imagePullPolicy: Never` (or IfNotPresent) without any registry.

use std::path::Path;

use anyhow::{Context as _, bail};

use super::layout::{self, ClusterDir};
use super::lock::ClusterLock;
use super::state::ClusterState;
use super::{node, runner};
use crate::runtime::images;

/// Imports `archive` into every node of cluster `name`; fails clearly when the
/// archive or the cluster is missing or the cluster's containerd is not
/// running.
pub fn load_image_archive(name: &str, archive: &Path) -> anyhow::Result<()> {
    let home = layout::capstan_home()?;
    let dir = ClusterDir::new(&home, name)?;
    if !archive.is_file() {
        bail!("image archive {} does not exist", archive.display());
    }
    if !dir.state_file().is_file() {
        bail!(
            "no cluster named {name:?} (see `capstan get clusters`; create it with `capstan create cluster --name {name}`)"
        );
    }
    let _lock = ClusterLock::acquire(&home, name)?;
    let state = ClusterState::load(&dir)?.context("the cluster has no state file")?;
    for n in &state.nodes {
        let nd = node::node_dir(&dir, n);
        if !runner::is_running(&dir, &nd.component(node::CONTAINERD)) {
            bail!(
                "node {} of cluster {name:?} is not running (its containerd is down); start it with `capstan create cluster --name {name}`",
                nd.name
            );
        }
        let socket = node::runtime_options(&nd).socket();
        images::import(&socket, archive)
            .with_context(|| format!("loading {} into node {}", archive.display(), nd.name))?;
        eprintln!(
            "Image archive {} loaded into node {}",
            archive.display(),
            nd.name
        );
    }
    Ok(())
}
