//! One pod's worker (upstream's pod worker + `SyncPod`): every time the
//! pod changes, and every second besides, it compares the pod with what
//! the runtime has and takes the next steps — a sandbox, init containers
//! one at a time (sidecars left running), app containers, restarts by
//! `restartPolicy` with back-off — then writes the status if it changed.
//! When the pod is being deleted it stops everything with the grace
//! period and removes the pod from the API.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio::sync::watch;

use super::backoff::Backoff;
use super::env::{ApiSources, PodFacts};
use super::events::{container_ref, pod_ref};
use super::probes::{Outcome, Prober};
use super::sandbox::SandboxSettings;
use super::services::ServiceLister;
use super::view::{self, PodView};
use super::{container, dns, env, hosts, images, lifecycle, sandbox, static_pods};
use crate::cri::Cri;
use crate::status::{self, Inputs, Waiting, is_sidecar};
use crate::volumes::PodVolumes;
use capstan_component_base::events::EventSink;

/// How often a pod is re-synced without a change (upstream's PLEG
/// relists every second).
pub const RESYNC: Duration = Duration::from_secs(1);
/// Upstream's smallest grace period for stopping containers.
pub const MIN_GRACE_SECONDS: i64 = 2;

/// What every pod worker shares.
pub struct Context {
    /// API client.
    pub client: kube::Client,
    /// The runtime.
    pub cri: Cri,
    /// This node's IP (hostIP, and podIP on the host network).
    pub node_ip: String,
    /// The runtime's name in container ids (`containerd`).
    pub runtime_name: String,
    /// Node-wide sandbox settings.
    pub sandbox: SandboxSettings,
    /// Allocatable CPU in millicores, for `resourceFieldRef`.
    pub node_milli_cpu: i64,
    /// Allocatable memory in bytes.
    pub node_memory: i64,
    /// The node's pod volumes.
    pub volumes: crate::volumes::Volumes,
    /// Where Events go (reported as `kubelet` from this node).
    pub events: EventSink,
    /// The Node's name (Events about the node).
    pub node_name: String,
    /// All Services, for containers' Service environment variables.
    pub services: ServiceLister,
}

/// A Go-style duration (`10s`, `1m20s`, `5m0s`), as upstream prints
/// back-off delays.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether a container was made from another spec than `c` (upstream's
/// `containerChanged`: the hash annotation differs).
fn changed(s: &cri::ContainerStatus, c: &Container) -> bool {
    s.annotations
        .get(crate::cri::labels::CONTAINER_HASH)
        .is_some_and(|h| *h != container::spec_hash(c))
}

fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

struct Worker {
    ctx: Arc<Context>,
    uid: String,
    backoff: Backoff,
    image_backoff: Backoff,
    image_failed_at: HashMap<String, i64>,
    waiting: Waiting,
    last_written: Option<PodStatus>,
    prober: Prober,
    probes: HashMap<String, Outcome>,
    killing: HashSet<String>,
    volumes: PodVolumes,
    sandbox_error: Option<String>,
}

/// Runs the worker of the pod with `uid` until the pod is gone and cleaned
/// up, or the sender is dropped. `None` in the channel means the pod was
/// removed from the API.
pub async fn run(ctx: Arc<Context>, uid: String, mut rx: watch::Receiver<Option<Arc<Pod>>>) {
    let mut w = Worker {
        ctx,
        uid,
        backoff: Backoff::default(),
        image_backoff: Backoff::default(),
        image_failed_at: HashMap::new(),
        waiting: Waiting::new(),
        last_written: None,
        prober: Prober::default(),
        probes: HashMap::new(),
        killing: HashSet::new(),
        volumes: PodVolumes::new(),
        sandbox_error: None,
    };
    loop {
        let pod = rx.borrow_and_update().clone();
        let result = match &pod {
            None => w.teardown(None).await.map(|()| true),
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                w.teardown(Some(p)).await.map(|()| true)
            }
            Some(p) => w.sync(p).await.map(|()| false),
        };
        match result {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => tracing::warn!(pod_uid = %w.uid, "syncing pod failed: {e:#}"),
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

impl Worker {
    /// Records the Warning Events forming the pod's DNS config gave.
    fn dns_events(&self, pod: &Pod, warnings: Vec<dns::Warning>) {
        for w in warnings {
            tracing::warn!(pod = %pod_name(pod), reason = w.reason, "{}", w.message);
            let regarding = match w.subject {
                dns::Subject::Pod => pod_ref(pod),
                dns::Subject::Node => super::events::node_ref(&self.ctx.node_name),
            };
            self.ctx
                .events
                .warning(regarding, w.reason, "SyncPod", w.message);
        }
    }

    fn api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }

    async fn sync(&mut self, pod: &Pod) -> Result<()> {
        let cri = self.ctx.cri.clone();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let mut view = PodView::observe(&cri, &self.uid).await?;
        if matches!(phase, Some("Succeeded" | "Failed")) {
            // A finished pod runs nothing; its containers stay for logs.
            if let Some(s) = view.sandbox.as_ref().filter(|s| s.ready) {
                self.stop_containers(pod, &view, 0).await;
                cri.stop_pod_sandbox(&s.id).await?;
            }
            return Ok(());
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let volume_facts = PodFacts {
            host_ip: self.ctx.node_ip.clone(),
            node_milli_cpu: self.ctx.node_milli_cpu,
            node_memory: self.ctx.node_memory,
            ..Default::default()
        };
        match self.ctx.volumes.prepare(pod, &volume_facts).await {
            Ok(v) => self.volumes = v,
            Err(e) => {
                // The pod waits in ContainerCreating until its volumes can
                // be set up, as upstream's volume manager holds it.
                self.ctx.events.warning(
                    super::events::pod_ref(pod),
                    "FailedMount",
                    "SetUpVolume",
                    e.0.clone(),
                );
                self.write_status(pod, &view).await?;
                anyhow::bail!("{}", e.0);
            }
        }
        if !view.sandbox.as_ref().is_some_and(|s| s.ready) {
            let attempt = view.sandbox.as_ref().map(|s| s.attempt + 1).unwrap_or(0);
            if let Some(old) = &view.sandbox {
                tracing::info!(pod = %pod_name(pod), "pod sandbox changed, it will be killed and re-created");
                self.ctx.events.normal(
                    pod_ref(pod),
                    "SandboxChanged",
                    "SyncPod",
                    "Pod sandbox changed, it will be killed and re-created.".into(),
                );
                self.stop_containers(pod, &view, 0).await;
                cri.stop_pod_sandbox(&old.id).await?;
            }
            let created = match sandbox::config(pod, attempt, &self.ctx.sandbox) {
                Ok((config, warnings)) => {
                    self.dns_events(pod, warnings);
                    std::fs::create_dir_all(&config.log_directory)?;
                    cri.run_pod_sandbox(config)
                        .await
                        .map_err(|e| format!("{e:#}"))
                }
                Err(e) => Err(e),
            };
            if let Err(e) = created {
                let message = format!("Failed to create pod sandbox: {e}");
                if self.sandbox_error.as_ref() != Some(&message) {
                    self.ctx.events.warning(
                        pod_ref(pod),
                        "FailedCreatePodSandBox",
                        "CreatePodSandbox",
                        message.clone(),
                    );
                    self.sandbox_error = Some(message);
                }
                self.write_status(pod, &view).await?;
                anyhow::bail!("failed to create pod sandbox: {e}");
            }
            self.sandbox_error = None;
            tracing::info!(pod = %pod_name(pod), attempt, "started pod sandbox");
            view = PodView::observe(&cri, &self.uid).await?;
        }
        let Some(sb) = view.sandbox.clone() else {
            return Ok(());
        };
        let host_network = spec.host_network.unwrap_or(false);
        let facts = PodFacts {
            host_ip: self.ctx.node_ip.clone(),
            pod_ips: if host_network {
                vec![self.ctx.node_ip.clone()]
            } else {
                sb.ips.clone()
            },
            node_milli_cpu: self.ctx.node_milli_cpu,
            node_memory: self.ctx.node_memory,
        };
        let (sandbox_config, _) = sandbox::config(pod, sb.attempt, &self.ctx.sandbox)
            .map_err(|e| anyhow::anyhow!("generating the sandbox config: {e}"))?;
        let policy = restart_policy(pod).to_string();
        let mut initialized = true;
        for c in spec.init_containers.iter().flatten() {
            let latest = view.latest(&c.name).cloned();
            let state = latest.as_ref().map(view::state);
            if is_sidecar(c) {
                if state == Some(cri::ContainerState::ContainerRunning) {
                    self.waiting.remove(&c.name);
                    continue;
                }
            } else {
                match (&latest, state) {
                    (Some(l), Some(cri::ContainerState::ContainerExited)) if l.exit_code == 0 => {
                        self.waiting.remove(&c.name);
                        continue;
                    }
                    (_, Some(cri::ContainerState::ContainerRunning)) => {
                        initialized = false;
                        break;
                    }
                    (Some(_), Some(cri::ContainerState::ContainerExited)) if policy == "Never" => {
                        initialized = false;
                        break;
                    }
                    _ => {}
                }
            }
            initialized = false;
            self.start_or_restart(pod, c, latest.as_ref(), &sb.id, &sandbox_config, &facts)
                .await;
            break;
        }
        if initialized {
            for c in &spec.containers {
                let latest = view.latest(&c.name).cloned();
                match latest.as_ref().map(view::state) {
                    Some(cri::ContainerState::ContainerRunning)
                        if latest.as_ref().is_some_and(|l| changed(l, c)) =>
                    {
                        // The spec changed (a new image): replace it now.
                        let Some(l) = latest.as_ref() else { continue };
                        let message =
                            format!("Container {} definition changed, will be restarted", c.name);
                        tracing::info!(pod = %pod_name(pod), "{message}");
                        self.ctx.events.normal(
                            container_ref(pod, &c.name),
                            "Killing",
                            "Kill",
                            message,
                        );
                        let grace = spec.termination_grace_period_seconds.unwrap_or(30);
                        cri.stop_container(&l.id, grace).await?;
                        let stopped = cri.container_status(&l.id).await?;
                        self.start_or_restart(
                            pod,
                            c,
                            stopped.as_ref(),
                            &sb.id,
                            &sandbox_config,
                            &facts,
                        )
                        .await;
                    }
                    Some(cri::ContainerState::ContainerRunning) => {
                        self.waiting.remove(&c.name);
                    }
                    Some(cri::ContainerState::ContainerExited)
                        if !should_restart(
                            &policy,
                            latest.as_ref().map(|l| l.exit_code).unwrap_or(0),
                        ) =>
                    {
                        self.waiting.remove(&c.name);
                    }
                    _ => {
                        self.start_or_restart(
                            pod,
                            c,
                            latest.as_ref(),
                            &sb.id,
                            &sandbox_config,
                            &facts,
                        )
                        .await;
                    }
                }
            }
        }
        let view = PodView::observe(&cri, &self.uid).await?;
        let pod_ip = facts.pod_ips.first().cloned().unwrap_or_default();
        self.probe(pod, &view, &pod_ip).await;
        self.write_status(pod, &view).await
    }

    /// Runs the due probes of every running container; a container that
    /// failed liveness or startup is stopped (in the background, with the
    /// pod's grace period) and restarted by a later sync.
    async fn probe(&mut self, pod: &Pod, view: &PodView, pod_ip: &str) {
        let spec = pod.spec.clone().unwrap_or_default();
        let grace = spec.termination_grace_period_seconds.unwrap_or(30);
        let all = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c))
            .chain(spec.containers.iter());
        self.probes.clear();
        for c in all {
            let has = c.startup_probe.is_some()
                || c.liveness_probe.is_some()
                || c.readiness_probe.is_some();
            let Some(s) = view.latest(&c.name) else {
                continue;
            };
            if !has || view::state(s) != cri::ContainerState::ContainerRunning {
                continue;
            }
            let outcome = self.prober.check(&self.ctx.cri, c, s, pod_ip).await;
            for failure in &outcome.failures {
                self.ctx.events.warning(
                    container_ref(pod, &c.name),
                    "Unhealthy",
                    "Probe",
                    failure.clone(),
                );
            }
            if let Some(message) = &outcome.kill
                && self.killing.insert(s.id.clone())
            {
                tracing::info!(pod = %pod_name(pod), container = %c.name, "{message}");
                self.ctx.events.normal(
                    container_ref(pod, &c.name),
                    "Killing",
                    "Kill",
                    message.clone(),
                );
                let cri = self.ctx.cri.clone();
                let id = s.id.clone();
                tokio::spawn(async move {
                    if let Err(e) = cri.stop_container(&id, grace).await {
                        tracing::warn!(container_id = %id, "stopping an unhealthy container failed: {e:#}");
                    }
                });
            }
            self.probes.insert(c.name.clone(), outcome);
        }
    }

    /// Starts `c` for the first time, or again after `latest` ended, once
    /// its back-off allows (else records CrashLoopBackOff).
    async fn start_or_restart(
        &mut self,
        pod: &Pod,
        c: &Container,
        latest: Option<&cri::ContainerStatus>,
        sandbox_id: &str,
        sandbox_config: &cri::PodSandboxConfig,
        facts: &PodFacts,
    ) {
        let attempt = match latest {
            None => 0,
            Some(l) => {
                if view::state(l) == cri::ContainerState::ContainerRunning {
                    return;
                }
                if view::state(l) != cri::ContainerState::ContainerExited {
                    // Created but never started (a failed start): replace it.
                    let _ = self.ctx.cri.stop_container(&l.id, 0).await;
                }
                let finished = l
                    .finished_at
                    .div_euclid(1_000_000_000)
                    .max(l.created_at.div_euclid(1_000_000_000));
                if let Some(delay) = self.backoff.in_backoff_since(&c.name, finished, unix_now()) {
                    let was = self.waiting.get(&c.name).map(|(r, _)| r.as_str());
                    if was != Some("CrashLoopBackOff") {
                        self.ctx.events.warning(
                            container_ref(pod, &c.name),
                            "BackOff",
                            "StartContainer",
                            format!(
                                "Back-off restarting failed container {} in pod {}",
                                c.name,
                                pod_name(pod)
                            ),
                        );
                    }
                    self.waiting.insert(
                        c.name.clone(),
                        (
                            "CrashLoopBackOff".into(),
                            format!(
                                "back-off {} restarting failed container={} pod={}",
                                go_duration(delay),
                                c.name,
                                pod_name(pod)
                            ),
                        ),
                    );
                    return;
                }
                self.backoff.next(&c.name, finished);
                view::attempt(l) + 1
            }
        };
        if let Err((reason, message)) = self
            .start(pod, c, attempt, sandbox_id, sandbox_config, facts)
            .await
        {
            let known = self.waiting.get(&c.name).is_some_and(|(r, _)| *r == reason);
            if !known {
                tracing::warn!(pod = %pod_name(pod), container = %c.name, %reason, "{message}");
                let regarding = container_ref(pod, &c.name);
                let events = &self.ctx.events;
                match reason.as_str() {
                    "ErrImageNeverPull" => {
                        events.warning(regarding, &reason, "PullImage", message.clone())
                    }
                    "ImagePullBackOff" => {
                        events.normal(regarding.clone(), "BackOff", "PullImage", message.clone());
                        events.warning(
                            regarding,
                            "Failed",
                            "PullImage",
                            format!("Error: {reason}"),
                        );
                    }
                    "ErrImagePull" => {
                        events.warning(regarding, "Failed", "PullImage", format!("Error: {reason}"))
                    }
                    _ => events.warning(
                        regarding,
                        "Failed",
                        "StartContainer",
                        format!("Error: {message}"),
                    ),
                }
            }
            self.waiting.insert(c.name.clone(), (reason, message));
            return;
        }
        self.waiting.remove(&c.name);
        // Keep the newest dead attempt (for `logs --previous`), drop older.
        if let Ok(view) = PodView::observe(&self.ctx.cri, &self.uid).await {
            for old in view.containers.get(&c.name).into_iter().flatten() {
                if view::attempt(old) + 1 < attempt
                    && view::state(old) != cri::ContainerState::ContainerRunning
                {
                    let _ = self.ctx.cri.remove_container(&old.id).await;
                }
            }
        }
    }

    async fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        sandbox_id: &str,
        sandbox_config: &cri::PodSandboxConfig,
        facts: &PodFacts,
    ) -> Result<(), (String, String)> {
        let image_name = c.image.clone().unwrap_or_default();
        if let Some(failed) = self.image_failed_at.get(&c.name)
            && self
                .image_backoff
                .in_backoff_since(&c.name, *failed, unix_now())
                .is_some()
        {
            return Err((
                "ImagePullBackOff".into(),
                format!("Back-off pulling image {image_name:?}"),
            ));
        }
        let regarding = container_ref(pod, &c.name);
        let image = match images::ensure(
            &self.ctx.cri,
            &self.ctx.client,
            pod,
            c,
            sandbox_config,
            &self.ctx.events,
            &regarding,
        )
        .await
        {
            Ok(i) => {
                self.image_failed_at.remove(&c.name);
                i
            }
            Err(e) => {
                if e.0 == "ErrImagePull" {
                    let now = unix_now();
                    self.image_backoff.next(&c.name, now);
                    self.image_failed_at.insert(c.name.clone(), now);
                }
                return Err(e);
            }
        };
        let config_error = |e: String| ("CreateContainerConfigError".to_string(), e);
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let links = pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let service_env = self
            .ctx
            .services
            .env(ns, links, !static_pods::is_static(pod))
            .await
            .map_err(config_error)?;
        let sources = ApiSources(self.ctx.client.clone());
        let env = env::environment(pod, c, facts, &sources, &service_env)
            .await
            .map_err(|e| config_error(e.0))?;
        let dir = std::path::Path::new(&sandbox_config.log_directory).join(&c.name);
        let _ = std::fs::create_dir_all(&dir);
        let mut mounts = crate::volumes::mounts(c, &self.volumes).map_err(config_error)?;
        if hosts::should_mount(pod, c, &facts.pod_ips) {
            let (hostname, domain) =
                dns::hostname_and_domain(pod, &self.ctx.sandbox.cluster_domain)
                    .map_err(config_error)?;
            let mount = hosts::ensure(
                &self.ctx.volumes.pod_dir(&self.uid),
                pod,
                &facts.pod_ips,
                &hostname,
                &domain,
                std::path::Path::new(hosts::ETC_HOSTS),
            )
            .map_err(config_error)?;
            mounts.push(mount);
        }
        let config = container::config(pod, c, attempt, env, mounts, &image, self.ctx.node_memory);
        let id = self
            .ctx
            .cri
            .create_container(sandbox_id, config, sandbox_config.clone())
            .await
            .map_err(|e| ("CreateContainerError".to_string(), format!("{e:#}")))?;
        self.ctx.events.normal(
            regarding.clone(),
            "Created",
            "CreateContainer",
            format!("Created container: {}", c.name),
        );
        self.ctx
            .cri
            .start_container(&id)
            .await
            .map_err(|e| ("RunContainerError".to_string(), format!("{e:#}")))?;
        self.ctx.events.normal(
            regarding.clone(),
            "Started",
            "StartContainer",
            format!("Started container {}", c.name),
        );
        if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let pod_ip = facts.pod_ips.first().cloned().unwrap_or_default();
            let limit = Duration::from_secs(grace_seconds(pod).max(1) as u64);
            if let Err(e) = lifecycle::run(&self.ctx.cri, c, hook, &id, &pod_ip, limit).await {
                let message = format!(
                    "PostStartHook failed for Container {:?} in Pod {:?}: {e}",
                    c.name,
                    pod_name(pod)
                );
                self.ctx.events.warning(
                    regarding,
                    "FailedPostStartHook",
                    "PostStartHook",
                    message.clone(),
                );
                let _ = self.ctx.cri.stop_container(&id, 0).await;
                return Err(("PostStartHookError".to_string(), message));
            }
        }
        tracing::info!(pod = %pod_name(pod), container = %c.name, attempt, "started container");
        Ok(())
    }

    /// Stops every running container, app containers before sidecars,
    /// each given `grace` seconds, with upstream's Killing Events.
    async fn stop_containers(&self, pod: &Pod, view: &PodView, grace: i64) {
        let sidecars: HashSet<&str> = pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten())
            .filter(|c| is_sidecar(c))
            .map(|c| c.name.as_str())
            .collect();
        for sidecar_phase in [false, true] {
            let batch: Vec<(&String, &cri::ContainerStatus)> = view
                .containers
                .iter()
                .filter(|(name, _)| sidecars.contains(name.as_str()) == sidecar_phase)
                .flat_map(|(name, list)| list.iter().map(move |s| (name, s)))
                .filter(|(_, s)| view::state(s) == cri::ContainerState::ContainerRunning)
                .collect();
            let pod_ip = pod
                .status
                .as_ref()
                .and_then(|st| st.pod_ip.clone())
                .unwrap_or_default();
            let stop = |(name, s): (&String, &cri::ContainerStatus)| {
                let cri = self.ctx.cri.clone();
                let id = s.id.clone();
                let spec = pod.spec.as_ref().and_then(|sp| {
                    sp.containers
                        .iter()
                        .chain(sp.init_containers.iter().flatten())
                        .find(|c| &c.name == name)
                        .cloned()
                });
                let events = self.ctx.events.clone();
                let regarding = container_ref(pod, name);
                let pod_ip = pod_ip.clone();
                if pod.metadata.name.is_some() {
                    self.ctx.events.normal(
                        container_ref(pod, name),
                        "Killing",
                        "Kill",
                        format!("Stopping container {name}"),
                    );
                }
                async move {
                    let mut grace = grace;
                    if let Some(spec) = &spec {
                        let (left, failure) =
                            lifecycle::pre_stop(&cri, spec, &id, &pod_ip, grace).await;
                        grace = left;
                        if let Some(e) = failure {
                            events.warning(
                                regarding,
                                "FailedPreStopHook",
                                "PreStopHook",
                                format!("PreStopHook failed: {e}"),
                            );
                        }
                    }
                    if let Err(e) = cri.stop_container(&id, grace).await {
                        tracing::warn!(container_id = %id, "stopping container failed: {e:#}");
                    }
                }
            };
            futures::future::join_all(batch.into_iter().map(stop)).await;
        }
    }

    /// Stops and removes everything of the pod; then, when the pod is being
    /// deleted (`Some`), removes it from the API.
    async fn teardown(&mut self, pod: Option<&Pod>) -> Result<()> {
        let view = PodView::observe(&self.ctx.cri, &self.uid).await?;
        let grace = pod.map(grace_seconds).unwrap_or(0);
        if let Some(p) = pod {
            self.stop_containers(p, &view, grace).await;
        } else {
            self.stop_containers(&Pod::default(), &view, grace).await;
        }
        for id in view
            .sandbox
            .iter()
            .map(|s| &s.id)
            .chain(view.old_sandboxes.iter())
        {
            self.ctx.cri.stop_pod_sandbox(id).await?;
            self.ctx.cri.remove_pod_sandbox(id).await?;
        }
        self.ctx.volumes.cleanup(&self.uid);
        let Some(pod) = pod else {
            tracing::info!(pod_uid = %self.uid, "removed the sandbox of a pod no longer in the API");
            return Ok(());
        };
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self
            .api(pod)
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(pod = %pod_name(pod), "pod terminated and deleted");
        Ok(())
    }

    async fn write_status(&mut self, pod: &Pod, view: &PodView) -> Result<()> {
        // A static pod's status lives on its mirror pod.
        let mirrored;
        let pod = if static_pods::is_static(pod) {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            match self.api(pod).get_opt(name).await? {
                Some(m) if static_pods::is_mirror(&m) => {
                    let mut p = pod.clone();
                    p.status = m.status;
                    mirrored = p;
                    &mirrored
                }
                _ => return Ok(()),
            }
        } else {
            pod
        };
        let status = status::pod_status(
            pod,
            &Inputs {
                view,
                waiting: &self.waiting,
                node_ip: &self.ctx.node_ip,
                runtime: &self.ctx.runtime_name,
                probes: &self.probes,
            },
        );
        if pod.status.as_ref() == Some(&status) || self.last_written.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut patch = json!({"status": status});
        // A strategic merge patch merges conditions by type: a reason or
        // message that no longer applies must be removed explicitly.
        if let Some(conds) = patch["status"]["conditions"].as_array_mut() {
            for c in conds.iter_mut().filter_map(|c| c.as_object_mut()) {
                for key in ["reason", "message"] {
                    c.entry(key).or_insert(serde_json::Value::Null);
                }
            }
        }
        match self
            .api(pod)
            .patch_status(
                pod.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.last_written = Some(status);
        Ok(())
    }
}

/// The seconds left to stop a deleting pod's containers: until its
/// deletionTimestamp, at least upstream's minimum of 2.
pub fn grace_seconds(pod: &Pod) -> i64 {
    let remaining = pod
        .metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second() - unix_now())
        .or(pod.metadata.deletion_grace_period_seconds)
        .unwrap_or(30);
    remaining.max(MIN_GRACE_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }

    #[test]
    fn restart_policies() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("OnFailure", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(!should_restart("Never", 1));
    }
}
