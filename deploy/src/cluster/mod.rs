//! kind-style local clusters: `capstan create cluster`, `get clusters` and
//! `delete cluster`. Each cluster is a directory under
//! `$CAPSTAN_HOME/clusters/<name>` holding its PKI, etcd data, logs, pid
//! files and `cluster.json`; its processes run detached from the command
//! that started them, and a kubeconfig context `capstan-<name>` points at
//! it.
//!
//! Modules, one concern each: [`addons`] (cluster DNS), [`layout`] (paths and names), [`state`]
//! (ports and kubeconfigs), [`ports`], [`binaries`] (finding programs),
//! [`process`] (detached processes and pid files), [`components`] (what
//! runs and with which flags), [`runner`] (start one idempotently and
//! probe it), [`network`] (a cluster's addresses), [`netns`] (the bridge,
//! the nodes' network namespaces and their routes), [`node`] (each node's
//! containerd, kubelet and proxy: their steps, readiness and teardown),
//! [`lock`] (one
//! command per cluster at a time), [`progress`], [`create`], [`delete`]
//! and [`load`] (`capstan load image-archive`).

pub mod addons;
pub mod binaries;
pub mod components;
pub mod create;
pub mod delete;
pub mod layout;
pub mod load;
pub mod lock;
pub mod netns;
pub mod network;
pub mod node;
pub mod ports;
pub mod process;
pub mod progress;
pub mod runner;
pub mod state;

pub use create::{CreateOptions, create};
pub use delete::delete;
pub use layout::DEFAULT_CLUSTER_NAME;
pub use load::load_image_archive;

/// Names of the existing clusters, sorted (`capstan get clusters`).
pub fn list() -> anyhow::Result<Vec<String>> {
    layout::list_clusters(&layout::capstan_home()?)
}

/// True when the cluster's PKI and admin kubeconfig exist, so they are
/// kept rather than re-issued.
fn pki_ready(dir: &layout::ClusterDir) -> bool {
    [
        crate::pki::CA_CERT,
        crate::pki::APISERVER_CERT,
        crate::pki::APISERVER_KEY,
        crate::pki::ADMIN_KUBECONFIG,
        crate::pki::APISERVER_KUBELET_CLIENT_CERT,
        crate::pki::APISERVER_KUBELET_CLIENT_KEY,
    ]
    .iter()
    .all(|f| dir.pki().join(f).is_file())
}
