//! What the runtime has for one pod right now: its newest sandbox (ready
//! or not, with its IPs) and every container by name, newest attempt
//! first. Read fresh from CRI on each sync, so a restarted kubelet sees
//! exactly what an old one left (adoption needs no other state).

use std::collections::HashMap;

use anyhow::Result;
use k8s_cri::v1 as cri;

use crate::cri::{Cri, labels};

/// A pod's sandbox as the runtime reports it.
#[derive(Debug, Clone)]
pub struct SandboxView {
    /// CRI sandbox id.
    pub id: String,
    /// Running (SANDBOX_READY).
    pub ready: bool,
    /// The pod's IPs, primary first.
    pub ips: Vec<String>,
    /// Its attempt number.
    pub attempt: u32,
}

/// A pod's sandboxes and containers in the runtime.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    /// The newest sandbox.
    pub sandbox: Option<SandboxView>,
    /// Ids of older sandboxes.
    pub old_sandboxes: Vec<String>,
    /// Container statuses by container name, newest attempt first.
    pub containers: HashMap<String, Vec<cri::ContainerStatus>>,
}

impl PodView {
    /// Reads the pod with `uid` from the runtime.
    pub async fn observe(cri: &Cri, uid: &str) -> Result<Self> {
        let mut sandboxes = cri.list_pod_sandboxes(labels::of_pod(uid)).await?;
        sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let mut view = PodView::default();
        let mut iter = sandboxes.into_iter();
        if let Some(s) = iter.next() {
            let ready = s.state == cri::PodSandboxState::SandboxReady as i32;
            let mut ips = Vec::new();
            if ready
                && let Some(st) = cri.pod_sandbox_status(&s.id).await?
                && let Some(net) = st.network
            {
                if !net.ip.is_empty() {
                    ips.push(net.ip);
                }
                ips.extend(net.additional_ips.into_iter().map(|i| i.ip));
            }
            view.sandbox = Some(SandboxView {
                id: s.id,
                ready,
                ips,
                attempt: s.metadata.map(|m| m.attempt).unwrap_or(0),
            });
        }
        view.old_sandboxes = iter.map(|s| s.id).collect();
        for c in cri.list_containers(labels::of_pod(uid)).await? {
            let Some(status) = cri.container_status(&c.id).await? else {
                continue;
            };
            let name = status
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            view.containers.entry(name).or_default().push(status);
        }
        for list in view.containers.values_mut() {
            list.sort_by_key(|s| {
                std::cmp::Reverse((
                    s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
                    s.created_at,
                ))
            });
        }
        Ok(view)
    }

    /// The newest container named `name`.
    pub fn latest(&self, name: &str) -> Option<&cri::ContainerStatus> {
        self.containers.get(name).and_then(|l| l.first())
    }

    /// The one before it (for `lastState`).
    pub fn previous(&self, name: &str) -> Option<&cri::ContainerStatus> {
        self.containers.get(name).and_then(|l| l.get(1))
    }
}

/// The container's CRI state.
pub fn state(s: &cri::ContainerStatus) -> cri::ContainerState {
    cri::ContainerState::try_from(s.state).unwrap_or(cri::ContainerState::ContainerUnknown)
}

/// Its restart count (CRI attempt).
pub fn attempt(s: &cri::ContainerStatus) -> u32 {
    s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0)
}
