//! `capstan create cluster`: PKI, then every step's components (each left
//! alone when already running) and tasks, then readiness of the control
//! plane and of the node, then the kubeconfig.
//! Running it again on a running cluster changes nothing; on a cluster
//! whose processes died it starts them again from the same state.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;

use super::components;
use super::layout::{self, ClusterDir};
use super::lock::ClusterLock;
use super::progress::Progress;
use super::runner;
use super::state::{ClusterState, NodeState, Ports};
use super::{addons, netns, network, node, pki_ready};
use crate::kubeconfig::Kubeconfig;
use crate::kubeconfig::merge;
use crate::pki;

/// What `capstan create cluster` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// The cluster's name.
    pub name: String,
    /// Kubeconfig file to merge the context into (else `$KUBECONFIG`'s
    /// first file, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// How long components may take to come up, in total.
    pub wait: Duration,
    /// How many nodes (node 0 also runs the control plane); `None` keeps
    /// an existing cluster's, or makes one.
    pub nodes: Option<usize>,
}

/// Creates (or restarts, or confirms) a cluster; see the module docs.
pub fn create(opts: &CreateOptions) -> anyhow::Result<()> {
    let home = layout::capstan_home()?;
    let dir = ClusterDir::new(&home, &opts.name)?;
    let _lock = ClusterLock::acquire(&home, &opts.name)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(create_in(&dir, opts)).map_err(|e| {
        if dir.root.exists() {
            e.context(format!(
                "creating cluster {:?} failed; what was started keeps running: run create again once the cause is fixed, or `capstan delete cluster --name {}` to remove it",
                dir.name, dir.name
            ))
        } else {
            e
        }
    })
}

async fn create_in(dir: &ClusterDir, opts: &CreateOptions) -> anyhow::Result<()> {
    capstan_component_base::tls::install_crypto_provider();
    let progress = Progress::new();
    let deadline = Instant::now() + opts.wait;
    let context = layout::context_name(&dir.name);
    let kubeconfig_path = merge::target_path(opts.kubeconfig.as_deref())?;

    let mut state = match ClusterState::load(dir)? {
        Some(state) => state,
        None => ClusterState {
            name: dir.name.clone(),
            ports: Ports::pick()?,
            kubeconfigs: Vec::new(),
            network: None,
            nodes: Vec::new(),
        },
    };
    if state.network.is_none() {
        state.network = Some(network::pick(dir)?);
    }
    if state.nodes.is_empty() {
        let count = opts.nodes.unwrap_or(1);
        network::check_node_count(count)?;
        state.nodes = NodeState::for_cluster(&dir.name, count);
    } else if let Some(asked) = opts.nodes
        && asked != state.nodes.len()
    {
        anyhow::bail!(
            "cluster {:?} exists with {} node(s); delete it (`capstan delete cluster --name {}`) to create it with {asked}",
            dir.name,
            state.nodes.len(),
            dir.name
        );
    }
    let net = state.network()?;
    // Every binary is looked up before anything starts or is written.
    let mut steps = components::control_plane_steps(dir, &state)?;
    steps.extend(node::steps(dir, &state)?);
    let already = steps
        .iter()
        .flat_map(|s| &s.components)
        .all(|c| runner::is_running(dir, &c.name))
        && pki_ready(dir);

    std::fs::create_dir_all(&dir.root)
        .with_context(|| format!("creating {}", dir.root.display()))?;
    state.save(dir)?;

    if already {
        progress.say(&format!(
            "Cluster {:?} is already running; nothing to do.",
            dir.name
        ));
    } else {
        progress.say(&format!("Creating cluster {:?} ...", dir.name));
    }
    let quiet = already;
    step(&progress, quiet, "Preparing nodes", async {
        netns::ensure_bridge(dir, &net)?;
        for n in &state.nodes {
            netns::ensure_node(dir, &net, n.index)?;
        }
        Ok(())
    })
    .await?;
    step(&progress, quiet, "Writing certificates", async {
        write_pki(dir, &state)
    })
    .await?;
    let client = capstan_component_base::client::client(Some(&dir.admin_kubeconfig())).await?;

    for n in &state.nodes {
        node::prepare(&node::node_dir(dir, n))?;
    }
    for s in &steps {
        step(&progress, quiet, &s.title, async {
            for component in &s.components {
                runner::ensure_running(dir, component, &client, deadline).await?;
            }
            match &s.then {
                Some(task) => task.run(),
                None => Ok(()),
            }
        })
        .await?;
    }
    let wait_title = format!("Waiting ≤ {} for control-plane = Ready", human(opts.wait));
    step(
        &progress,
        quiet,
        &wait_title,
        wait_apiserver(&client, deadline),
    )
    .await?;
    step(&progress, quiet, &node::ready_title(&state), async {
        let nodes = node::wait_ready(dir, &state, &client, deadline).await?;
        node::route_pod_networks(dir, &state, &nodes)
    })
    .await?;
    step(
        &progress,
        quiet,
        "Installing cluster DNS",
        addons::install_dns(dir, &state, &client, deadline),
    )
    .await?;

    let entries = cluster_kubeconfig(dir)?;
    merge::merge_into_file(&kubeconfig_path, &entries)?;
    state.remember_kubeconfig(&kubeconfig_path);
    state.save(dir)?;
    progress.say(&format!("Set kubectl context to {context:?}"));
    progress.say(&format!(
        "You can now use your cluster with:\n\nkubectl cluster-info --context {context}{}\n",
        if opts.kubeconfig.is_some() {
            format!(" --kubeconfig {}", kubeconfig_path.display())
        } else {
            String::new()
        }
    ));
    Ok(())
}

/// Runs `work` as a progress step, or silently when `quiet`.
async fn step<F>(progress: &Progress, quiet: bool, title: &str, work: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    if quiet {
        work.await
    } else {
        progress.step(title, work).await
    }
}

/// Waits until the apiserver is ready (every component was probed as it
/// started; this confirms the whole control plane answers at the end).
async fn wait_apiserver(client: &kube::Client, deadline: Instant) -> anyhow::Result<()> {
    loop {
        if runner::probe(&components::Probe::ApiServerReady, client).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("the apiserver did not become ready in time (raise --wait)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates the PKI on first use (the CA and certificates are kept across
/// restarts, so running components keep trusting each other), the
/// kubelet's `system:node` kubeconfig, and the cluster's own kubeconfig.
fn write_pki(dir: &ClusterDir, state: &ClusterState) -> anyhow::Result<()> {
    let server = state.server_url()?;
    if !pki_ready(dir) {
        pki::init(&pki::PkiOptions {
            dir: dir.pki(),
            server: server.clone(),
            // In-cluster clients reach the apiserver through the
            // `kubernetes` Service's first address of the Service range.
            hosts: vec![network::KUBERNETES_SERVICE_IP.to_string()],
        })?;
    }
    // Kept once written, so running components keep their identities.
    for n in &state.nodes {
        let nd = node::node_dir(dir, n);
        std::fs::create_dir_all(&nd.root)
            .with_context(|| format!("creating {}", nd.root.display()))?;
        if !nd.kubelet_kubeconfig().is_file() {
            pki::node_kubeconfig(&dir.pki(), &server, &nd.name, &nd.kubelet_kubeconfig())?;
        }
        if !nd.proxy_kubeconfig().is_file() {
            pki::client_kubeconfig(
                &dir.pki(),
                &server,
                pki::PROXY_USER,
                None,
                &nd.proxy_kubeconfig(),
            )?;
        }
    }
    let yaml = cluster_kubeconfig(dir)?.to_yaml()?;
    pki::write_file(&dir.kubeconfig(), yaml.as_bytes(), 0o600)
}

/// The admin kubeconfig renamed to `capstan-<name>` (cluster, user and
/// context), the entries merged into the user's kubeconfig.
fn cluster_kubeconfig(dir: &ClusterDir) -> anyhow::Result<Kubeconfig> {
    let path = dir.admin_kubeconfig();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut kc = Kubeconfig::from_yaml(&text)?;
    let name = layout::context_name(&dir.name);
    for c in &mut kc.clusters {
        c.name = name.clone();
    }
    for u in &mut kc.users {
        u.name = name.clone();
    }
    for c in &mut kc.contexts {
        c.name = name.clone();
        c.context.cluster = name.clone();
        c.context.user = name.clone();
    }
    kc.current_context = name;
    Ok(kc)
}

/// A duration as kind prints `--wait` (`1m0s`, `30s`).
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_kind_does() {
        assert_eq!(human(Duration::from_secs(30)), "30s");
        assert_eq!(human(Duration::from_secs(120)), "2m0s");
    }
}
