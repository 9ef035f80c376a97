//! `capstan delete cluster`: take every node apart ([`node::teardown`]:
//! proxy, kubelet, pods, containerd and everything they leave), remove the
//! nodes' namespaces and the bridge ([`netns::teardown`]), stop every other
//! process the cluster's pid files name (the control plane in reverse
//! start order, then anything else recorded), take the cluster's
//! entries out of the kubeconfigs it was merged into, and remove its state
//! directory. Deleting a cluster that does not exist succeeds, as in kind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use super::components::CONTROL_PLANE;
use super::layout::{self, ClusterDir};
use super::lock::ClusterLock;
use super::process;
use super::progress::Progress;
use super::state::ClusterState;
use super::{netns, node};
use crate::kubeconfig::merge;

/// How long a component gets to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Deletes cluster `name`; `kubeconfig` (else `$KUBECONFIG`'s first file,
/// else `~/.kube/config`) is cleaned as well as the files recorded at
/// create time.
pub fn delete(name: &str, kubeconfig: Option<&Path>) -> anyhow::Result<()> {
    let home = layout::capstan_home()?;
    let dir = ClusterDir::new(&home, name)?;
    let _lock = ClusterLock::acquire(&home, name)?;
    let progress = Progress::new();
    progress.say(&format!("Deleting cluster {name:?} ..."));

    let state = if dir.root.exists() {
        // A damaged state file must not stop the processes from being
        // stopped; only the kubeconfig list is lost then.
        ClusterState::load(&dir).unwrap_or(None)
    } else {
        None
    };
    for n in node::existing_nodes(&dir) {
        node::teardown(&dir, &n)?;
    }
    netns::teardown(&dir)?;
    stop_all(&dir)?;

    let mut kubeconfigs: Vec<PathBuf> = state.map(|s| s.kubeconfigs).unwrap_or_default();
    let target = merge::target_path(kubeconfig)?;
    if !kubeconfigs.contains(&target) {
        kubeconfigs.push(target);
    }
    let context = layout::context_name(name);
    for path in &kubeconfigs {
        merge::remove_from_file(path, &context)
            .with_context(|| format!("removing {context} from {}", path.display()))?;
    }

    match std::fs::remove_dir_all(&dir.root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.root.display())),
    }
}

/// Stops every recorded process of the cluster, in order; see the module
/// docs.
pub fn stop_all(dir: &ClusterDir) -> anyhow::Result<()> {
    // The nodes' components were stopped by their teardown.
    let mut order: Vec<String> = CONTROL_PLANE.iter().rev().map(|s| s.to_string()).collect();
    // Anything else that left a pid file (a component this version does
    // not know about) is stopped last.
    if let Ok(entries) = std::fs::read_dir(dir.run_dir()) {
        let mut others: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".pid"))
                    .map(str::to_string)
            })
            .filter(|n| !order.contains(n))
            .collect();
        others.sort();
        order.extend(others);
    }
    for name in &order {
        stop_component(dir, name)?;
    }
    Ok(())
}

/// Stops component `name` if its pid file names a process of ours, and
/// removes the pid file.
pub fn stop_component(dir: &ClusterDir, name: &str) -> anyhow::Result<()> {
    let pid_file = dir.pid_file(name);
    if let Some(record) = process::read_pid_file(&pid_file) {
        process::stop(&record, &dir.root, STOP_GRACE)
            .with_context(|| format!("stopping {name}"))?;
    }
    match std::fs::remove_file(&pid_file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", pid_file.display())),
    }
}
