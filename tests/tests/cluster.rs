//! `capstan create cluster`, `get clusters` and `delete cluster` end to
//! end: real etcd and component binaries started by the built `capstan`,
//! checked with the real kubectl and through `/proc`.
//!
//! Needs `cargo build -p capstan -p capstan-apiserver -p capstan-scheduler
//! -p capstan-controller-manager -p capstan-kubelet` first (the tool finds
//! the components next to itself), and root with containerd, runc,
//! containernetworking-plugins and busybox-static installed for the node.

use std::net::TcpListener;
use std::time::Duration;

use anyhow::{Context as _, Result};
use capstan::runtime::images;
use capstan_tests::local_cluster::{CapstanHome, process_gone, read_kubeconfig};
use capstan_tests::wait;

/// How long a pod may take to run, a log line to show up.
const POD_WAIT: Duration = Duration::from_secs(90);

/// Waits until pod `pod` of cluster `name` is Running.
async fn wait_running(home: &CapstanHome, name: &str, pod: &str) -> Result<()> {
    wait::until(&format!("pod {pod} to be Running"), POD_WAIT, || {
        let phase = home
            .kubectl(name, &["get", "pod", pod, "-o", "jsonpath={.status.phase}"])
            .unwrap_or_default();
        async move { (phase == "Running").then_some(()) }
    })
    .await
    .with_context(|| {
        home.kubectl(name, &["get", "pod", pod, "-o", "yaml"])
            .unwrap_or_default()
    })
}

/// Waits until `kubectl logs POD` of cluster `name` contains `line`.
async fn wait_log(home: &CapstanHome, name: &str, pod: &str, line: &str) -> Result<String> {
    wait::until(&format!("{line:?} in the log of {pod}"), POD_WAIT, || {
        let log = home.kubectl(name, &["logs", pod]).unwrap_or_default();
        async move { log.contains(line).then_some(log) }
    })
    .await
}

#[tokio::test]
async fn the_node_runs_pods_with_logs_exec_and_loaded_images_and_delete_leaves_nothing()
-> Result<()> {
    let mut home = CapstanHome::new()?;
    let progress = home.create("pods")?;
    assert!(
        progress.contains(" ✓ Waiting for node pods-control-plane to be Ready"),
        "{progress}"
    );
    let nodes = home.kubectl("pods", &["get", "nodes"])?;
    let row: Vec<&str> = nodes
        .lines()
        .find(|l| l.starts_with("pods-control-plane "))
        .with_context(|| format!("no node row in:\n{nodes}"))?
        .split_whitespace()
        .collect();
    assert_eq!(row.get(1), Some(&"Ready"), "{nodes}");

    // The scheduler places a pod of the locally built busybox image.
    home.kubectl(
        "pods",
        &[
            "run",
            "bb",
            "--image",
            images::BUSYBOX_IMAGE,
            "--",
            "sh",
            "-c",
            "echo hello from bb; sleep 3600",
        ],
    )?;
    wait_running(&home, "pods", "bb").await?;
    let node = home.kubectl(
        "pods",
        &["get", "pod", "bb", "-o", "jsonpath={.spec.nodeName}"],
    )?;
    assert_eq!(node, "pods-control-plane");
    wait_log(&home, "pods", "bb", "hello from bb").await?;
    let answer = home.kubectl("pods", &["exec", "bb", "--", "sh", "-c", "echo $((6*7))"])?;
    assert_eq!(answer.trim(), "42");

    // An image archive built here under another name, loaded like
    // `kind load image-archive`, runs without any pull.
    let work = home.dir.path().join("loaded-image");
    let archive = work.join("loaded.tar");
    let loaded = "localhost/capstan/loaded:1";
    images::build(
        loaded,
        serde_json::json!({"Cmd": ["sh", "-c", "echo the loaded image runs; sleep 3600"]}),
        &work,
        &archive,
    )?;
    let archive_arg = archive.to_string_lossy().into_owned();
    let (_, said) = home.capstan_ok(&["load", "image-archive", &archive_arg, "--name", "pods"])?;
    assert!(said.contains("pods-control-plane"), "{said}");
    home.kubectl(
        "pods",
        &[
            "run",
            "loaded",
            "--image",
            loaded,
            "--image-pull-policy",
            "Never",
        ],
    )?;
    wait_running(&home, "pods", "loaded").await?;
    wait_log(&home, "pods", "loaded", "the loaded image runs").await?;

    // Loading into a cluster that does not run says so.
    let out = home.capstan(&["load", "image-archive", &archive_arg, "--name", "absent"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no cluster named \"absent\""), "{stderr}");

    // What the node made is visible now, so its absence later means
    // something.
    let running = home.node_traces("pods")?;
    // The two pods and the two replicas of the DNS add-on.
    assert_eq!(running.pod_veths.len(), 4, "four pods' veths: {running:?}");
    assert_eq!(
        running.namespaces.len(),
        1,
        "the node's namespace: {running:?}"
    );
    assert!(
        running.mounts.iter().any(|m| m.contains(" nsfs ")),
        "the pods' netns mounts: {running:?}"
    );
    assert!(!running.processes.is_empty(), "{running:?}");
    assert!(
        running.mounts.iter().any(|m| m.contains(" overlay ")),
        "{running:?}"
    );
    assert!(!running.cgroups.is_empty(), "{running:?}");
    assert_eq!(
        running.host_links.len(),
        2,
        "the cluster's bridge and the node's veth: {running:?}"
    );
    assert!(!running.host_routes.is_empty(), "{running:?}");

    home.delete("pods")?;
    let left = home.node_traces("pods")?;
    // No pod process either: a cgroup with tasks cannot be removed.
    assert!(left.is_empty(), "left behind: {left:#?}");
    Ok(())
}

#[tokio::test]
async fn delete_leaves_nothing_after_containerd_and_the_kubelet_crashed() -> Result<()> {
    let mut home = CapstanHome::new()?;
    home.create("crash")?;
    home.kubectl(
        "crash",
        &[
            "run",
            "orphan",
            "--image",
            images::BUSYBOX_IMAGE,
            "--",
            "sleep",
            "3600",
        ],
    )?;
    wait_running(&home, "crash", "orphan").await?;
    let running = home.node_traces("crash")?;
    // The pod and the two replicas of the DNS add-on.
    assert_eq!(running.pod_veths.len(), 3, "{running:?}");

    // containerd and the kubelet die; the pod's shim and processes, its
    // mounts and network keep going without them.
    let pids = home.pids("crash")?;
    let node: Vec<_> = pids
        .iter()
        .filter(|(n, _)| {
            n == "crash-control-plane-containerd" || n == "crash-control-plane-kubelet"
        })
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(node.len(), 2, "{pids:?}");
    for record in &node {
        kill_now(record.pid)?;
    }
    wait::until(
        "containerd and the kubelet to exit",
        Duration::from_secs(30),
        || {
            let done = node.iter().all(process_gone);
            async move { done.then_some(()) }
        },
    )
    .await?;

    home.delete("crash")?;
    let left = home.node_traces("crash")?;
    assert!(left.is_empty(), "left behind: {left:#?}");
    Ok(())
}

#[tokio::test]
async fn create_is_usable_idempotent_listed_and_deleted_cleanly() -> Result<()> {
    let mut home = CapstanHome::new()?;
    let (_, none) = home.capstan_ok(&["get", "clusters"])?;
    assert!(none.contains("No capstan clusters found."), "{none}");

    let progress = home.create("one")?;
    for line in [
        " ✓ Writing certificates",
        " ✓ Starting etcd",
        " ✓ Starting control-plane",
        " ✓ Starting containerd",
        " ✓ Loading node images",
        " ✓ Starting kubelet and proxy",
        " ✓ Waiting for node one-control-plane to be Ready",
        "Set kubectl context to \"capstan-one\"",
        "kubectl cluster-info --context capstan-one",
    ] {
        assert!(
            progress.contains(line),
            "{line:?} missing from:\n{progress}"
        );
    }
    let namespaces = home.kubectl("one", &["get", "namespaces"])?;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(namespaces.contains(ns), "{namespaces}");
    }
    assert_eq!(
        home.kubectl("one", &["get", "--raw", "/readyz"])?.trim(),
        "ok"
    );
    let kc = read_kubeconfig(&home.kubeconfig)?;
    assert_eq!(kc.current_context, "capstan-one");

    let pids = home.pids("one")?;
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "apiserver",
            "controller-manager",
            "etcd",
            "one-control-plane-containerd",
            "one-control-plane-kubelet",
            "one-control-plane-proxy",
            "scheduler"
        ]
    );
    for (name, record) in &pids {
        assert!(!process_gone(record), "{name} is not running");
    }

    // Again: nothing is restarted.
    let again = home.create("one")?;
    assert!(again.contains("already running"), "{again}");
    assert_eq!(home.pids("one")?, pids);

    let (listed, _) = home.capstan_ok(&["get", "clusters"])?;
    assert_eq!(listed, "one\n");

    // The processes outlive the command that started them, so they must
    // be stopped by delete, and only then are they gone.
    home.delete("one")?;
    for (name, record) in &pids {
        assert!(
            process_gone(record),
            "{name} (pid {}) still runs",
            record.pid
        );
    }
    assert!(!home.cluster_dir("one").exists());
    let kc = read_kubeconfig(&home.kubeconfig)?;
    assert!(kc.clusters.is_empty() && kc.users.is_empty() && kc.contexts.is_empty());
    assert_eq!(kc.current_context, "");
    let (_, none) = home.capstan_ok(&["get", "clusters"])?;
    assert!(none.contains("No capstan clusters found."), "{none}");

    // Deleting what does not exist succeeds, as in kind.
    home.delete("one")?;
    Ok(())
}

#[tokio::test]
async fn two_clusters_run_side_by_side() -> Result<()> {
    let mut home = CapstanHome::new()?;
    home.create("left")?;
    home.create("right")?;
    let (listed, _) = home.capstan_ok(&["get", "clusters"])?;
    assert_eq!(listed, "left\nright\n");

    // Separate apiservers with separate data.
    home.kubectl("left", &["create", "namespace", "only-left"])?;
    assert!(
        home.kubectl("left", &["get", "namespaces"])?
            .contains("only-left")
    );
    assert!(
        !home
            .kubectl("right", &["get", "namespaces"])?
            .contains("only-left")
    );
    let kc = read_kubeconfig(&home.kubeconfig)?;
    assert_eq!(kc.current_context, "capstan-right");
    let servers: Vec<&str> = kc
        .clusters
        .iter()
        .map(|c| c.cluster.server.as_str())
        .collect();
    assert_eq!(servers.len(), 2);
    assert_ne!(servers[0], servers[1]);

    // Deleting one leaves the other running and in the kubeconfig.
    let left = home.pids("left")?;
    home.delete("left")?;
    for (name, record) in &left {
        assert!(process_gone(record), "left's {name} still runs");
    }
    assert_eq!(
        home.kubectl("right", &["get", "--raw", "/readyz"])?.trim(),
        "ok"
    );
    let kc = read_kubeconfig(&home.kubeconfig)?;
    let contexts: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(contexts, ["capstan-right"]);
    assert_eq!(kc.current_context, "capstan-right");
    Ok(())
}

#[tokio::test]
async fn a_cluster_whose_processes_died_is_started_again_with_its_data() -> Result<()> {
    let mut home = CapstanHome::new()?;
    home.create("phoenix")?;
    home.kubectl(
        "phoenix",
        &["create", "configmap", "kept", "--from-literal=a=b"],
    )?;
    let before = home.pids("phoenix")?;
    let apiserver = before
        .iter()
        .find(|(n, _)| n == "apiserver")
        .map(|(_, r)| r.clone())
        .expect("an apiserver pid file");
    let etcd = before
        .iter()
        .find(|(n, _)| n == "etcd")
        .map(|(_, r)| r.clone())
        .expect("an etcd pid file");

    // The apiserver and etcd die (as after a reboot); something else then
    // takes the apiserver's port.
    for record in [&apiserver, &etcd] {
        kill_now(record.pid)?;
    }
    wait::until(
        "the apiserver and etcd to exit",
        Duration::from_secs(30),
        || {
            let done = process_gone(&apiserver) && process_gone(&etcd);
            async move { done.then_some(()) }
        },
    )
    .await?;
    let server = read_kubeconfig(&home.kubeconfig)?.clusters[0]
        .cluster
        .server
        .clone();
    let addr: std::net::SocketAddr = server
        .trim_start_matches("https://")
        .parse()
        .expect("an address in the server URL");
    let port = addr.port();
    let squatter = TcpListener::bind(addr)?;
    let out = home.capstan(&[
        "create",
        "cluster",
        "--name",
        "phoenix",
        "--kubeconfig",
        &home.kubeconfig.to_string_lossy(),
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port}")) && stderr.contains("in use"),
        "{stderr}"
    );
    drop(squatter);

    home.create("phoenix")?;
    let after = home.pids("phoenix")?;
    for ((name, old), (_, new)) in before.iter().zip(&after) {
        if name == "apiserver" || name == "etcd" {
            assert_ne!(old.pid, new.pid, "{name} was not restarted");
        } else {
            assert_eq!(old, new, "{name} was restarted");
        }
    }
    let kept = home.kubectl(
        "phoenix",
        &["get", "configmap", "kept", "-o", "jsonpath={.data.a}"],
    )?;
    assert_eq!(kept, "b");
    Ok(())
}

#[tokio::test]
async fn without_flags_the_context_goes_to_kubeconfig_env_or_home() -> Result<()> {
    let mut home = CapstanHome::new()?;
    home.delete_on_drop("plain");
    let user_config = home.dir.path().join("home/.kube/config");
    let out = home.capstan(&["create", "cluster", "--name", "plain"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read_kubeconfig(&user_config)?.current_context,
        "capstan-plain"
    );

    // $KUBECONFIG's first file wins over ~/.kube/config.
    let env_config = home.dir.path().join("env-config");
    let list = format!("{}:{}", env_config.display(), user_config.display());
    let out = home.capstan_env(
        &["create", "cluster", "--name", "plain"],
        &[("KUBECONFIG", &list)],
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read_kubeconfig(&env_config)?.current_context,
        "capstan-plain"
    );

    // delete cleans every file create wrote to, with no flag.
    let (_, _) = home.capstan_ok(&["delete", "cluster", "--name", "plain"])?;
    for path in [&user_config, &env_config] {
        let kc = read_kubeconfig(path)?;
        assert!(
            kc.contexts.is_empty(),
            "{}: {:?}",
            path.display(),
            kc.contexts
        );
    }
    Ok(())
}

#[tokio::test]
async fn start_failures_are_explained() -> Result<()> {
    let mut home = CapstanHome::new()?;
    // No etcd on PATH: said before anything is written.
    let out = home.capstan_env(
        &["create", "cluster", "--name", "noetcd"],
        &[("PATH", "/nonexistent")],
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("apt-get install etcd-server"), "{stderr}");
    assert!(!home.cluster_dir("noetcd").exists());

    // A component that exits while starting: its log's tail is shown.
    home.create("broken")?;
    let pids = home.pids("broken")?;
    for (_, record) in &pids {
        kill_now(record.pid)?;
    }
    wait::until(
        "the cluster's processes to exit",
        Duration::from_secs(30),
        || {
            let done = pids.iter().all(|(_, r)| process_gone(r));
            async move { done.then_some(()) }
        },
    )
    .await?;
    let key = home.cluster_dir("broken").join("pki/apiserver.key");
    std::fs::write(&key, "not a key")?;
    let out = home.capstan(&[
        "create",
        "cluster",
        "--name",
        "broken",
        "--kubeconfig",
        &home.kubeconfig.to_string_lossy(),
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(" ✗ Starting control-plane"), "{stderr}");
    assert!(
        stderr.contains("apiserver exited while starting"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apiserver.key"),
        "the log tail is missing: {stderr}"
    );
    assert!(
        stderr.contains("capstan delete cluster --name broken"),
        "{stderr}"
    );
    Ok(())
}

/// Kills a process outright (SIGKILL), as a crash would.
fn kill_now(pid: i32) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -KILL {pid} failed");
    Ok(())
}
