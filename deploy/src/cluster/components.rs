//! The processes of a local cluster and how each is started: etcd, then
//! the control plane (apiserver, scheduler, controller-manager), grouped in
//! [`Step`]s that `create` runs in order. The node's steps come from
//! [`super::node`], so adding containerd and the kubelet is adding steps
//! there, not changing `create` or `delete`.

use std::path::PathBuf;

use super::binaries;
use super::layout::ClusterDir;
use super::ports::loopback;
use super::process::Launch;
use super::state::ClusterState;

/// Component (and pid/log file) name of etcd.
pub const ETCD: &str = "etcd";
/// Component name of the apiserver.
pub const APISERVER: &str = "apiserver";
/// Component name of the scheduler.
pub const SCHEDULER: &str = "scheduler";
/// Component name of the controller-manager.
pub const CONTROLLER_MANAGER: &str = "controller-manager";

/// The control plane's components in start order; `delete` stops them in
/// reverse, after the node's.
pub const CONTROL_PLANE: &[&str] = &[ETCD, APISERVER, SCHEDULER, CONTROLLER_MANAGER];

/// How `create` tells that a started component is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// etcd answers `GET /health` on its client port with `"health":"true"`.
    EtcdHealth {
        /// etcd's client port.
        port: u16,
    },
    /// The apiserver's `/readyz` answers 200 and the `default` namespace
    /// exists (its system namespaces are created).
    ApiServerReady,
    /// Something accepts TCP connections at this address (a loopback
    /// port of the host, or a node's address).
    Listening {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// Something accepts connections on this unix socket (containerd's
    /// gRPC socket, which it opens once its plugins are loaded).
    Socket {
        /// The socket's path.
        path: PathBuf,
    },
}

/// Work a step does after its components are up, described as data so
/// that `create` can ask for the steps before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Build the pause and busybox images under `work` and import them into
    /// the containerd at `socket`, unless both are there already.
    ImportBaseImages {
        /// containerd's socket.
        socket: PathBuf,
        /// Where the image archives are built.
        work: PathBuf,
    },
}

impl Task {
    /// Does the work.
    pub fn run(&self) -> anyhow::Result<()> {
        match self {
            Task::ImportBaseImages { socket, work } => {
                crate::runtime::images::ensure_base_images(socket, work)
            }
        }
    }
}

/// One process of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Its name: the pid and log file names, and what progress lines say.
    pub name: String,
    /// How to start it.
    pub launch: Launch,
    /// Addresses it listens on, checked free before it starts.
    pub ports: Vec<std::net::SocketAddr>,
    /// When it counts as started.
    pub probe: Probe,
}

/// A progress line of `create` and the components it starts, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the progress line says, e.g. `Starting etcd`.
    pub title: String,
    /// Started (unless already running) in order, each waited for.
    pub components: Vec<Component>,
    /// Done after the components are up, on every `create`.
    pub then: Option<Task>,
}

/// Plain-text logs, and error chains without backtraces, so the tail
/// shown when a component fails to start is readable.
pub fn log_env() -> Vec<(String, String)> {
    [
        ("RUST_LOG", "info"),
        ("NO_COLOR", "1"),
        ("RUST_LIB_BACKTRACE", "0"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

/// The control plane's steps: etcd, then apiserver, scheduler and
/// controller-manager. Resolves every binary first, so a missing one is
/// reported before anything starts.
pub fn control_plane_steps(dir: &ClusterDir, state: &ClusterState) -> anyhow::Result<Vec<Step>> {
    let etcd_bin = binaries::etcd()?;
    let apiserver_bin = binaries::component("capstan-apiserver")?;
    let scheduler_bin = binaries::component("capstan-scheduler")?;
    let cm_bin = binaries::component("capstan-controller-manager")?;
    let ports = state.ports;
    let net = state.network()?;
    let pki = dir.pki();
    let etcd_url = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer_url = format!("http://127.0.0.1:{}", ports.etcd_peer);

    let etcd = Component {
        name: ETCD.into(),
        launch: Launch {
            program: etcd_bin,
            args: vec![
                "--name".into(),
                "default".into(),
                "--data-dir".into(),
                dir.etcd_data().into(),
                "--listen-client-urls".into(),
                etcd_url.clone().into(),
                "--advertise-client-urls".into(),
                etcd_url.clone().into(),
                "--listen-peer-urls".into(),
                peer_url.clone().into(),
                "--initial-advertise-peer-urls".into(),
                peer_url.clone().into(),
                "--initial-cluster".into(),
                format!("default={peer_url}").into(),
                "--log-level".into(),
                "warn".into(),
            ],
            env: vec![],
            log: dir.log(ETCD),
            netns: None,
        },
        ports: vec![loopback(ports.etcd_client), loopback(ports.etcd_peer)],
        probe: Probe::EtcdHealth {
            port: ports.etcd_client,
        },
    };

    let apiserver = Component {
        name: APISERVER.into(),
        launch: Launch {
            program: apiserver_bin,
            args: vec![
                "--etcd-servers".into(),
                etcd_url.into(),
                // The nodes' namespaces reach the host's address on the
                // cluster bridge, and so does the host.
                "--bind-address".into(),
                net.host_ip().to_string().into(),
                "--advertise-address".into(),
                net.host_ip().to_string().into(),
                "--secure-port".into(),
                ports.apiserver.to_string().into(),
                "--tls-cert-file".into(),
                pki.join(crate::pki::APISERVER_CERT).into(),
                "--tls-private-key-file".into(),
                pki.join(crate::pki::APISERVER_KEY).into(),
                "--client-ca-file".into(),
                pki.join(crate::pki::CA_CERT).into(),
                // For logs, exec and port-forward through the kubelet.
                "--kubelet-client-certificate".into(),
                pki.join(crate::pki::APISERVER_KUBELET_CLIENT_CERT).into(),
                "--kubelet-client-key".into(),
                pki.join(crate::pki::APISERVER_KUBELET_CLIENT_KEY).into(),
            ],
            env: log_env(),
            log: dir.log(APISERVER),
            netns: None,
        },
        ports: vec![(net.host_ip(), ports.apiserver).into()],
        probe: Probe::ApiServerReady,
    };

    let client_of_apiserver = |name: &'static str, program, port: u16, extra: Vec<String>| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--kubeconfig".into(),
            dir.admin_kubeconfig().into(),
            "--bind-address".into(),
            "127.0.0.1".into(),
            "--secure-port".into(),
            port.to_string().into(),
        ];
        args.extend(extra.into_iter().map(Into::into));
        Component {
            name: name.into(),
            launch: Launch {
                program,
                args,
                env: log_env(),
                log: dir.log(name),
                netns: None,
            },
            ports: vec![loopback(port)],
            probe: Probe::Listening {
                addr: (std::net::Ipv4Addr::LOCALHOST, port).into(),
            },
        }
    };
    // Node IPAM gives every node a /24 of the cluster CIDR as its pod
    // CIDR, which `create` then routes.
    let ipam = vec![
        "--allocate-node-cidrs=true".to_string(),
        format!("--cluster-cidr={}", net.cluster_cidr_text()),
        format!("--node-cidr-mask-size={}", super::network::NODE_CIDR_MASK),
    ];

    Ok(vec![
        Step {
            title: "Starting etcd".into(),
            components: vec![etcd],
            then: None,
        },
        Step {
            title: "Starting control-plane".into(),
            components: vec![
                apiserver,
                client_of_apiserver(SCHEDULER, scheduler_bin, ports.scheduler, Vec::new()),
                client_of_apiserver(CONTROLLER_MANAGER, cm_bin, ports.controller_manager, ipam),
            ],
            then: None,
        },
    ])
}
