//! A real node for end-to-end tests: a private containerd (deploy's
//! `runtime::containerd`) with the locally built pause and busybox images,
//! and a `capstan-kubelet` registered with a [`ControlPlane`]'s apiserver.
//! Dropping it stops the kubelet, then tears the containerd down (pods,
//! shims, mounts, bridge), also when the test failed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use capstan::runtime::containerd::{self, Containerd};
use capstan::runtime::images;
use capstan_kubelet::cri::Cri;
use k8s_openapi::api::core::v1::{Node as NodeObject, Pod};
use kube::api::Api;

use crate::fixture::{ControlPlane, Process, binary, free_port};
use crate::wait;

/// The image test pods run (built from busybox-static, never pulled).
pub const BUSYBOX: &str = images::BUSYBOX_IMAGE;

/// One node: containerd + kubelet. Fields drop in order: the kubelet
/// first, so it creates nothing while the runtime goes away.
pub struct Node {
    kubelet: Option<Process>,
    /// The node's runtime.
    pub containerd: Containerd,
    /// A CRI client of that runtime, to look behind the kubelet's back.
    pub cri: Cri,
    /// The Node's name.
    pub name: String,
    /// The pod CIDR handed to the kubelet.
    pub pod_cidr: String,
    /// Where pod logs are written (`--pod-log-dir`).
    pub pod_log_dir: PathBuf,
    /// The kubelet's `--root-dir` (pod volumes under `pods/<uid>`).
    pub root_dir: PathBuf,
    /// The static pod directory (`--pod-manifest-path`, read every second;
    /// volume files are refreshed every second too).
    pub manifests: PathBuf,
    kubelet_args: Vec<String>,
    kubelet_log: PathBuf,
    dir: tempfile::TempDir,
}

/// A /24 of 10.0.0.0/8 unlikely to be used by another test on the
/// machine: random per process, then the next one for each node of the
/// process, so two nodes of one test run never share a subnet.
fn random_cidr() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        AtomicU32::new(nanos ^ std::process::id().rotate_left(16))
    });
    let n = next.fetch_add(1, Ordering::Relaxed) % (50 * 256);
    format!("10.{}.{}.0/24", 200 + n / 256, n % 256)
}

impl Node {
    /// Starts containerd (with the test images imported) and a kubelet
    /// named `name` against `cp`, with `extra` kubelet flags and a random
    /// `--pod-cidr`.
    pub async fn start(cp: &ControlPlane, name: &str, extra: &[&str]) -> Result<Self> {
        Self::start_with(cp, name, extra, true).await
    }

    /// Like [`Node::start`]; without `--pod-cidr` when `pod_cidr_flag` is
    /// false (the Node's `spec.podCIDR` must then be set), [`Node::pod_cidr`]
    /// still holding a free range to set it to.
    pub async fn start_with(
        cp: &ControlPlane,
        name: &str,
        extra: &[&str],
        pod_cidr_flag: bool,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("capstan-node-").tempdir()?;
        let opts = containerd::Options::new(&dir.path().join("rt"), images::PAUSE_IMAGE);
        let containerd = Containerd::start(opts)?;
        images::load_base_images(&containerd.socket(), &dir.path().join("images"))?;
        let cri = Cri::connect(&containerd.socket().to_string_lossy())?;
        let pod_cidr = random_cidr();
        let pod_log_dir = dir.path().join("pod-logs");
        let root_dir = dir.path().join("kubelet");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests)?;
        let mut kubelet_args: Vec<String> = vec![
            format!("--kubeconfig={}", cp.kubeconfig.display()),
            format!("--hostname-override={name}"),
            "--node-ip=127.0.0.1".into(),
            format!(
                "--container-runtime-endpoint=unix://{}",
                containerd.socket().display()
            ),
            format!("--root-dir={}", root_dir.display()),
            format!("--pod-log-dir={}", pod_log_dir.display()),
            format!("--port={}", free_port()?),
            "--address=127.0.0.1".into(),
            format!(
                "--client-ca-file={}",
                cp.dir.path().join("pki").join("ca.crt").display()
            ),
            "--node-status-update-frequency=1s".into(),
            // Test images are imported, never pulled: a nearly full disk
            // on the test machine must not collect them mid-test (the
            // image GC test turns it back on).
            "--image-gc-high-threshold=100".into(),
            format!("--pod-manifest-path={}", manifests.display()),
            "--file-check-frequency=1s".into(),
            "--sync-frequency=1s".into(),
        ];
        if pod_cidr_flag {
            kubelet_args.push(format!("--pod-cidr={pod_cidr}"));
        }
        kubelet_args.extend(extra.iter().map(|s| s.to_string()));
        let mut node = Node {
            kubelet: None,
            containerd,
            cri,
            name: name.into(),
            pod_cidr,
            pod_log_dir,
            manifests,
            root_dir,
            kubelet_args,
            kubelet_log: dir.path().join("kubelet.log"),
            dir,
        };
        node.start_kubelet()?;
        Ok(node)
    }

    fn start_kubelet(&mut self) -> Result<()> {
        let mut cmd = Command::new(binary("capstan-kubelet")?);
        cmd.args(&self.kubelet_args)
            .env("RUST_LOG", "info,capstan_kubelet=debug");
        // A log per kubelet run, so a restart starts a fresh one.
        let log = self
            .dir
            .path()
            .join(format!("kubelet-{}.log", free_port()?));
        self.kubelet_log = log.clone();
        self.kubelet = Some(Process::spawn("capstan-kubelet", cmd, log)?);
        Ok(())
    }

    /// Stops the kubelet (its pods keep running in containerd).
    pub fn stop_kubelet(&mut self) {
        if let Some(mut p) = self.kubelet.take() {
            p.stop();
        }
    }

    /// Stops the kubelet and starts a new one with the same flags.
    pub fn restart_kubelet(&mut self) -> Result<()> {
        self.stop_kubelet();
        self.start_kubelet()
    }

    /// Restarts the kubelet with `extra` flags added (later flags win).
    pub fn restart_with(&mut self, extra: &[&str]) -> Result<()> {
        self.kubelet_args
            .extend(extra.iter().map(|s| s.to_string()));
        self.restart_kubelet()
    }

    /// The tail of the kubelet's and containerd's logs, for failures.
    pub fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.kubelet_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- kubelet log ---\n{}\n{}",
            lines[from..].join("\n"),
            self.containerd.log_tail()
        )
    }

    /// Waits until the Node is registered and Ready.
    pub async fn wait_ready(&self, client: &kube::Client) -> Result<NodeObject> {
        let nodes: Api<NodeObject> = Api::all(client.clone());
        let name = self.name.clone();
        wait::until("the node to be Ready", Duration::from_secs(60), || {
            let nodes = nodes.clone();
            let name = name.clone();
            async move {
                let n = nodes.get_opt(&name).await.ok()??;
                let ready = n
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                ready.then_some(n)
            }
        })
        .await
        .with_context(|| self.logs())
    }

    /// The CRI log of container `container` (restart `attempt`) of `pod`.
    pub fn container_log(&self, pod: &Pod, container: &str, attempt: u32) -> String {
        let m = &pod.metadata;
        let path = self
            .pod_log_dir
            .join(format!(
                "{}_{}_{}",
                m.namespace.as_deref().unwrap_or("default"),
                m.name.as_deref().unwrap_or_default(),
                m.uid.as_deref().unwrap_or_default()
            ))
            .join(container)
            .join(format!("{attempt}.log"));
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The kubelet first (so it starts nothing more), then its tmpfs
        // volumes; containerd tears itself down when its field drops.
        self.stop_kubelet();
        capstan::runtime::cleanup::unmount_under(&self.root_dir);
    }
}
