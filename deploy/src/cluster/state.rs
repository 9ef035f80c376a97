//! `cluster.json`: what a cluster was created with and must be restarted
//! with (its ports, which the kubeconfig and etcd's membership name), and
//! which kubeconfig files carry its context so `delete` can clean them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::layout::ClusterDir;
use super::ports;

/// The loopback ports one cluster listens on, chosen once at creation so
/// that several clusters coexist and a restart keeps its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// The apiserver's HTTPS port (in the kubeconfig's server URL).
    pub apiserver: u16,
    /// etcd's client port.
    pub etcd_client: u16,
    /// etcd's peer port (etcd records it in its data directory).
    pub etcd_peer: u16,
    /// The scheduler's health/metrics HTTPS port.
    pub scheduler: u16,
    /// The controller-manager's health/metrics HTTPS port.
    pub controller_manager: u16,
}

impl Ports {
    /// Distinct ports nothing listens on right now.
    pub fn pick() -> anyhow::Result<Self> {
        let p = ports::free_ports(5)?;
        Ok(Ports {
            apiserver: p[0],
            etcd_client: p[1],
            etcd_peer: p[2],
            scheduler: p[3],
            controller_manager: p[4],
        })
    }
}

/// What the node was given at creation and keeps across restarts: its pod
/// CIDR (pods' addresses and the bridge's route) and its kubelet's port
/// (published in the Node, which the apiserver calls for logs and exec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The node's pod CIDR (`--pod-cidr`), distinct from other clusters'.
    pub pod_cidr: String,
    /// The kubelet's HTTPS port on 127.0.0.1 (`--port`).
    pub kubelet_port: u16,
}

/// The persisted state of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The cluster's name (same as its directory's).
    pub name: String,
    /// Its ports.
    pub ports: Ports,
    /// Kubeconfig files its context was merged into, removed from on delete.
    #[serde(default)]
    pub kubeconfigs: Vec<PathBuf>,
    /// The node's settings; absent in clusters created before the node
    /// existed, and then chosen by the next `create`.
    #[serde(default)]
    pub node: Option<NodeState>,
}

impl ClusterState {
    /// The apiserver URL clients use.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports.apiserver)
    }

    /// Reads `cluster.json`; `None` when the cluster was never created.
    pub fn load(dir: &ClusterDir) -> anyhow::Result<Option<Self>> {
        let path = dir.state_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cluster state file", path.display()))?;
        Ok(Some(state))
    }

    /// Writes `cluster.json` atomically.
    pub fn save(&self, dir: &ClusterDir) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self).context("serializing cluster state")?;
        crate::pki::write_file(&dir.state_file(), text.as_bytes(), 0o644)
    }

    /// Records that `path` carries this cluster's context (once).
    pub fn remember_kubeconfig(&mut self, path: &Path) {
        if !self.kubeconfigs.iter().any(|p| p == path) {
            self.kubeconfigs.push(path.to_path_buf());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_absent_before_create() {
        let home = tempfile::tempdir().unwrap();
        let dir = ClusterDir::new(home.path(), "c").unwrap();
        assert_eq!(ClusterState::load(&dir).unwrap(), None);
        std::fs::create_dir_all(&dir.root).unwrap();
        let mut state = ClusterState {
            name: "c".into(),
            ports: Ports::pick().unwrap(),
            kubeconfigs: vec![],
            node: None,
        };
        state.remember_kubeconfig(Path::new("/k"));
        state.remember_kubeconfig(Path::new("/k"));
        state.save(&dir).unwrap();
        assert_eq!(ClusterState::load(&dir).unwrap(), Some(state.clone()));
        assert_eq!(state.kubeconfigs.len(), 1);
        assert!(state.server_url().starts_with("https://127.0.0.1:"));
    }
}
