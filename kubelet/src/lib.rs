//! The Capstan kubelet: registers its Node, keeps the node Lease and
//! status current, and runs the pods bound to the node on a CRI runtime
//! (containerd), reporting their status as upstream's kubelet does.
//!
//! - [`cri`]: the CRI client and the labels put on sandboxes/containers.
//! - [`node`]: registration, node status, Lease, pod CIDR to the runtime.
//! - [`pods`]: the pod watch, one worker per pod, sandbox and container
//!   configs, environment, images, restart back-off.
//! - [`status`]: the pod status computed from the runtime's view.
//! - [`images_gc`]: removing unused images when the disk fills up.
//! - [`volumes`]: pod volumes on the node and the containers' mounts.
//! - [`server`]: the HTTPS port the apiserver calls for logs, exec,
//!   attach and port-forward.

pub mod cri;
pub mod images_gc;
pub mod node;
pub mod options;
pub mod pods;
pub mod server;
pub mod status;
pub mod time;
pub mod volumes;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};

use node::machine::{self, Machine};
use node::status::{NodeIdentity, parse_labels, parse_taints};
use options::Options;
use pods::sandbox::SandboxSettings;
use pods::worker::Context;

/// Runs the kubelet until SIGINT/SIGTERM.
pub async fn run(opts: Options) -> Result<()> {
    let client = capstan_component_base::client::client(opts.kubeconfig.as_deref()).await?;
    let cri = cri::Cri::connect(&opts.container_runtime_endpoint)?;
    let version = loop {
        match cri.version().await {
            Ok(v) => break v,
            Err(e) => {
                tracing::warn!(endpoint = %opts.container_runtime_endpoint, "waiting for the container runtime: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!(runtime = %version.runtime_name, version = %version.runtime_version, "connected to the container runtime");
    let name = opts
        .hostname_override
        .clone()
        .unwrap_or_else(machine::hostname);
    let node_ip = opts.node_ip.clone().unwrap_or_else(machine::detect_node_ip);
    let id = NodeIdentity {
        name: name.clone(),
        ip: node_ip.clone(),
        labels: parse_labels(&opts.node_labels)?,
        taints: parse_taints(&opts.register_with_taints).context("--register-with-taints")?,
        max_pods: opts.max_pods,
        port: opts.port,
        runtime_version: format!("{}://{}", version.runtime_name, version.runtime_version),
    };
    std::fs::create_dir_all(&opts.root_dir)
        .with_context(|| format!("creating --root-dir {}", opts.root_dir.display()))?;
    let m = Machine::sample(&opts.root_dir);
    let agent = node::NodeAgent::new(
        client.clone(),
        cri.clone(),
        id,
        opts.root_dir.clone(),
        opts.pod_cidr.clone(),
        opts.node_status_update_frequency,
        opts.node_status_report_frequency,
    );
    let node_task = tokio::spawn(agent.run());
    anyhow::ensure!(
        opts.image_gc_low_threshold <= opts.image_gc_high_threshold,
        "--image-gc-low-threshold ({}) must not be greater than --image-gc-high-threshold ({})",
        opts.image_gc_low_threshold,
        opts.image_gc_high_threshold
    );
    let gc_task = tokio::spawn(images_gc::run(
        cri.clone(),
        images_gc::Thresholds {
            high: opts.image_gc_high_threshold,
            low: opts.image_gc_low_threshold,
        },
    ));
    let events = capstan_component_base::events::EventSink::new(
        client.clone(),
        pods::events::COMPONENT,
        &name,
    );
    if !opts.resolv_conf.as_os_str().is_empty() {
        // Upstream's CheckLimitsForResolvConf: a warning on the Node when
        // pods' search lines will be cut.
        let problem = match pods::dns::host_resolv_conf(&opts.resolv_conf) {
            Ok(Some(host)) => {
                pods::dns::check_host_limits(&opts.resolv_conf, &host, &opts.cluster_domain)
            }
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if let Some(message) = problem {
            tracing::warn!("{message}");
            events.warning(
                pods::events::node_ref(&name),
                "CheckLimitsForResolvConf",
                "CheckLimitsForResolvConf",
                message,
            );
        }
    }
    let ctx = Arc::new(Context {
        node_name: name.clone(),
        services: pods::services::ServiceLister::spawn(client.clone()),
        events,
        client: client.clone(),
        cri,
        node_ip: node_ip.clone(),
        runtime_name: version.runtime_name.clone(),
        sandbox: SandboxSettings {
            pod_log_dir: opts.pod_log_dir.clone(),
            cluster_dns: opts.cluster_dns.clone(),
            cluster_domain: opts.cluster_domain.clone(),
            cgroup_parent: opts.cgroup_root.clone(),
            host_resolv_conf: opts.resolv_conf.clone(),
            node_ips: vec![node_ip.clone()],
        },
        node_milli_cpu: (m.cpus * 1000) as i64,
        node_memory: m.memory_bytes as i64,
        volumes: volumes::Volumes::new(client.clone(), &opts.root_dir, opts.sync_frequency),
    });
    let server_ctx = Arc::new(server::ServerContext {
        client: ctx.client.clone(),
        cri: ctx.cri.clone(),
        node_name: name.clone(),
    });
    let settings = server::ServerSettings {
        address: opts.address.clone(),
        port: opts.port,
        tls_cert: opts
            .tls_cert_file
            .clone()
            .zip(opts.tls_private_key_file.clone()),
        client_ca: opts.client_ca_file.clone(),
        hosts: vec![name.clone(), ctx.node_ip.clone()],
    };
    let server_task = tokio::spawn(async move {
        if let Err(e) = server::serve(server_ctx, settings, std::future::pending()).await {
            tracing::error!("the kubelet API server stopped: {e:#}");
        }
    });
    let statics = opts.pod_manifest_path.clone().map(|dir| {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(pods::static_pods::run(
            dir,
            name.clone(),
            ctx.client.clone(),
            opts.file_check_frequency,
            tx,
        ));
        rx
    });
    let pods_task = tokio::spawn(pods::run(ctx, name, statics));
    capstan_component_base::shutdown_signal().await;
    tracing::info!("shutting down; pods keep running and are adopted at the next start");
    node_task.abort();
    gc_task.abort();
    pods_task.abort();
    server_task.abort();
    Ok(())
}
