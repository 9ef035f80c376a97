//! Starting and stopping what a test needs: [`Etcd`], [`ApiServer`], and a
//! [`ControlPlane`] of both with PKI and kubeconfigs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use capstan::kubeconfig::Kubeconfig;
use capstan::pki::{self, PkiOptions};

use crate::wait;

/// The kubectl every test drives by default (the newest installed).
pub const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
/// An older kubectl, to keep older clients working.
pub const KUBECTL_OLD: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.30";
/// kubectl 1.27: reads `/openapi/v2` (protobuf) before `create -f`,
/// `apply -f` and `explain`, and stops without it.
pub const KUBECTL_1_27: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";
/// kubectl 1.28: the last minor that still needs `/openapi/v2` to start.
pub const KUBECTL_1_28: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.28";

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A workspace binary built in the same profile as the running program:
/// next to it (a harness binary) or one level up (a test in `deps/`).
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable has no directory")?;
    for candidate in [
        dir.join(name),
        dir.parent().map(|p| p.join(name)).unwrap_or_default(),
    ] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "{name} is not built next to {}: run `cargo build --workspace --bins` (with --release for benchmarks) first",
        exe.display()
    )
}

/// A child process killed (and reaped) on drop.
pub struct Process {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl Process {
    /// Starts `cmd` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Self> {
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Process {
            child: Some(child),
            name: name.into(),
            log,
        })
    }

    /// Kills the process and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The tail of the process log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!("--- {} log ---\n{}", self.name, lines[from..].join("\n"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real etcd on loopback with its own data directory.
pub struct Etcd {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    process: Process,
}

impl Etcd {
    /// Starts etcd in `dir` and waits until it answers.
    pub async fn start(dir: &Path) -> Result<Self> {
        let client = free_port()?;
        let peer = free_port()?;
        let endpoint = format!("http://127.0.0.1:{client}");
        let mut cmd = Command::new("etcd");
        cmd.arg("--data-dir")
            .arg(dir.join("etcd-data"))
            .arg("--listen-client-urls")
            .arg(&endpoint)
            .arg("--advertise-client-urls")
            .arg(&endpoint)
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{peer}"))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://127.0.0.1:{peer}"))
            .arg("--initial-cluster")
            .arg(format!("default=http://127.0.0.1:{peer}"))
            .arg("--log-level")
            .arg("warn");
        let process = Process::spawn("etcd", cmd, dir.join("etcd.log"))?;
        let etcd = Etcd { endpoint, process };
        let ep = etcd.endpoint.clone();
        wait::until("etcd to answer", Duration::from_secs(20), || {
            let ep = ep.clone();
            async move {
                let mut c = etcd_client::Client::connect([ep], None).await.ok()?;
                c.status().await.ok().map(|_| ())
            }
        })
        .await
        .with_context(|| etcd.process.log_tail())?;
        Ok(etcd)
    }

    /// Stops etcd (its data stays until the fixture is dropped).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// The value of one of etcd's own Prometheus metrics (from `/metrics`
    /// on its client URL).
    pub async fn metric(&self, name: &str) -> Result<f64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut text = String::new();
        conn.read_to_string(&mut text).await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .with_context(|| format!("etcd metric {name} not found"))?
            .trim()
            .parse::<f64>()
            .with_context(|| format!("etcd metric {name} is not a number"))
    }

    /// A client of this etcd.
    pub async fn client(&self) -> Result<etcd_client::Client> {
        Ok(etcd_client::Client::connect([self.endpoint.clone()], None).await?)
    }
}

/// A running `capstan-apiserver`.
pub struct ApiServer {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Extra flags it was started with (kept for restarts).
    pub extra_args: Vec<String>,
    /// The address it listens on (loopback unless started with
    /// [`ControlPlane::start_at`]).
    pub address: String,
    port: u16,
    process: Process,
}

/// etcd + apiserver + PKI: the control plane a test talks to.
pub struct ControlPlane {
    /// Scratch directory (PKI, logs, data); removed on drop.
    pub dir: tempfile::TempDir,
    /// The etcd.
    pub etcd: Etcd,
    /// The apiserver.
    pub apiserver: ApiServer,
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// A kubeconfig with the CA but no client certificate.
    pub anonymous_kubeconfig: PathBuf,
}

fn start_apiserver(
    dir: &Path,
    etcd: &str,
    address: &str,
    port: u16,
    extra: &[String],
) -> Result<Process> {
    let pki = dir.join("pki");
    let mut cmd = Command::new(binary("capstan-apiserver")?);
    cmd.arg("--etcd-servers")
        .arg(etcd)
        .arg("--bind-address")
        .arg(address)
        .arg("--secure-port")
        .arg(port.to_string())
        .arg("--tls-cert-file")
        .arg(pki.join("apiserver.crt"))
        .arg("--tls-private-key-file")
        .arg(pki.join("apiserver.key"))
        .arg("--client-ca-file")
        .arg(pki.join("ca.crt"))
        .arg("--kubelet-client-certificate")
        .arg(pki.join(pki::APISERVER_KUBELET_CLIENT_CERT))
        .arg("--kubelet-client-key")
        .arg(pki.join(pki::APISERVER_KUBELET_CLIENT_KEY))
        .args(extra)
        .env("RUST_LOG", "info");
    Process::spawn(
        "capstan-apiserver",
        cmd,
        dir.join(format!("apiserver-{}.log", free_port()?)),
    )
}

impl ControlPlane {
    /// Starts etcd and an apiserver (with `extra` flags) and waits until
    /// the apiserver is ready.
    pub async fn start(extra: &[&str]) -> Result<Self> {
        Self::start_at("127.0.0.1", extra).await
    }

    /// Like [`ControlPlane::start`] with the apiserver listening on (and
    /// its kubeconfigs and serving certificate naming) `address`, an IPv4
    /// address of this host: a veth end a test made, so that components
    /// inside network namespaces can reach it.
    pub async fn start_at(address: &str, extra: &[&str]) -> Result<Self> {
        capstan_component_base_install();
        let dir = tempfile::tempdir()?;
        let etcd = Etcd::start(dir.path()).await?;
        let port = free_port()?;
        let url = format!("https://{address}:{port}");
        pki::init(&PkiOptions {
            dir: dir.path().join("pki"),
            server: url.clone(),
            hosts: vec![],
        })?;
        let kubeconfig = dir.path().join("pki").join("admin.kubeconfig");
        let mut anonymous = Kubeconfig::from_yaml(&std::fs::read_to_string(&kubeconfig)?)?;
        for u in &mut anonymous.users {
            u.user.client_certificate_data = None;
            u.user.client_key_data = None;
        }
        let anonymous_kubeconfig = dir.path().join("anonymous.kubeconfig");
        std::fs::write(&anonymous_kubeconfig, anonymous.to_yaml()?)?;
        let extra_args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let process = start_apiserver(dir.path(), &etcd.endpoint, address, port, &extra_args)?;
        let cp = ControlPlane {
            apiserver: ApiServer {
                url,
                extra_args,
                address: address.to_string(),
                port,
                process,
            },
            etcd,
            kubeconfig,
            anonymous_kubeconfig,
            dir,
        };
        cp.wait_ready().await?;
        Ok(cp)
    }

    /// Waits until `/readyz` answers 200 and the system namespaces exist.
    pub async fn wait_ready(&self) -> Result<()> {
        let client = self.client().await?;
        wait::until("the apiserver to be ready", Duration::from_secs(30), || {
            let client = client.clone();
            async move {
                let req = http::Request::get("/api/v1/namespaces/default")
                    .body(Vec::new())
                    .ok()?;
                client.request_text(req).await.ok().map(|_| ())
            }
        })
        .await
        .with_context(|| self.apiserver.process.log_tail())
    }

    /// The last lines of the apiserver's log, for failure messages.
    pub fn apiserver_log_tail(&self) -> String {
        self.apiserver.process.log_tail()
    }

    /// Stops the apiserver and starts it again on the same port and etcd.
    pub async fn restart_apiserver(&mut self) -> Result<()> {
        self.apiserver.process.stop();
        self.apiserver.process = start_apiserver(
            self.dir.path(),
            &self.etcd.endpoint,
            &self.apiserver.address,
            self.apiserver.port,
            &self.apiserver.extra_args,
        )?;
        self.wait_ready().await
    }

    /// Starts a `capstan-scheduler` against this apiserver with the admin
    /// kubeconfig, its HTTPS health/metrics port on loopback, and `extra`
    /// flags. Returns the process (stopped on drop) and that port.
    pub fn start_scheduler(&self, extra: &[&str]) -> Result<(Process, u16)> {
        let port = free_port()?;
        let mut cmd = Command::new(binary("capstan-scheduler")?);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .args(extra)
            .env("RUST_LOG", "info,capstan_scheduler=debug");
        let log = self.dir.path().join(format!("scheduler-{port}.log"));
        Ok((Process::spawn("capstan-scheduler", cmd, log)?, port))
    }

    /// Starts a `capstan-controller-manager` against this apiserver with
    /// the admin kubeconfig, its HTTPS health/metrics port on loopback,
    /// and `extra` flags. Returns the process (stopped on drop) and that
    /// port.
    pub fn start_controller_manager(&self, extra: &[&str]) -> Result<(Process, u16)> {
        let port = free_port()?;
        let mut cmd = Command::new(binary("capstan-controller-manager")?);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .args(extra)
            .env("RUST_LOG", "info,capstan_controller_manager=debug");
        let log = self
            .dir
            .path()
            .join(format!("controller-manager-{port}.log"));
        Ok((
            Process::spawn("capstan-controller-manager", cmd, log)?,
            port,
        ))
    }

    /// Starts a `capstan-dns` against this apiserver with the admin
    /// kubeconfig, DNS on UDP and TCP `127.0.0.1:<port>`, plain-HTTP
    /// health/metrics on another loopback port, forwarding to the
    /// nameservers of `resolv_conf`, and `extra` flags. Returns the
    /// process (stopped on drop), the DNS port and the health port.
    pub fn start_dns(&self, resolv_conf: &Path, extra: &[&str]) -> Result<(Process, u16, u16)> {
        let port = free_port()?;
        let mut health = free_port()?;
        while health == port {
            health = free_port()?;
        }
        let mut cmd = Command::new(binary("capstan-dns")?);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--health-address=127.0.0.1:{health}"))
            .arg("--resolv-conf")
            .arg(resolv_conf)
            .args(extra)
            .env("RUST_LOG", "info,capstan_dns=debug");
        let log = self.dir.path().join(format!("dns-{port}.log"));
        Ok((Process::spawn("capstan-dns", cmd, log)?, port, health))
    }

    /// An admin `kube` client.
    pub async fn client(&self) -> Result<kube::Client> {
        client_from(&self.kubeconfig).await
    }

    /// A client that presents no certificate.
    pub async fn anonymous_client(&self) -> Result<kube::Client> {
        client_from(&self.anonymous_kubeconfig).await
    }

    /// Runs a kubectl binary with the admin kubeconfig; returns its output.
    pub fn kubectl_with(&self, kubectl: &str, args: &[&str]) -> Result<std::process::Output> {
        self.kubectl_env(kubectl, args, &[])
    }

    /// Like [`ControlPlane::kubectl_with`] with extra environment
    /// variables (`KUBE_EDITOR` for `kubectl edit`).
    pub fn kubectl_env(
        &self,
        kubectl: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<std::process::Output> {
        Command::new(kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .envs(env.iter().copied())
            .output()
            .with_context(|| format!("running {kubectl}"))
    }

    /// Runs the default kubectl and returns stdout, failing with its
    /// stderr when it exits non-zero.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_ok(KUBECTL, args)
    }

    /// Like [`ControlPlane::kubectl`] with a chosen kubectl binary.
    pub fn kubectl_ok(&self, kubectl: &str, args: &[&str]) -> Result<String> {
        let out = self.kubectl_with(kubectl, args)?;
        if !out.status.success() {
            bail!(
                "{kubectl} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl_with(KUBECTL, args)?;
        if out.status.success() {
            bail!(
                "kubectl {} unexpectedly succeeded: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Writes a file in the scratch dir (a manifest) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> Result<String> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text)?;
        Ok(path.to_string_lossy().into_owned())
    }
}

/// GETs a path on a component's HTTPS health/metrics port (self-signed
/// certificate, so not verified) on loopback.
pub async fn https_get(port: u16, path: &str) -> Result<String> {
    let out = tokio::process::Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "5",
            &format!("https://127.0.0.1:{port}{path}"),
        ])
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "curl {path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The value of the Prometheus sample line that starts with `prefix`.
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn client_from(path: &Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    // Tests look at the server's own answers (429, 503, ...), not at what
    // a retrying client eventually gets.
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}

fn capstan_component_base_install() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
