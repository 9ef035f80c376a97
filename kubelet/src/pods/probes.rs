//! Container probes as upstream's prober runs them: startup, liveness and
//! readiness, each `exec` (CRI ExecSync), `httpGet` (HTTP/1.1 from the
//! node to the pod IP, success for status 200–399) or `tcpSocket` (a
//! connection opens), on upstream's timing fields (`initialDelaySeconds`,
//! `periodSeconds`, `timeoutSeconds`, `successThreshold`,
//! `failureThreshold`). Readiness starts failed, liveness succeeded and
//! startup unknown; liveness and readiness wait for startup to succeed.
//! The worker asks [`Prober::check`] once per sync for each running
//! container; the answer says whether it is started, ready, or must be
//! killed.

use std::collections::HashMap;
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cri::Cri;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `startupProbe`.
    Startup,
    /// `livenessProbe`.
    Liveness,
    /// `readinessProbe`.
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

#[derive(Debug, Default)]
struct State {
    container_id: String,
    last_run: Option<tokio::time::Instant>,
    successes: i32,
    failures: i32,
    result: Option<bool>,
}

/// What the probes say about a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its startup probe succeeded (or it has none).
    pub started: bool,
    /// Its readiness probe succeeded (or it has none), once started.
    pub ready: bool,
    /// Upstream's message when liveness or startup failed and the
    /// container must be restarted.
    pub kill: Option<String>,
    /// Probes that failed in this check (`Readiness probe failed: ...`),
    /// for Unhealthy Events.
    pub failures: Vec<String>,
}

/// Probe state of one pod's containers.
#[derive(Debug, Default)]
pub struct Prober {
    states: HashMap<(String, Kind), State>,
}

fn probe_of(c: &Container, kind: Kind) -> Option<&Probe> {
    match kind {
        Kind::Startup => c.startup_probe.as_ref(),
        Kind::Liveness => c.liveness_probe.as_ref(),
        Kind::Readiness => c.readiness_probe.as_ref(),
    }
}

impl Prober {
    /// Runs whichever of `c`'s probes are due against its running container
    /// `status` (pod IP `pod_ip`) and says where it stands.
    pub async fn check(
        &mut self,
        cri: &Cri,
        c: &Container,
        status: &cri::ContainerStatus,
        pod_ip: &str,
    ) -> Outcome {
        let started_at = status.started_at.div_euclid(1_000_000_000);
        let mut outcome = Outcome {
            started: true,
            ready: true,
            kill: None,
            failures: Vec::new(),
        };
        for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
            let Some(probe) = probe_of(c, kind) else {
                continue;
            };
            if kind != Kind::Startup && !outcome.started {
                // Liveness and readiness wait for startup.
                if kind == Kind::Readiness {
                    outcome.ready = false;
                }
                continue;
            }
            let state = self.states.entry((c.name.clone(), kind)).or_default();
            if state.container_id != status.id {
                *state = State {
                    container_id: status.id.clone(),
                    ..Default::default()
                };
            }
            let initial_delay = i64::from(probe.initial_delay_seconds.unwrap_or(0));
            let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
            let now = jiff::Timestamp::now().as_second();
            let due = now >= started_at + initial_delay
                && state.last_run.is_none_or(|t| t.elapsed() >= period);
            if due {
                state.last_run = Some(tokio::time::Instant::now());
                let result = run(cri, c, probe, &status.id, pod_ip).await;
                let ok = result.is_ok();
                if let Err(detail) = result {
                    outcome
                        .failures
                        .push(format!("{} probe failed: {detail}", kind.name()));
                }
                if ok {
                    state.successes += 1;
                    state.failures = 0;
                    let needed = if kind == Kind::Readiness {
                        probe.success_threshold.unwrap_or(1)
                    } else {
                        1
                    };
                    if state.successes >= needed {
                        state.result = Some(true);
                    }
                } else {
                    state.failures += 1;
                    state.successes = 0;
                    if state.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                        state.result = Some(false);
                    }
                }
                if !ok {
                    tracing::debug!(container = %c.name, probe = kind.name(), failures = state.failures, "probe failed");
                }
            }
            match kind {
                Kind::Startup => {
                    outcome.started = state.result == Some(true);
                    if state.result == Some(false) {
                        outcome.kill = Some(format!(
                            "Container {} failed startup probe, will be restarted",
                            c.name
                        ));
                    }
                }
                Kind::Liveness => {
                    if state.result == Some(false) {
                        outcome.kill = Some(format!(
                            "Container {} failed liveness probe, will be restarted",
                            c.name
                        ));
                    }
                }
                Kind::Readiness => outcome.ready = state.result == Some(true),
            }
        }
        if !outcome.started {
            outcome.ready = false;
        }
        outcome
    }
}

/// The port a probe names: a number, or a container port's name.
fn port(c: &Container, p: &IntOrString) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok()),
    }
}

/// Runs one probe (or lifecycle hook, see [`super::lifecycle`]) once; the
/// failure's description otherwise.
pub(crate) async fn run(
    cri: &Cri,
    c: &Container,
    probe: &Probe,
    id: &str,
    pod_ip: &str,
) -> Result<(), String> {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let call = cri.exec_sync(id, cmd, timeout.as_secs() as i64);
        return match tokio::time::timeout(timeout + Duration::from_secs(1), call).await {
            Ok(Ok((0, _, _))) => Ok(()),
            Ok(Ok((code, out, err))) => Err(format!(
                "command exited with {code}: {}{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            )
            .trim_end()
            .to_string()),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("command timed out after {}s", timeout.as_secs())),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = tcp.host.clone().unwrap_or_else(|| pod_ip.to_string());
        let port = port(c, &tcp.port).ok_or("the probe names no port of the container")?;
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        return match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if let Some(http) = &probe.http_get {
        let host = http.host.clone().unwrap_or_else(|| pod_ip.to_string());
        let port = port(c, &http.port).ok_or("the probe names no port of the container")?;
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let mut headers = String::new();
        let mut host_header = format!("{host}:{port}");
        for h in http.http_headers.iter().flatten() {
            if h.name.eq_ignore_ascii_case("host") {
                host_header = h.value.clone();
            } else {
                headers.push_str(&format!("{}: {}\r\n", h.name, h.value));
            }
        }
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n{headers}\r\n"
        );
        let get = async {
            let mut conn = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            conn.write_all(request.as_bytes()).await?;
            let mut head = vec![0u8; 64];
            let n = conn.read(&mut head).await?;
            std::io::Result::Ok(String::from_utf8_lossy(&head[..n]).into_owned())
        };
        let url = format!("http://{host}:{port}{path}");
        let head = match tokio::time::timeout(timeout, get).await {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => return Err(format!("Get {url:?}: {e}")),
            Err(_) => return Err(format!("Get {url:?}: context deadline exceeded")),
        };
        let code: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    // A probe with no handler never fails (validation forbids it anyway).
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_ports_resolve_from_the_container() {
        let c: Container = serde_json::from_value(json!({
            "name": "c", "ports": [{"name": "http", "containerPort": 8080}]
        }))
        .unwrap();
        assert_eq!(port(&c, &IntOrString::String("http".into())), Some(8080));
        assert_eq!(port(&c, &IntOrString::Int(81)), Some(81));
        assert_eq!(port(&c, &IntOrString::String("nope".into())), None);
    }
}
