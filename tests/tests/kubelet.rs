//! The kubelet on a real containerd: node registration and heartbeat,
//! pods with init containers and sidecars, environment from ConfigMaps,
//! Secrets and the Downward API, CrashLoopBackOff, OOM kills, graceful
//! deletion and adoption of running containers by a restarted kubelet.
//! Needs root, containerd, runc, the CNI plugins and busybox-static.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use capstan_tests::fixture::ControlPlane;
use capstan_tests::node::{BUSYBOX, Node};
use capstan_tests::wait;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

async fn create_pod(client: &kube::Client, spec: serde_json::Value) -> Result<Pod> {
    let pod: Pod = serde_json::from_value(spec)?;
    Ok(Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await?)
}

/// Waits until `check` accepts the pod named `name`.
async fn wait_pod<T>(
    client: &kube::Client,
    node: &Node,
    name: &str,
    what: &str,
    check: impl Fn(&Pod) -> Option<T>,
) -> Result<T> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let out = wait::until(what, TIMEOUT, || {
        let pods = pods.clone();
        let check = &check;
        async move { pods.get_opt(name).await.ok()?.as_ref().and_then(check) }
    })
    .await;
    match out {
        Ok(v) => Ok(v),
        Err(e) => {
            let pod = pods.get_opt(name).await.ok().flatten();
            let status = pod.and_then(|p| serde_json::to_string_pretty(&p.status).ok());
            anyhow::bail!(
                "{e}\nstatus: {}\n{}",
                status.unwrap_or_default(),
                node.logs()
            )
        }
    }
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn container<'a>(p: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    let s = p.status.as_ref()?;
    s.container_statuses
        .iter()
        .flatten()
        .chain(s.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)
}

fn condition(p: &Pod, kind: &str) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

async fn start(name: &str) -> Result<(ControlPlane, Node, kube::Client)> {
    let cp = ControlPlane::start(&[]).await?;
    let node = Node::start(&cp, name, &[]).await?;
    let client = cp.client().await?;
    node.wait_ready(&client).await?;
    Ok((cp, node, client))
}

#[tokio::test(flavor = "multi_thread")]
async fn node_registers_ready_with_real_capacity_and_renews_its_lease() -> Result<()> {
    let (cp, node, client) = start("node-a").await?;
    let n = node.wait_ready(&client).await?;
    let status = n.status.clone().unwrap_or_default();
    let cap = status.capacity.clone().unwrap_or_default();
    let cpus = std::thread::available_parallelism()?.get().to_string();
    assert_eq!(cap["cpu"].0, cpus);
    assert_eq!(cap["pods"].0, "110");
    assert!(cap["memory"].0.ends_with("Ki"));
    assert!(cap.contains_key("ephemeral-storage"));
    assert_eq!(status.allocatable, Some(cap.clone()));
    let info = status.node_info.clone().unwrap_or_default();
    assert!(
        info.container_runtime_version
            .starts_with("containerd://1.6"),
        "{}",
        info.container_runtime_version
    );
    assert_eq!(info.operating_system, "linux");
    assert!(!info.kernel_version.is_empty());
    let addrs: HashMap<String, String> = status
        .addresses
        .iter()
        .flatten()
        .map(|a| (a.type_.clone(), a.address.clone()))
        .collect();
    assert_eq!(addrs["InternalIP"], "127.0.0.1");
    assert_eq!(addrs["Hostname"], "node-a");
    let conds: HashMap<String, (String, String)> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            (
                c.type_.clone(),
                (c.status.clone(), c.reason.clone().unwrap_or_default()),
            )
        })
        .collect();
    assert_eq!(conds["Ready"], ("True".into(), "KubeletReady".into()));
    assert_eq!(
        conds["MemoryPressure"].1,
        "KubeletHasSufficientMemory".to_string()
    );
    // Pressure is the machine's real state (a nearly full disk reports
    // DiskPressure, as upstream's nodefs.available<10% does).
    let disk = match conds["DiskPressure"].0.as_str() {
        "True" => "KubeletHasDiskPressure",
        _ => "KubeletHasNoDiskPressure",
    };
    assert_eq!(conds["DiskPressure"].1, disk);
    assert_eq!(conds["PIDPressure"].0, "False");
    let labels = n.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["kubernetes.io/hostname"], "node-a");
    assert_eq!(labels["kubernetes.io/os"], "linux");

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = wait::until("the node lease", TIMEOUT, || {
        let leases = leases.clone();
        async move { leases.get_opt("node-a").await.ok()? }
    })
    .await?;
    let spec = lease.spec.clone().unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("node-a"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = &lease.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", "node-a")
    );

    let table = cp.kubectl(&["get", "nodes"])?;
    let row = table
        .lines()
        .find(|l| l.starts_with("node-a"))
        .unwrap_or_default();
    assert!(row.split_whitespace().nth(1) == Some("Ready"), "{table}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_with_an_init_container_and_two_containers_runs() -> Result<()> {
    let (_cp, node, client) = start("node-b").await?;
    let pod = create_pod(
        &client,
        json!({
            "metadata": {"name": "web"},
            "spec": {
                "nodeName": "node-b",
                "volumes": [{"name": "shared", "emptyDir": {}}, {"name": "fast", "emptyDir": {"medium": "Memory"}}],
                "initContainers": [{"name": "setup", "image": BUSYBOX,
                    "command": ["sh", "-c", "echo initialized; echo made-by-init > /shared/note; echo fast > /fast/note"],
                    "volumeMounts": [{"name": "shared", "mountPath": "/shared"}, {"name": "fast", "mountPath": "/fast"}]}],
                "containers": [
                    {"name": "one", "image": BUSYBOX, "command": ["sh", "-c", "echo one; cat /data/note /fast/note; exec sleep 3600"],
                     "volumeMounts": [{"name": "shared", "mountPath": "/data", "readOnly": true}, {"name": "fast", "mountPath": "/fast"}]},
                    {"name": "two", "image": BUSYBOX, "command": ["sleep", "3600"]},
                ],
            },
        }),
    )
    .await?;
    let running = wait_pod(&client, &node, "web", "the pod to run", |p| {
        (phase(p) == "Running" && condition(p, "Ready").as_deref() == Some("True"))
            .then(|| p.clone())
    })
    .await?;
    let status = running.status.clone().unwrap_or_default();
    let ip = status.pod_ip.clone().unwrap_or_default();
    let prefix = node.pod_cidr.trim_end_matches("0/24");
    assert!(
        ip.starts_with(prefix),
        "pod IP {ip} not in {}",
        node.pod_cidr
    );
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    assert!(status.start_time.is_some());
    let init = container(&running, "setup").cloned().unwrap_or_default();
    let done = init.state.and_then(|s| s.terminated).unwrap_or_default();
    assert_eq!(
        (done.exit_code, done.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert!(
        done.container_id
            .unwrap_or_default()
            .starts_with("containerd://")
    );
    for name in ["one", "two"] {
        let c = container(&running, name).cloned().unwrap_or_default();
        assert!(c.ready, "{name} not ready");
        assert_eq!(c.restart_count, 0);
        assert!(c.state.and_then(|s| s.running).is_some());
        assert!(!c.image_id.is_empty());
    }
    for kind in [
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "PodReadyToStartContainers",
    ] {
        assert_eq!(condition(&running, kind).as_deref(), Some("True"), "{kind}");
    }
    assert!(
        node.container_log(&pod, "setup", 0)
            .contains("stdout F initialized")
    );
    let log = wait::until("container one's log", TIMEOUT, || async {
        let l = node.container_log(&pod, "one", 0);
        l.contains("stdout F fast\n").then_some(l)
    })
    .await?;
    assert!(log.contains("stdout F one"), "{log}");
    // The init container's file, through a shared emptyDir (and a tmpfs one).
    assert!(log.contains("stdout F made-by-init"), "{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn env_comes_from_configmaps_secrets_and_the_downward_api() -> Result<()> {
    let (cp, node, client) = start("node-c").await?;
    cp.kubectl(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=color=blue",
        "--from-literal=size=large",
    ])?;
    cp.kubectl(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=hunter2",
    ])?;
    let pod = create_pod(
        &client,
        json!({
            "metadata": {"name": "envy", "labels": {"app": "envy"}},
            "spec": {
                "nodeName": "node-c",
                "restartPolicy": "Never",
                "volumes": [
                    {"name": "settings", "configMap": {"name": "settings", "items": [{"key": "color", "path": "paint"}]}},
                    {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
                    {"name": "info", "downwardAPI": {"items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "limits.memory", "divisor": "1Mi"}},
                    ]}},
                ],
                "containers": [{
                    "name": "main", "image": BUSYBOX,
                    "command": ["sh", "-c", "env | sort; echo args: $0 $1; echo file: $(cat /etc/settings/paint) $(cat /etc/creds/password); stat -L -c %a /etc/creds/password; echo; cat /etc/info/labels; echo; echo mem: $(cat /etc/info/mem)", "$(GREETING)", "$(COLOR)"],
                    "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                    "volumeMounts": [{"name": "settings", "mountPath": "/etc/settings"},
                                     {"name": "creds", "mountPath": "/etc/creds", "readOnly": true},
                                     {"name": "info", "mountPath": "/etc/info"}],
                    "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CM_"}],
                    "env": [
                        {"name": "GREETING", "value": "hello"},
                        {"name": "MESSAGE", "value": "$(GREETING) world"},
                        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    ],
                }],
            },
        }),
    )
    .await?;
    let done = wait_pod(&client, &node, "envy", "the pod to succeed", |p| {
        (phase(p) == "Succeeded").then(|| p.clone())
    })
    .await?;
    let ip = done
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default();
    let log = node.container_log(&pod, "main", 0);
    for line in [
        "CM_color=blue",
        "CM_size=large",
        "COLOR=blue",
        "GREETING=hello",
        "MESSAGE=hello world",
        "PASSWORD=hunter2",
        "POD_NAME=envy",
        "POD_NAMESPACE=default",
        &format!("POD_IP={ip}"),
        "NODE=node-c",
        "APP=envy",
        "MEM_MI=64",
        "args: hello blue",
        "file: blue hunter2",
        "400",
        "app=\"envy\"",
        "mem: 64",
    ] {
        assert!(
            log.contains(&format!("stdout F {line}\n")),
            "{line} missing from\n{log}"
        );
    }
    let main = container(&done, "main").cloned().unwrap_or_default();
    let term = main.state.and_then(|s| s.terminated).unwrap_or_default();
    assert_eq!(
        (term.exit_code, term.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert_eq!(condition(&done, "Ready").as_deref(), Some("False"));

    // An updated ConfigMap reaches the files of a running container.
    create_pod(
        &client,
        json!({
            "metadata": {"name": "watcher"},
            "spec": {"nodeName": "node-c", "volumes": [{"name": "settings", "configMap": {"name": "settings"}}],
                "containers": [{"name": "main", "image": BUSYBOX, "command": ["sleep", "3600"],
                    "volumeMounts": [{"name": "settings", "mountPath": "/etc/settings"}]}]},
        }),
    )
    .await?;
    wait_pod(&client, &node, "watcher", "the watcher to run", |p| {
        container(p, "main")?.ready.then_some(())
    })
    .await?;
    cp.kubectl(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"color":"green"}}"#,
    ])?;
    let id = wait_pod(&client, &node, "watcher", "the watcher's id", |p| {
        container(p, "main")?.container_id.clone()
    })
    .await?;
    let id = id.trim_start_matches("containerd://").to_string();
    let cri = node.cri.clone();
    wait::until("the updated file in the container", TIMEOUT, || {
        let cri = cri.clone();
        let id = id.clone();
        async move {
            let cmd = vec!["cat".to_string(), "/etc/settings/color".to_string()];
            let (_, out, _) = cri.exec_sync(&id, cmd, 5).await.ok()?;
            (out == b"green").then_some(())
        }
    })
    .await?;

    // A missing key keeps the container from being created, as upstream.
    create_pod(
        &client,
        json!({
            "metadata": {"name": "missing"},
            "spec": {"nodeName": "node-c", "containers": [{"name": "main", "image": BUSYBOX,
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope"}}}]}]},
        }),
    )
    .await?;
    let waiting = wait_pod(
        &client,
        &node,
        "missing",
        "CreateContainerConfigError",
        |p| {
            let w = container(p, "main")?.state.clone()?.waiting?;
            (w.reason.as_deref() == Some("CreateContainerConfigError")).then_some(w)
        },
    )
    .await?;
    assert_eq!(
        waiting.message.as_deref(),
        Some("couldn't find key nope in ConfigMap default/settings")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_container_goes_to_crash_loop_back_off() -> Result<()> {
    let (cp, node, client) = start("node-d").await?;
    let pod = create_pod(
        &client,
        json!({
            "metadata": {"name": "crasher"},
            "spec": {"nodeName": "node-d", "containers": [{"name": "c", "image": BUSYBOX,
                "command": ["sh", "-c", "echo crashing; exit 2"]}]},
        }),
    )
    .await?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let waiting = wait_pod(&client, &node, "crasher", "CrashLoopBackOff", |p| {
        let c = container(p, "c")?;
        let w = c.state.clone()?.waiting?;
        (w.reason.as_deref() == Some("CrashLoopBackOff")).then(|| c.clone())
    })
    .await?;
    let message = waiting
        .state
        .and_then(|s| s.waiting)
        .and_then(|w| w.message)
        .unwrap_or_default();
    assert_eq!(
        message,
        format!("back-off 10s restarting failed container=c pod=crasher_default({uid})")
    );
    assert!(waiting.restart_count >= 1);
    let last = waiting
        .last_state
        .and_then(|s| s.terminated)
        .unwrap_or_default();
    assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
    // After the back-off it runs (and crashes) again, backing off longer.
    let again = wait_pod(&client, &node, "crasher", "a second restart", |p| {
        let c = container(p, "c")?;
        let msg = c.state.clone()?.waiting?.message?;
        (c.restart_count >= 2 && msg.starts_with("back-off 20s")).then_some(c.restart_count)
    })
    .await?;
    assert!(again >= 2);
    let table = cp.kubectl(&["get", "pods", "crasher"])?;
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    // The kubelet's Events, as `kubectl describe` shows them.
    let back_off = format!("Back-off restarting failed container c in pod crasher_default({uid})");
    wait::until("the kubelet's events", TIMEOUT, || async {
        let text = cp.kubectl(&["describe", "pod", "crasher"]).ok()?;
        [
            back_off.as_str(),
            "Started container c",
            "Created container: c",
            "already present on machine",
        ]
        .iter()
        .all(|m| text.contains(m))
        .then_some(())
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}\n{}",
            cp.kubectl(&["describe", "pod", "crasher"])
                .unwrap_or_default()
        )
    })?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_hog_is_oom_killed() -> Result<()> {
    let (_cp, node, client) = start("node-e").await?;
    create_pod(
        &client,
        json!({
            "metadata": {"name": "hog"},
            "spec": {"nodeName": "node-e", "restartPolicy": "Never", "containers": [{
                "name": "hog", "image": BUSYBOX, "command": ["tail", "/dev/zero"],
                "resources": {"limits": {"memory": "32Mi"}}}]},
        }),
    )
    .await?;
    let failed = wait_pod(&client, &node, "hog", "the pod to fail", |p| {
        (phase(p) == "Failed").then(|| p.clone())
    })
    .await?;
    let term = container(&failed, "hog")
        .and_then(|c| c.state.clone())
        .and_then(|s| s.terminated)
        .unwrap_or_default();
    assert_eq!(term.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(term.exit_code, 137);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_delete_stops_the_pod_and_removes_it() -> Result<()> {
    let (_cp, node, client) = start("node-f").await?;
    let pod = create_pod(
        &client,
        json!({
            "metadata": {"name": "polite"},
            "spec": {"nodeName": "node-f", "terminationGracePeriodSeconds": 30, "containers": [{
                "name": "c", "image": BUSYBOX,
                "command": ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; while true; do sleep 1; done"]}]},
        }),
    )
    .await?;
    wait_pod(&client, &node, "polite", "the pod to run", |p| {
        (phase(p) == "Running").then_some(())
    })
    .await?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.delete("polite", &DeleteParams::default()).await?;
    wait::until("the pod to be gone from the API", TIMEOUT, || {
        let pods = pods.clone();
        async move { matches!(pods.get_opt("polite").await, Ok(None)).then_some(()) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", node.logs()))?;
    assert!(node.container_log(&pod, "c", 0).contains("got TERM"));
    let left = node
        .cri
        .list_pod_sandboxes(capstan_kubelet::cri::labels::of_pod(&uid))
        .await?;
    assert!(left.is_empty(), "sandboxes left: {left:?}");
    assert!(
        !node.root_dir.join("pods").join(&uid).exists(),
        "the pod directory is removed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_kubelet_adopts_running_containers() -> Result<()> {
    let (_cp, mut node, client) = start("node-g").await?;
    create_pod(
        &client,
        json!({
            "metadata": {"name": "steady"},
            "spec": {"nodeName": "node-g", "containers": [{"name": "c", "image": BUSYBOX,
                "command": ["sleep", "3600"]}]},
        }),
    )
    .await?;
    let before = wait_pod(&client, &node, "steady", "the pod to run", |p| {
        let c = container(p, "c")?;
        c.ready.then(|| c.clone())
    })
    .await?;
    node.restart_kubelet()?;
    // A pod created after the restart runs: the new kubelet is syncing.
    create_pod(
        &client,
        json!({
            "metadata": {"name": "after"},
            "spec": {"nodeName": "node-g", "containers": [{"name": "c", "image": BUSYBOX,
                "command": ["sleep", "3600"]}]},
        }),
    )
    .await?;
    wait_pod(
        &client,
        &node,
        "after",
        "a pod to run after the restart",
        |p| (phase(p) == "Running").then_some(()),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let steady = pods.get("steady").await?;
    let after = container(&steady, "c").cloned().unwrap_or_default();
    assert_eq!(after.container_id, before.container_id);
    assert_eq!(after.restart_count, 0);
    assert!(after.ready);
    let uid = steady.metadata.uid.clone().unwrap_or_default();
    let sandboxes = node
        .cri
        .list_pod_sandboxes(capstan_kubelet::cri::labels::of_pod(&uid))
        .await?;
    assert_eq!(sandboxes.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sidecars_host_network_and_pull_policy_never() -> Result<()> {
    let (_cp, node, client) = start("node-h").await?;
    create_pod(
        &client,
        json!({
            "metadata": {"name": "sidecar"},
            "spec": {
                "nodeName": "node-h",
                "initContainers": [
                    {"name": "proxy", "image": BUSYBOX, "restartPolicy": "Always", "command": ["sleep", "3600"]},
                    {"name": "setup", "image": BUSYBOX, "command": ["true"]},
                ],
                "containers": [{"name": "app", "image": BUSYBOX, "command": ["sleep", "3600"]}],
            },
        }),
    )
    .await?;
    let running = wait_pod(
        &client,
        &node,
        "sidecar",
        "the pod with a sidecar to be ready",
        |p| (condition(p, "Ready").as_deref() == Some("True")).then(|| p.clone()),
    )
    .await?;
    let proxy = container(&running, "proxy").cloned().unwrap_or_default();
    assert!(
        proxy.state.and_then(|s| s.running).is_some(),
        "the sidecar keeps running"
    );
    assert!(proxy.ready);
    assert_eq!(phase(&running), "Running");

    create_pod(
        &client,
        json!({
            "metadata": {"name": "hostnet"},
            "spec": {"nodeName": "node-h", "hostNetwork": true,
                "containers": [{"name": "c", "image": BUSYBOX, "command": ["sleep", "3600"]}]},
        }),
    )
    .await?;
    let ip = wait_pod(
        &client,
        &node,
        "hostnet",
        "the host-network pod to run",
        |p| (phase(p) == "Running").then(|| p.status.as_ref()?.pod_ip.clone())?,
    )
    .await?;
    assert_eq!(ip, "127.0.0.1");

    create_pod(
        &client,
        json!({
            "metadata": {"name": "absent"},
            "spec": {"nodeName": "node-h", "containers": [{"name": "c",
                "image": "localhost/capstan/absent:1", "imagePullPolicy": "Never"}]},
        }),
    )
    .await?;
    let waiting = wait_pod(&client, &node, "absent", "ErrImageNeverPull", |p| {
        let w = container(p, "c")?.state.clone()?.waiting?;
        (w.reason.as_deref() == Some("ErrImageNeverPull")).then_some(w)
    })
    .await?;
    assert_eq!(
        waiting.message.as_deref(),
        Some(
            "Container image \"localhost/capstan/absent:1\" is not present with pull policy of Never"
        )
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sandboxes_of_pods_deleted_while_the_kubelet_was_down_are_removed() -> Result<()> {
    let (_cp, mut node, client) = start("node-i").await?;
    let pod = create_pod(
        &client,
        json!({
            "metadata": {"name": "forgotten"},
            "spec": {"nodeName": "node-i", "containers": [{"name": "c", "image": BUSYBOX,
                "command": ["sleep", "3600"]}]},
        }),
    )
    .await?;
    wait_pod(&client, &node, "forgotten", "the pod to run", |p| {
        (phase(p) == "Running").then_some(())
    })
    .await?;
    node.stop_kubelet();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.delete("forgotten", &DeleteParams::default().grace_period(0))
        .await?;
    node.restart_kubelet()?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let cri = node.cri.clone();
    wait::until("the orphaned sandbox to be removed", TIMEOUT, || {
        let cri = cri.clone();
        let uid = uid.clone();
        async move {
            let left = cri
                .list_pod_sandboxes(capstan_kubelet::cri::labels::of_pod(&uid))
                .await
                .ok()?;
            left.is_empty().then_some(())
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", node.logs()))?;
    Ok(())
}

/// Runs `cmd` in the running container `name` of pod `pod` through CRI.
async fn exec(
    node: &Node,
    client: &kube::Client,
    pod: &str,
    name: &str,
    cmd: &[&str],
) -> Result<()> {
    let p = Api::<Pod>::namespaced(client.clone(), "default")
        .get(pod)
        .await?;
    let id = container(&p, name)
        .and_then(|c| c.container_id.clone())
        .unwrap_or_default();
    let id = id.trim_start_matches("containerd://");
    let (code, _, err) = node
        .cri
        .exec_sync(id, cmd.iter().map(|s| s.to_string()).collect(), 10)
        .await?;
    anyhow::ensure!(
        code == 0,
        "{cmd:?} exited {code}: {}",
        String::from_utf8_lossy(&err)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_drive_readiness_and_restart_unhealthy_containers() -> Result<()> {
    let (_cp, node, client) = start("node-j").await?;
    create_pod(
        &client,
        json!({
            "metadata": {"name": "probed"},
            "spec": {"nodeName": "node-j", "terminationGracePeriodSeconds": 1, "containers": [
                {"name": "gate", "image": BUSYBOX, "command": ["sleep", "3600"],
                 "startupProbe": {"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 600},
                 "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1}},
                {"name": "web", "image": BUSYBOX,
                 "command": ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"],
                 "ports": [{"name": "http", "containerPort": 8080}],
                 "readinessProbe": {"httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 1},
                 "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}},
                {"name": "doomed", "image": BUSYBOX, "command": ["sleep", "3600"],
                 "livenessProbe": {"httpGet": {"path": "/", "port": 9999}, "periodSeconds": 1, "failureThreshold": 2}},
            ]},
        }),
    )
    .await?;
    // The HTTP and TCP probes pass; the gate has not started yet.
    wait_pod(
        &client,
        &node,
        "probed",
        "web to be ready and gate to wait for startup",
        |p| {
            let web = container(p, "web")?;
            let gate = container(p, "gate")?;
            let running = gate.state.as_ref()?.running.is_some();
            (web.ready && running && gate.started == Some(false) && !gate.ready).then_some(())
        },
    )
    .await?;
    assert_eq!(
        condition(
            &Api::<Pod>::namespaced(client.clone(), "default")
                .get("probed")
                .await?,
            "Ready"
        )
        .as_deref(),
        Some("False")
    );
    exec(&node, &client, "probed", "gate", &["touch", "/tmp/started"]).await?;
    wait_pod(
        &client,
        &node,
        "probed",
        "gate to start but not be ready",
        |p| {
            let gate = container(p, "gate")?;
            (gate.started == Some(true) && !gate.ready).then_some(())
        },
    )
    .await?;
    exec(&node, &client, "probed", "gate", &["touch", "/tmp/ready"]).await?;
    wait_pod(&client, &node, "probed", "gate to be ready", |p| {
        container(p, "gate")?.ready.then_some(())
    })
    .await?;
    exec(&node, &client, "probed", "gate", &["rm", "/tmp/ready"]).await?;
    wait_pod(&client, &node, "probed", "gate to be unready again", |p| {
        (!container(p, "gate")?.ready).then_some(())
    })
    .await?;
    // The failing liveness probe restarts `doomed`; the others never restart.
    let p = wait_pod(&client, &node, "probed", "doomed to be restarted", |p| {
        (container(p, "doomed")?.restart_count >= 1).then(|| p.clone())
    })
    .await?;
    assert_eq!(container(&p, "web").map(|c| c.restart_count), Some(0));
    assert_eq!(container(&p, "gate").map(|c| c.restart_count), Some(0));
    let cp = &_cp;
    wait::until("Unhealthy and Killing events", TIMEOUT, || async {
        let text = cp.kubectl(&["describe", "pod", "probed"]).ok()?;
        (text.contains("Liveness probe failed: Get \"http://")
            && text.contains("Container doomed failed liveness probe, will be restarted"))
        .then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_is_not_ready_until_it_has_a_pod_cidr() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let node = Node::start_with(&cp, "node-k", &[], false).await?;
    let client = cp.client().await?;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let message = wait::until("the node to report its network not ready", TIMEOUT, || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get_opt("node-k").await.ok()??;
            let ready = n
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "Ready")?;
            (ready.status == "False" && ready.reason.as_deref() == Some("KubeletNotReady"))
                .then_some(ready.message.unwrap_or_default())
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", node.logs()))?;
    assert!(
        message.starts_with("container runtime network not ready: NetworkReady=false"),
        "{message}"
    );
    let patch = json!({"spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]}});
    nodes
        .patch(
            "node-k",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    node.wait_ready(&client).await?;
    create_pod(
        &client,
        json!({"metadata": {"name": "p"}, "spec": {"nodeName": "node-k", "containers": [
            {"name": "c", "image": BUSYBOX, "command": ["sleep", "3600"]}]}}),
    )
    .await?;
    let ip = wait_pod(&client, &node, "p", "the pod to run", |p| {
        (phase(p) == "Running").then(|| p.status.as_ref()?.pod_ip.clone())?
    })
    .await?;
    assert!(
        ip.starts_with(node.pod_cidr.trim_end_matches("0/24")),
        "{ip}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_pod_runs_and_is_mirrored_in_the_api() -> Result<()> {
    let (cp, node, client) = start("node-l").await?;
    let manifest = node.manifests.join("static-web.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\n  labels:\n    tier: node\nspec:\n  containers:\n  - name: web\n    image: {BUSYBOX}\n    command: [sleep, \"3600\"]\n"
        ),
    )?;
    let mirror = wait_pod(
        &client,
        &node,
        "static-web-node-l",
        "the mirror pod to run",
        |p| {
            (phase(p) == "Running" && condition(p, "Ready").as_deref() == Some("True"))
                .then(|| p.clone())
        },
    )
    .await?;
    let annotations = mirror.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("kubernetes.io/config.source")
            .map(String::as_str),
        Some("file")
    );
    assert_eq!(
        annotations.get("kubernetes.io/config.mirror"),
        annotations.get("kubernetes.io/config.hash")
    );
    let owner = mirror.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(
        owner.first().map(|o| (o.kind.as_str(), o.name.as_str())),
        Some(("Node", "node-l"))
    );
    let static_uid = annotations["kubernetes.io/config.hash"].clone();
    let table = cp.kubectl(&["get", "pods", "static-web-node-l"])?;
    assert!(table.contains("Running"), "{table}");

    // A deleted mirror pod comes back; the static pod keeps running.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let first_uid = mirror.metadata.uid.clone();
    pods.delete(
        "static-web-node-l",
        &DeleteParams::default().grace_period(0),
    )
    .await?;
    let again = wait_pod(
        &client,
        &node,
        "static-web-node-l",
        "the mirror pod to come back",
        |p| (p.metadata.uid != first_uid && phase(p) == "Running").then(|| p.clone()),
    )
    .await?;
    let before = container(&mirror, "web").and_then(|c| c.container_id.clone());
    assert_eq!(
        container(&again, "web").and_then(|c| c.container_id.clone()),
        before
    );

    // Removing the manifest stops the pod and deletes its mirror.
    std::fs::remove_file(&manifest)?;
    wait::until("the mirror pod to be deleted", TIMEOUT, || {
        let pods = pods.clone();
        async move { matches!(pods.get_opt("static-web-node-l").await, Ok(None)).then_some(()) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", node.logs()))?;
    let cri = node.cri.clone();
    wait::until("the static pod's sandbox to be removed", TIMEOUT, || {
        let cri = cri.clone();
        let uid = static_uid.clone();
        async move {
            let left = cri
                .list_pod_sandboxes(capstan_kubelet::cri::labels::of_pod(&uid))
                .await
                .ok()?;
            left.is_empty().then_some(())
        }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_image_restarts_the_container() -> Result<()> {
    let (cp, node, client) = start("node-m").await?;
    let retagged = "localhost/capstan/busybox:retagged";
    let out = std::process::Command::new("ctr")
        .arg("-a")
        .arg(node.containerd.socket())
        .args(["-n", "k8s.io", "images", "tag", BUSYBOX, retagged])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "ctr tag: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    create_pod(
        &client,
        json!({
            "metadata": {"name": "upgraded"},
            "spec": {"nodeName": "node-m", "terminationGracePeriodSeconds": 1, "containers": [
                {"name": "c", "image": BUSYBOX, "command": ["sleep", "3600"]}]},
        }),
    )
    .await?;
    let before = wait_pod(&client, &node, "upgraded", "the pod to run", |p| {
        let c = container(p, "c")?;
        c.ready.then(|| c.container_id.clone())?
    })
    .await?;
    cp.kubectl(&["set", "image", "pod/upgraded", &format!("c={retagged}")])?;
    let after = wait_pod(
        &client,
        &node,
        "upgraded",
        "the container to run the new image",
        |p| {
            let c = container(p, "c")?;
            (c.ready && c.image == retagged).then(|| c.clone())
        },
    )
    .await?;
    assert_ne!(after.container_id.as_ref(), Some(&before));
    assert_eq!(after.restart_count, 1);
    Ok(())
}

/// Runs `ctr` against the node's containerd in the CRI namespace.
fn ctr(node: &Node, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("ctr")
        .arg("-a")
        .arg(node.containerd.socket())
        .args(["-n", "k8s.io"])
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "ctr {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_pulled_from_a_registry() -> Result<()> {
    let (cp, node, client) = start("node-n").await?;
    let registry = capstan_tests::registry::Registry::start().await?;
    node.containerd.trust_plain_http_registry(&registry.host)?;
    // Push busybox to the registry, then forget it locally.
    let remote = format!("{}/capstan/busybox:pulled", registry.host);
    ctr(&node, &["images", "tag", BUSYBOX, &remote])?;
    ctr(&node, &["images", "push", "--plain-http", &remote])?;
    ctr(&node, &["images", "rm", &remote])?;
    // Pull secrets are read and handed to CRI (this registry ignores them).
    cp.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", registry.host),
        "--docker-username=u",
        "--docker-password=p",
    ])?;
    create_pod(
        &client,
        json!({
            "metadata": {"name": "pulled"},
            "spec": {"nodeName": "node-n", "imagePullSecrets": [{"name": "regcred"}], "containers": [
                {"name": "c", "image": remote, "imagePullPolicy": "Always", "command": ["sleep", "3600"]}]},
        }),
    )
    .await?;
    let c = wait_pod(&client, &node, "pulled", "the pulled image to run", |p| {
        let c = container(p, "c")?;
        c.ready.then(|| c.clone())
    })
    .await?;
    assert_eq!(c.image, remote);
    assert!(
        c.image_id
            .starts_with(&format!("{}/capstan/busybox@sha256:", registry.host)),
        "{}",
        c.image_id
    );
    let pulled = format!("Successfully pulled image {remote:?}");
    wait::until("the pull events", TIMEOUT, || async {
        let text = cp.kubectl(&["describe", "pod", "pulled"]).ok()?;
        (text.contains(&format!("Pulling image {remote:?}")) && text.contains(&pulled))
            .then_some(())
    })
    .await?;

    // A registry that is not there: ErrImagePull, then ImagePullBackOff.
    create_pod(
        &client,
        json!({
            "metadata": {"name": "unpullable"},
            "spec": {"nodeName": "node-n", "containers": [
                {"name": "c", "image": "127.0.0.1:1/capstan/nothing:1"}]},
        }),
    )
    .await?;
    wait_pod(&client, &node, "unpullable", "ImagePullBackOff", |p| {
        let w = container(p, "c")?.state.clone()?.waiting?;
        (w.reason.as_deref() == Some("ImagePullBackOff")).then_some(())
    })
    .await?;
    Ok(())
}
