//! The Node this kubelet runs: registration, periodic status, the Lease
//! heartbeat, and handing the node's pod CIDR to the runtime.

pub mod lease;
pub mod machine;
pub mod status;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::cri::Cri;
use status::NodeIdentity;

/// Registers the Node and keeps its status current.
pub struct NodeAgent {
    client: kube::Client,
    cri: Cri,
    id: NodeIdentity,
    root_dir: PathBuf,
    pod_cidr_flag: Option<String>,
    check_every: Duration,
    report_every: Duration,
}

impl NodeAgent {
    /// An agent for node `id`; `pod_cidr_flag` is used when the Node has no
    /// `spec.podCIDR`.
    pub fn new(
        client: kube::Client,
        cri: Cri,
        id: NodeIdentity,
        root_dir: PathBuf,
        pod_cidr_flag: Option<String>,
        check_every: Duration,
        report_every: Duration,
    ) -> Self {
        NodeAgent {
            client,
            cri,
            id,
            root_dir,
            pod_cidr_flag,
            check_every,
            report_every,
        }
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Creates the Node, or takes over an existing one of the same name
    /// (after a restart) by adding the labels this kubelet sets.
    pub async fn register(&self) -> Result<()> {
        let node = status::initial_node(&self.id);
        match self.nodes().create(&PostParams::default(), &node).await {
            Ok(_) => {
                tracing::info!(node = %self.id.name, "registered node");
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let patch = json!({"metadata": {"labels": node.metadata.labels}});
                self.nodes()
                    .patch(
                        &self.id.name,
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                tracing::info!(node = %self.id.name, "node was already registered");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Registers (retrying until it works), then checks status every
    /// `--node-status-update-frequency`, writing it when it changed or
    /// `--node-status-report-frequency` passed; never returns.
    pub async fn run(self) {
        while let Err(e) = self.register().await {
            tracing::warn!("registering the node failed, retrying: {e:#}");
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        tokio::spawn(lease::run(self.client.clone(), self.id.name.clone()));
        let mut last_write: Option<Instant> = None;
        let mut pod_cidr: Option<String> = None;
        let mut tick = tokio::time::interval(self.check_every);
        loop {
            tick.tick().await;
            match self.sync(&mut last_write, &mut pod_cidr).await {
                Ok(()) => {}
                Err(e) => tracing::warn!("updating node status failed: {e:#}"),
            }
        }
    }

    async fn sync(
        &self,
        last_write: &mut Option<Instant>,
        pod_cidr: &mut Option<String>,
    ) -> Result<()> {
        let node = self.nodes().get(&self.id.name).await?;
        let cidr = node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.clone())
            .or_else(|| self.pod_cidr_flag.clone());
        if let Some(c) = cidr
            && pod_cidr.as_ref() != Some(&c)
        {
            self.cri.update_pod_cidr(&c).await?;
            tracing::info!(pod_cidr = %c, "handed the pod CIDR to the runtime");
            *pod_cidr = Some(c);
        }
        let health = match self.cri.status().await {
            Ok(conditions) => status::runtime_health(&conditions),
            Err(e) => status::RuntimeHealth::NotReady(format!("container runtime is down: {e:#}")),
        };
        let machine = machine::Machine::sample(&self.root_dir);
        let previous: Option<&NodeStatus> = node.status.as_ref();
        let new = status::node_status(&self.id, &machine, &health, previous);
        let due = last_write.is_none_or(|t| t.elapsed() >= self.report_every);
        if !due && !status::changed(previous, &new) {
            return Ok(());
        }
        let patch = json!({"status": new});
        self.nodes()
            .patch_status(
                &self.id.name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await?;
        *last_write = Some(Instant::now());
        Ok(())
    }
}
