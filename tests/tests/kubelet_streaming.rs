//! `kubectl logs`, `exec`, `attach`-style streams and `port-forward`
//! through the apiserver to a real kubelet on a real containerd: the
//! apiserver relays to the node's kubelet, which relays to containerd's
//! streaming server. kubectl 1.33 (WebSocket first) and 1.28 (SPDY) both
//! work. Needs root, containerd, runc, the CNI plugins and busybox-static.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use capstan_tests::fixture::{ControlPlane, KUBECTL, KUBECTL_1_28, free_port};
use capstan_tests::node::{BUSYBOX, Node};
use capstan_tests::wait;

async fn start() -> Result<(ControlPlane, Node)> {
    let cp = ControlPlane::start(&[]).await?;
    let node = Node::start(&cp, "stream-node", &[]).await?;
    node.wait_ready(&cp.client().await?).await?;
    Ok((cp, node))
}

fn ready(cp: &ControlPlane, node: &Node, pod: &str) -> Result<()> {
    cp.kubectl(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{pod}"),
        "--timeout=90s",
    ])
    .with_context(|| node.logs())?;
    Ok(())
}

/// Runs kubectl with stdin, returning (exit code, stdout, stderr).
fn kubectl_stdin(
    cp: &ControlPlane,
    kubectl: &str,
    args: &[&str],
    input: &str,
) -> Result<(i32, String, String)> {
    let mut child = Command::new(kubectl)
        .args(args)
        .env("KUBECONFIG", &cp.kubeconfig)
        .env("HOME", cp.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A kubectl left running (logs -f, port-forward), killed on drop.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_kubectl(
    cp: &ControlPlane,
    args: &[&str],
) -> Result<(Running, std::sync::mpsc::Receiver<String>)> {
    let mut child = Command::new(KUBECTL)
        .args(args)
        .env("KUBECONFIG", &cp.kubeconfig)
        .env("HOME", cp.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("kubectl stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Ok((Running(child), rx))
}

/// The next line from a spawned kubectl that satisfies `want`.
fn line_matching(
    rx: &std::sync::mpsc::Receiver<String>,
    want: impl Fn(&str) -> bool,
) -> Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if want(&line) => return Ok(line),
            Ok(_) => {}
            Err(e) => bail!("no matching line from kubectl: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_and_exec_reach_the_container_through_the_apiserver() -> Result<()> {
    let (cp, node) = start().await?;
    let manifest = cp.write(
        "talker.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: talker}}
spec:
  nodeName: stream-node
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sh", "-c", "echo first; echo to-stderr >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]
  - name: idle
    image: {BUSYBOX}
    command: ["sleep", "3600"]
"#
        ),
    )?;
    cp.kubectl(&["apply", "-f", &manifest])?;
    ready(&cp, &node, "talker")?;

    // Plain logs hold both streams; --tail and --timestamps shape them.
    // (stdout and stderr reach the log file through separate pipes: wait
    // for a few ticks so the stderr line is in before the tail is read.)
    let logs = wait::until(
        "a few ticks in the log",
        Duration::from_secs(60),
        || async {
            let logs = cp.kubectl(&["logs", "talker", "-c", "main"]).ok()?;
            logs.contains("tick 3\n").then_some(logs)
        },
    )
    .await?;
    // Both streams, each in its order (containerd reads stdout and stderr
    // through separate pipes, so their lines may interleave either way).
    assert_eq!(
        logs.lines().find(|l| *l != "to-stderr"),
        Some("first"),
        "{logs}"
    );
    assert!(logs.lines().any(|l| l == "to-stderr"), "{logs}");
    let tail = cp.kubectl(&["logs", "talker", "-c", "main", "--tail=2"])?;
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l.starts_with("tick ")), "{tail}");
    let stamped = cp.kubectl(&[
        "logs",
        "talker",
        "-c",
        "main",
        "--timestamps",
        "--limit-bytes=200",
    ])?;
    let first = stamped.lines().next().unwrap_or_default();
    let (ts, text) = first.split_once(' ').unwrap_or_default();
    assert!(
        ts.parse::<jiff::Timestamp>().is_ok() && logs.lines().any(|l| l == text),
        "{first}"
    );

    // Following shows lines written after the request.
    let already = cp.kubectl(&["logs", "talker", "-c", "main"])?;
    let last_tick: u64 = already
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .max()
        .unwrap_or(0);
    let (_follow, rx) = spawn_kubectl(&cp, &["logs", "-f", "talker", "-c", "main"])?;
    let later = format!("tick {}", last_tick + 3);
    line_matching(&rx, |l| l == later)?;

    // Exec through both kubectl protocols: output, exit codes, stdin.
    for kubectl in [KUBECTL, KUBECTL_1_28] {
        let (code, out, err) = kubectl_stdin(
            &cp,
            kubectl,
            &[
                "exec",
                "talker",
                "-c",
                "idle",
                "--",
                "sh",
                "-c",
                "echo hello from $(hostname); echo oops >&2; exit 3",
            ],
            "",
        )?;
        assert_eq!(code, 3, "{kubectl}: {err}");
        assert_eq!(out, "hello from talker\n", "{kubectl}");
        assert!(err.contains("oops"), "{kubectl}: {err}");
        let (code, out, err) = kubectl_stdin(
            &cp,
            kubectl,
            &[
                "exec", "-i", "talker", "-c", "idle", "--", "tr", "a-z", "A-Z",
            ],
            "piped in\n",
        )?;
        assert_eq!((code, out.as_str()), (0, "PIPED IN\n"), "{kubectl}: {err}");
    }
    // A container that is not there: upstream's 400 from the apiserver.
    let err = cp.kubectl_err(&["exec", "talker", "-c", "nope", "--", "true"])?;
    assert!(
        err.contains("container nope is not valid for pod talker"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_reaches_a_server_in_the_pod() -> Result<()> {
    let (cp, node) = start().await?;
    let manifest = cp.write(
        "web.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  nodeName: stream-node
  containers:
  - name: httpd
    image: {BUSYBOX}
    command: ["sh", "-c", "mkdir -p /www && echo served from the pod > /www/index.html && exec httpd -f -p 8080 -h /www"]
"#
        ),
    )?;
    cp.kubectl(&["apply", "-f", &manifest])?;
    ready(&cp, &node, "web")?;
    for kubectl in [KUBECTL, KUBECTL_1_28] {
        let local = free_port()?;
        let mut child = Command::new(kubectl)
            .args(["port-forward", "pod/web", &format!("{local}:8080")])
            .env("KUBECONFIG", &cp.kubeconfig)
            .env("HOME", cp.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let _guard = Running(child);
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().transpose()?.unwrap_or_default();
        assert!(
            first.starts_with("Forwarding from 127.0.0.1"),
            "{kubectl}: {first}"
        );
        let body = wait::until(
            "the forwarded port to answer",
            Duration::from_secs(30),
            || async move {
                tokio::task::spawn_blocking(move || http_get(local))
                    .await
                    .ok()?
                    .ok()
            },
        )
        .await?;
        assert!(body.ends_with("served from the pod\n"), "{kubectl}: {body}");
    }
    Ok(())
}

/// A minimal HTTP/1.0 GET of `/` on a local port; the whole response.
fn http_get(port: u16) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    if !out.starts_with("HTTP/1.") {
        return Err(std::io::Error::other(format!("not HTTP: {out:?}")));
    }
    Ok(out)
}
