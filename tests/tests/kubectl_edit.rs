//! kubectl's editing verbs and wide tables against a real apiserver, with
//! kubectl 1.33 and 1.28: `diff` (a server-side dry run), `edit` (with
//! `KUBE_EDITOR` a script), `-o wide` for pods, deployments, services and
//! nodes; and the same strategic merge through the kube crate.

use anyhow::Result;
use capstan_tests::fixture::{ControlPlane, KUBECTL, KUBECTL_1_28};
use capstan_tests::table::printed_table;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const OBJECTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: "app:1"}
      - {name: sidecar, image: "proxy:1"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec:
  nodeName: n1
  containers: [{name: app, image: "app:1"}]
"#;

/// Gives the node and the pod the status a kubelet would report.
async fn report_status(cp: &ControlPlane) -> Result<()> {
    let client = cp.client().await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let node_status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "192.168.0.10"}, {"type": "Hostname", "address": "n1"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}],
        "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 13", "kernelVersion": "6.1.0",
            "containerRuntimeVersion": "containerd://1.7.24", "architecture": "amd64", "operatingSystem": "linux",
            "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""}}});
    nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(&node_status))
        .await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let pod_status = json!({"status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "app", "image": "app:1", "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}});
    pods.patch_status("web-1", &PatchParams::default(), &Patch::Merge(&pod_status))
        .await?;
    Ok(())
}

async fn diff_edit_and_wide_tables_with(kubectl: &str) -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let path = cp.write("objects.yaml", OBJECTS)?;
    cp.kubectl_ok(kubectl, &["apply", "-f", &path])?;
    report_status(&cp).await?;

    let pods = printed_table(
        &cp.kubectl_ok(kubectl, &["get", "pods", "-o", "wide"])?,
        &[
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES",
        ],
    );
    assert_eq!(
        pods,
        [[
            "web-1", "1/1", "Running", "0", "<age>", "10.0.0.5", "n1", "<none>", "<none>"
        ]]
    );
    let deployments = printed_table(
        &cp.kubectl_ok(kubectl, &["get", "deploy", "-o", "wide"])?,
        &[
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
    );
    assert_eq!(
        deployments,
        [[
            "web",
            "0/2",
            "0",
            "0",
            "<age>",
            "app,sidecar",
            "app:1,proxy:1",
            "app=web"
        ]]
    );
    let services = printed_table(
        &cp.kubectl_ok(kubectl, &["get", "svc", "web", "-o", "wide"])?,
        &[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR",
        ],
    );
    assert_eq!(
        (
            services[0][1].as_str(),
            services[0][4].as_str(),
            services[0][6].as_str()
        ),
        ("ClusterIP", "80/TCP", "app=web")
    );
    let nodes = printed_table(
        &cp.kubectl_ok(kubectl, &["get", "nodes", "-o", "wide"])?,
        &[
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME",
        ],
    );
    assert_eq!(
        nodes,
        [[
            "n1",
            "Ready",
            "<none>",
            "<age>",
            "v1.33.0",
            "192.168.0.10",
            "<none>",
            "Debian GNU/Linux 13",
            "6.1.0",
            "containerd://1.7.24"
        ]]
    );

    // diff: nothing to say for the applied file; a change shows as a
    // unified diff (exit code 1) and is not stored.
    let same = cp.kubectl_with(kubectl, &["diff", "-f", &path])?;
    assert_eq!(
        (same.status.code(), same.stdout.is_empty()),
        (Some(0), true),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    let changed = cp.write(
        "changed.yaml",
        &OBJECTS.replace("replicas: 2", "replicas: 4"),
    )?;
    let diff = cp.kubectl_with(kubectl, &["diff", "-f", &changed])?;
    let text = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(
        text.contains("-  replicas: 2") && text.contains("+  replicas: 4"),
        "{text}"
    );
    let replicas = cp.kubectl_ok(
        kubectl,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
    )?;
    assert_eq!(replicas, "2", "diff must not change the object");

    // edit: the editor is a script changing the image of one container.
    let editor = "sed -i s/proxy:1/proxy:2/";
    let edited = cp.kubectl_env(kubectl, &["edit", "deploy/web"], &[("KUBE_EDITOR", editor)])?;
    assert!(
        String::from_utf8_lossy(&edited.stdout).contains("deployment.apps/web edited"),
        "{}{}",
        String::from_utf8_lossy(&edited.stdout),
        String::from_utf8_lossy(&edited.stderr)
    );
    let images = cp.kubectl_ok(
        kubectl,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].image}",
        ],
    )?;
    assert_eq!(images, "app:1 proxy:2");
    Ok(())
}

#[tokio::test]
async fn kubectl_133_diffs_edits_and_prints_wide_tables() -> Result<()> {
    diff_edit_and_wide_tables_with(KUBECTL).await
}

#[tokio::test]
async fn kubectl_128_diffs_edits_and_prints_wide_tables() -> Result<()> {
    diff_edit_and_wide_tables_with(KUBECTL_1_28).await
}

#[tokio::test]
async fn kube_strategic_patches_merge_containers_by_name() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let path = cp.write("objects.yaml", OBJECTS)?;
    cp.kubectl(&["apply", "-f", &path])?;
    let deployments: Api<Deployment> = Api::default_namespaced(cp.client().await?);
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "proxy:3"}]}}}});
    let patched = deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    let images: Vec<String> = patched
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers.into_iter().filter_map(|c| c.image).collect())
        .unwrap_or_default();
    assert_eq!(images, ["app:1", "proxy:3"], "the other container is kept");
    Ok(())
}
