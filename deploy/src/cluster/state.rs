//! `cluster.json`: what a cluster was created with and must be restarted
//! with (its ports, which the kubeconfig and etcd's membership name), and
//! which kubeconfig files carry its context so `delete` can clean them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::layout::ClusterDir;
use super::network::ClusterNetwork;
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

/// One node of the cluster, as created: its name and its index, which
/// gives its address, namespace and directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The Node's name (`<cluster>-control-plane`, `<cluster>-worker`,
    /// `<cluster>-worker2`, ... as kind names them).
    pub name: String,
    /// Its index: 0 for the control-plane node.
    pub index: usize,
}

impl NodeState {
    /// The nodes of a new cluster of `count` nodes, named as kind does.
    pub fn for_cluster(cluster: &str, count: usize) -> Vec<NodeState> {
        (0..count)
            .map(|index| NodeState {
                name: match index {
                    0 => format!("{cluster}-control-plane"),
                    1 => format!("{cluster}-worker"),
                    n => format!("{cluster}-worker{n}"),
                },
                index,
            })
            .collect()
    }
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
    /// Its addresses; chosen by the first `create`.
    #[serde(default)]
    pub network: Option<ClusterNetwork>,
    /// Its nodes, the control-plane node first; chosen by the first
    /// `create`.
    #[serde(default)]
    pub nodes: Vec<NodeState>,
}

impl ClusterState {
    /// The apiserver URL clients use: the host's address on the cluster
    /// bridge, which the nodes' namespaces reach too.
    pub fn server_url(&self) -> anyhow::Result<String> {
        let net = self.network()?;
        Ok(format!(
            "https://{}:{}",
            net.host_ip(),
            self.ports.apiserver
        ))
    }

    /// The cluster's network, which every `create` sets first.
    pub fn network(&self) -> anyhow::Result<ClusterNetwork> {
        self.network
            .context("the cluster state has no network; run `capstan create cluster` again")
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
            network: Some(ClusterNetwork { index: 7 }),
            nodes: NodeState::for_cluster("c", 3),
        };
        state.remember_kubeconfig(Path::new("/k"));
        state.remember_kubeconfig(Path::new("/k"));
        state.save(&dir).unwrap();
        assert_eq!(ClusterState::load(&dir).unwrap(), Some(state.clone()));
        assert_eq!(state.kubeconfigs.len(), 1);
        assert!(
            state
                .server_url()
                .unwrap()
                .starts_with("https://10.151.7.1:")
        );
        let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["c-control-plane", "c-worker", "c-worker2"]);
    }
}
