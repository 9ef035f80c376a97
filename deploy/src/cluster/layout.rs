//! Where a local cluster keeps its state: one directory per cluster under
//! `$CAPSTAN_HOME/clusters/<name>` (`~/.capstan` by default), so that
//! `create`, `get` and `delete` need nothing but the cluster's name.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Environment variable naming the directory all cluster state lives in.
pub const CAPSTAN_HOME_ENV: &str = "CAPSTAN_HOME";
/// Cluster name used when `--name` is not given (kind's is `kind`).
pub const DEFAULT_CLUSTER_NAME: &str = "capstan";

/// `$CAPSTAN_HOME`, or `~/.capstan` when it is unset or empty.
pub fn capstan_home() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os(CAPSTAN_HOME_ENV).filter(|h| !h.is_empty()) {
        // Absolute, since components run from `/` and their paths are
        // recorded in configs and pid checks.
        return std::path::absolute(&home)
            .with_context(|| format!("resolving {CAPSTAN_HOME_ENV}={}", home.to_string_lossy()));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).context(
        "neither CAPSTAN_HOME nor HOME is set; set CAPSTAN_HOME to a directory for cluster state",
    )?;
    Ok(PathBuf::from(home).join(".capstan"))
}

/// The directory holding one directory per cluster.
pub fn clusters_dir(home: &Path) -> PathBuf {
    home.join("clusters")
}

/// Checks a cluster name before it becomes a directory and a kubeconfig
/// context name: lower-case letters, digits and `-`, starting and ending
/// with a letter or digit, at most 63 characters (a DNS label, as kind asks).
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "invalid cluster name {name:?}: use lower-case letters, digits and '-' (at most 63, starting and ending with a letter or digit)"
        );
    }
    Ok(())
}

/// The kubeconfig context (and cluster and user entry) name of a cluster,
/// `capstan-<name>` as kind uses `kind-<name>`.
pub fn context_name(name: &str) -> String {
    format!("capstan-{name}")
}

/// The paths inside one cluster's state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDir {
    /// The cluster's name.
    pub name: String,
    /// `$CAPSTAN_HOME/clusters/<name>`.
    pub root: PathBuf,
}

impl ClusterDir {
    /// The state directory of cluster `name` under `home` (the name is
    /// validated, so it can never escape `home`).
    pub fn new(home: &Path, name: &str) -> anyhow::Result<Self> {
        validate_name(name)?;
        Ok(ClusterDir {
            name: name.to_string(),
            root: clusters_dir(home).join(name),
        })
    }

    /// `cluster.json`: ports and where the kubeconfig was merged.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("cluster.json")
    }

    /// The cluster PKI (`capstan pki init` output).
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }

    /// etcd's data directory (kept across restarts).
    pub fn etcd_data(&self) -> PathBuf {
        self.root.join("etcd")
    }

    /// One log file per component.
    pub fn log(&self, component: &str) -> PathBuf {
        self.root.join("logs").join(format!("{component}.log"))
    }

    /// One pid file per running component.
    pub fn pid_file(&self, component: &str) -> PathBuf {
        self.run_dir().join(format!("{component}.pid"))
    }

    /// The directory of pid files.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    /// The admin kubeconfig with the `capstan-<name>` context, the same
    /// entries that are merged into the user's kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }

    /// The directory of node `index` (by index, not name, so socket
    /// paths stay short whatever the cluster's name).
    pub fn node(&self, name: &str, index: usize) -> NodeDir {
        NodeDir {
            name: name.to_string(),
            index,
            root: self.root.join("nodes").join(index.to_string()),
        }
    }

    /// Where the locally built images are assembled.
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    /// The kubeconfig the control-plane components use.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.pki().join(crate::pki::ADMIN_KUBECONFIG)
    }
}

/// The paths and component names of one node of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDir {
    /// The Node's name.
    pub name: String,
    /// Its index in the cluster (0: the control-plane node).
    pub index: usize,
    /// `<cluster>/nodes/<index>`.
    pub root: PathBuf,
}

impl NodeDir {
    /// The node's containerd: config, socket, root and state.
    pub fn containerd_dir(&self) -> PathBuf {
        self.root.join("containerd")
    }

    /// The kubelet's `--root-dir`.
    pub fn kubelet_dir(&self) -> PathBuf {
        self.root.join("kubelet")
    }

    /// The kubelet's `--pod-log-dir`.
    pub fn pod_log_dir(&self) -> PathBuf {
        self.root.join("pod-logs")
    }

    /// Static pod manifests (`--pod-manifest-path`).
    pub fn manifests(&self) -> PathBuf {
        self.root.join("manifests")
    }

    /// The kubelet's kubeconfig (its `system:node:<node>` identity).
    pub fn kubelet_kubeconfig(&self) -> PathBuf {
        self.root.join("kubelet.kubeconfig")
    }

    /// The proxy's kubeconfig (`system:kube-proxy`, as kubeadm's).
    pub fn proxy_kubeconfig(&self) -> PathBuf {
        self.root.join("proxy.kubeconfig")
    }

    /// The component (pid and log file) name of this node's `what`
    /// (`containerd`, `kubelet`, `proxy`): `<node>-<what>`.
    pub fn component(&self, what: &str) -> String {
        format!("{}-{what}", self.name)
    }
}

/// Names of the clusters under `home` (directories with a state file),
/// sorted.
pub fn list_clusters(home: &Path) -> anyhow::Result<Vec<String>> {
    let dir = clusters_dir(home);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if validate_name(&name).is_ok() && entry.path().join("cluster.json").is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        for good in ["capstan", "a", "dev-2", "0"] {
            validate_name(good).unwrap();
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a/b",
            "..",
            "a.b",
            &"x".repeat(64),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_only_directories_with_state() {
        let home = tempfile::tempdir().unwrap();
        assert!(list_clusters(home.path()).unwrap().is_empty());
        for name in ["b", "a", "half"] {
            std::fs::create_dir_all(clusters_dir(home.path()).join(name)).unwrap();
        }
        for name in ["b", "a"] {
            let dir = ClusterDir::new(home.path(), name).unwrap();
            std::fs::write(dir.state_file(), "{}").unwrap();
        }
        assert_eq!(list_clusters(home.path()).unwrap(), vec!["a", "b"]);
    }
}
