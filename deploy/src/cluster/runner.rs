//! Bringing one component up idempotently: leave it alone when the process
//! its pid file names is still ours and running, otherwise check its ports,
//! start it detached and wait until its [`Probe`] passes, failing early with
//! the tail of its log if it exits meanwhile.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use super::components::{Component, Probe};
use super::layout::ClusterDir;
use super::{ports, process};

/// How often a probe is retried.
const POLL: Duration = Duration::from_millis(100);
/// How long one probe attempt may take.
const ATTEMPT: Duration = Duration::from_secs(5);
/// Log lines shown when a component fails to start.
const TAIL_LINES: usize = 25;

/// What [`ensure_running`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The component was already running; nothing was started.
    AlreadyRunning,
    /// It was started now.
    Started,
}

/// True when the component's pid file names a process that is ours and
/// running.
pub fn is_running(dir: &ClusterDir, name: &str) -> bool {
    process::read_pid_file(&dir.pid_file(name))
        .is_some_and(|record| process::is_ours(&record, &dir.root))
}

/// Makes sure `component` runs and is up, starting it if it does not run;
/// waits for its probe until `deadline`.
pub async fn ensure_running(
    dir: &ClusterDir,
    component: &Component,
    client: &kube::Client,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    let pid_file = dir.pid_file(&component.name);
    if let Some(record) = process::read_pid_file(&pid_file)
        && process::is_ours(&record, &dir.root)
    {
        wait_up(dir, component, &record, client, deadline).await?;
        return Ok(Outcome::AlreadyRunning);
    }
    for port in &component.ports {
        ports::ensure_free(*port, &component.name, &dir.name)?;
    }
    let record = process::spawn_detached(&component.launch)
        .with_context(|| format!("starting {}", component.name))?;
    process::write_pid_file(&pid_file, &record)?;
    wait_up(dir, component, &record, client, deadline).await?;
    Ok(Outcome::Started)
}

async fn wait_up(
    dir: &ClusterDir,
    component: &Component,
    record: &process::PidRecord,
    client: &kube::Client,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        if probe(&component.probe, client).await {
            return Ok(());
        }
        if !process::is_alive(record) {
            bail!(
                "{} exited while starting (cluster {:?}); last lines of {}:\n{}",
                component.name,
                dir.name,
                component.launch.log.display(),
                log_tail(&component.launch.log, TAIL_LINES)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "{} did not come up in time (raise --wait, or see {}); last lines of its log:\n{}",
                component.name,
                component.launch.log.display(),
                log_tail(&component.launch.log, TAIL_LINES)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One attempt of `probe`; false on any failure.
pub async fn probe(probe: &Probe, client: &kube::Client) -> bool {
    let attempt = async {
        match probe {
            Probe::EtcdHealth { port } => etcd_healthy(*port).await,
            Probe::ApiServerReady => apiserver_ready(client).await,
            Probe::Listening { addr } => TcpStream::connect(addr).await.is_ok(),
            Probe::Socket { path } => tokio::net::UnixStream::connect(path).await.is_ok(),
        }
    };
    timeout(ATTEMPT, attempt).await.unwrap_or(false)
}

async fn etcd_healthy(port: u16) -> bool {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if conn.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = String::new();
    conn.read_to_string(&mut response).await.is_ok()
        && response.replace(' ', "").contains("\"health\":\"true\"")
}

async fn apiserver_ready(client: &kube::Client) -> bool {
    for path in ["/readyz", "/api/v1/namespaces/default"] {
        let Ok(request) = http::Request::get(path).body(Vec::new()) else {
            return false;
        };
        if client.request_text(request).await.is_err() {
            return false;
        }
    }
    true
}

/// The last `lines` lines of a log file's latest run (or why it cannot be
/// read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let run_start = all
                .iter()
                .rposition(|l| l.starts_with(process::LOG_RUN_MARKER))
                .map_or(0, |i| i + 1);
            let from = all.len().saturating_sub(lines).max(run_start);
            all[from..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_logs() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        std::fs::write(&log, "1\n2\n3\n").unwrap();
        assert_eq!(log_tail(&log, 2), "2\n3");
        assert_eq!(log_tail(&log, 10), "1\n2\n3");
        let runs = format!("old\n{}x ---\nnew1\nnew2\n", process::LOG_RUN_MARKER);
        std::fs::write(&log, runs).unwrap();
        assert_eq!(log_tail(&log, 10), "new1\nnew2");
        assert_eq!(log_tail(&log, 1), "new2");
        assert!(log_tail(&dir.path().join("none"), 2).contains("cannot read"));
    }
}
