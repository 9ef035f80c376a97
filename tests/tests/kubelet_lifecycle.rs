//! Container lifecycle hooks on a real kubelet and containerd: postStart
//! runs before the container counts as started and a failing one restarts
//! it with a FailedPostStartHook Event; a graceful `kubectl delete` runs
//! preStop inside the container, then stops it and removes the pod from
//! the API. Needs root, containerd, runc, the CNI plugins and
//! busybox-static.

use std::time::Duration;

use anyhow::{Context, Result};
use capstan_tests::fixture::ControlPlane;
use capstan_tests::node::{BUSYBOX, Node};
use capstan_tests::wait;

#[tokio::test(flavor = "multi_thread")]
async fn hooks_run_at_start_and_before_a_graceful_stop() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let node = Node::start(&cp, "hook-node", &[]).await?;
    node.wait_ready(&cp.client().await?).await?;
    let host = tempfile::tempdir()?;
    let manifest = cp.write(
        "hooks.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  nodeName: hook-node
  terminationGracePeriodSeconds: 20
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sh", "-c", "trap 'echo got SIGTERM >> /host/log; exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{{name: host, mountPath: /host}}]
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "echo postStart >> /host/log"]}}
      preStop:
        exec: {{command: ["sh", "-c", "echo preStop >> /host/log"]}}
  volumes:
  - name: host
    hostPath: {{path: {host}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: bad-hook}}
spec:
  nodeName: hook-node
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "echo no way >&2; exit 7"]}}
"#,
            host = host.path().display()
        ),
    )?;
    cp.kubectl(&["apply", "-f", &manifest])?;
    cp.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/hooked",
        "--timeout=90s",
    ])
    .with_context(|| node.logs())?;
    let log = host.path().join("log");
    assert_eq!(std::fs::read_to_string(&log)?, "postStart\n");

    // A graceful delete: preStop first, then SIGTERM, then the pod is gone.
    cp.kubectl(&["delete", "pod", "hooked", "--wait=true", "--timeout=60s"])?;
    assert_eq!(
        std::fs::read_to_string(&log)?,
        "postStart\npreStop\ngot SIGTERM\n"
    );
    let left = cp.kubectl(&[
        "get",
        "pods",
        "--field-selector=metadata.name=hooked",
        "-o",
        "name",
    ])?;
    assert_eq!(left, "");

    // A failing postStart kills the container, which restarts, and says why.
    wait::until(
        "a FailedPostStartHook event",
        Duration::from_secs(90),
        || async {
            let events = cp
                .kubectl(&[
                    "get",
                    "events",
                    "--field-selector=reason=FailedPostStartHook",
                    "-o",
                    "name",
                ])
                .ok()?;
            (!events.trim().is_empty()).then_some(())
        },
    )
    .await
    .with_context(|| node.logs())?;
    wait::until(
        "the bad-hook container to restart",
        Duration::from_secs(90),
        || async {
            let restarts = cp
                .kubectl(&[
                    "get",
                    "pod",
                    "bad-hook",
                    "-o",
                    "jsonpath={.status.containerStatuses[0].restartCount}",
                ])
                .ok()?;
            (restarts.parse::<u32>().ok()? >= 1).then_some(())
        },
    )
    .await
    .with_context(|| node.logs())?;
    Ok(())
}
