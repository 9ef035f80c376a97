//! kubectl against a real apiserver and etcd: the verbs a user types, from
//! YAML files with kubectl's default (server-side) validation, and what
//! `get`, `describe` and `api-resources` print.

use std::time::Duration;

use anyhow::Result;
use capstan_tests::fixture::{ControlPlane, KUBECTL, KUBECTL_1_27, KUBECTL_1_28, KUBECTL_OLD};
use capstan_tests::table::printed_table;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    ports: [{containerPort: 80}]
"#;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx}]
"#;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

const CONFIGMAP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {tier: backend}}
data: {mode: fast}
"#;

#[tokio::test]
async fn create_get_patch_delete_from_yaml_files() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    for (name, text) in [
        ("pod.yaml", POD),
        ("deploy.yaml", DEPLOYMENT),
        ("svc.yaml", SERVICE),
        ("cm.yaml", CONFIGMAP),
    ] {
        let path = cp.write(name, text)?;
        let out = cp.kubectl(&["create", "-f", &path])?;
        assert!(out.contains("created"), "{out}");
    }
    // Defaulted fields show as upstream shows them.
    let pod = cp.kubectl(&["get", "pod", "web", "-o", "yaml"])?;
    for field in [
        "restartPolicy: Always",
        "dnsPolicy: ClusterFirst",
        "imagePullPolicy: IfNotPresent",
        "terminationMessagePath: /dev/termination-log",
        "phase: Pending",
        "protocol: TCP",
        // DefaultTolerationSeconds admission.
        "key: node.kubernetes.io/not-ready",
        "tolerationSeconds: 300",
    ] {
        assert!(pod.contains(field), "missing {field} in\n{pod}");
    }
    let table = cp.kubectl(&["get", "pods"])?;
    assert!(
        table.starts_with("NAME") && table.contains("READY") && table.contains("STATUS"),
        "{table}"
    );
    assert!(
        table.contains("web") && table.contains("0/1") && table.contains("Pending"),
        "{table}"
    );
    let deploy = cp.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.strategy.rollingUpdate.maxSurge} {.metadata.generation}",
    ])?;
    assert_eq!(deploy, "25% 1");
    let svc = cp.kubectl(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.ports[0].protocol} {.spec.type}",
    ])?;
    assert_eq!(svc, "TCP ClusterIP");

    // label (merge patch), patch --type merge and --type json.
    cp.kubectl(&["label", "pod", "web", "tier=front"])?;
    assert_eq!(
        cp.kubectl(&["get", "pods", "-l", "tier=front", "-o", "name"])?
            .trim(),
        "pod/web"
    );
    cp.kubectl(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
    ])?;
    cp.kubectl(&[
        "patch",
        "cm",
        "settings",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/extra","value":"1"}]"#,
    ])?;
    let after = cp.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.metadata.generation}",
    ])?;
    assert_eq!(after, "5 2", "a spec change bumps generation");
    assert_eq!(
        cp.kubectl(&["get", "cm", "settings", "-o", "jsonpath={.data.extra}"])?,
        "1"
    );

    // describe and delete.
    let described = cp.kubectl(&["describe", "pod", "web"])?;
    assert!(
        described.contains("Name:")
            && described.contains("nginx:1.27")
            && described.contains("tier=front"),
        "{described}"
    );
    cp.kubectl(&["delete", "cm", "settings"])?;
    let err = cp.kubectl_err(&["get", "cm", "settings"])?;
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn older_kubectl_creates_from_files_and_lists() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let path = cp.write("cm.yaml", CONFIGMAP)?;
    let out = cp.kubectl_ok(KUBECTL_OLD, &["create", "-f", &path])?;
    assert!(out.contains("configmap/settings created"), "{out}");
    let out = cp.kubectl_ok(KUBECTL_OLD, &["apply", "-f", &cp.write("pod.yaml", POD)?])?;
    assert!(out.contains("pod/web created"), "{out}");
    let listed = cp.kubectl_ok(
        KUBECTL_OLD,
        &["get", "cm", "-l", "tier=backend", "-o", "name"],
    )?;
    assert_eq!(listed.trim(), "configmap/settings");
    Ok(())
}

#[tokio::test]
async fn api_resources_lists_what_is_served_with_short_names() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let out = cp.kubectl(&["api-resources", "--no-headers"])?;
    for (resource, short) in [
        ("pods", "po"),
        ("deployments", "deploy"),
        ("services", "svc"),
        ("configmaps", "cm"),
        ("namespaces", "ns"),
        ("nodes", "no"),
        ("replicasets", "rs"),
        ("daemonsets", "ds"),
        ("statefulsets", "sts"),
        ("cronjobs", "cj"),
        ("endpoints", "ep"),
        ("serviceaccounts", "sa"),
        ("events", "ev"),
    ] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(resource));
        assert!(
            line.is_some_and(|l| l.split_whitespace().nth(1) == Some(short)),
            "{resource} should have short name {short}:\n{out}"
        );
    }
    // Every listed resource can be read with kubectl get.
    let names = cp.kubectl(&["api-resources", "-o", "name", "--verbs=list"])?;
    let all: Vec<&str> = names.lines().collect();
    assert!(all.len() >= 29, "{names}");
    let joined = all.join(",");
    cp.kubectl(&["get", &joined, "-A"])?;
    Ok(())
}

#[tokio::test]
async fn invalid_objects_are_refused_with_field_causes_and_not_stored() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let bad = r#"
apiVersion: v1
kind: Pod
metadata: {name: Bad_Name}
spec:
  containers: [{name: c}]
"#;
    let err = cp.kubectl_err(&["create", "-f", &cp.write("bad.yaml", bad)?])?;
    assert!(err.contains("is invalid"), "{err}");
    assert!(
        err.contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{err}"
    );
    assert!(
        err.contains("spec.containers[0].image: Required value"),
        "{err}"
    );
    let listed = cp.kubectl(&["get", "pods", "-o", "name"])?;
    assert!(listed.trim().is_empty(), "nothing stored: {listed}");
    Ok(())
}

#[tokio::test]
async fn wait_for_delete_returns_once_finalizers_are_cleared() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let held = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: held, finalizers: [example.com/hold]}
"#;
    cp.kubectl(&["create", "-f", &cp.write("held.yaml", held)?])?;
    cp.kubectl(&["delete", "cm", "held", "--wait=false"])?;
    let ts = cp.kubectl(&[
        "get",
        "cm",
        "held",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ])?;
    assert!(!ts.is_empty(), "marked for deletion, not removed");
    let kubeconfig = cp.kubeconfig.clone();
    let waiter = tokio::process::Command::new(KUBECTL)
        .args(["wait", "--for=delete", "cm/held", "--timeout=60s"])
        .env("KUBECONFIG", &kubeconfig)
        .output();
    let waiter = tokio::spawn(waiter);
    cp.kubectl(&[
        "patch",
        "cm",
        "held",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])?;
    let out = tokio::time::timeout(Duration::from_secs(90), waiter).await???;
    assert!(
        out.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = cp.kubectl_err(&["get", "cm", "held"])?;
    assert!(err.contains("not found"), "{err}");
    Ok(())
}

#[tokio::test]
async fn namespaces_gate_where_objects_may_be_created() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let listed = cp.kubectl(&["get", "ns", "-o", "name"])?;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(listed.contains(&format!("namespace/{ns}")), "{listed}");
    }
    let path = cp.write("cm.yaml", CONFIGMAP)?;
    let err = cp.kubectl_err(&["create", "-f", &path, "-n", "missing"])?;
    assert!(err.contains("namespaces \"missing\" not found"), "{err}");
    cp.kubectl(&[
        "apply",
        "-f",
        &cp.write(
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
        )?,
    ])?;
    cp.kubectl(&["create", "-f", &path, "-n", "team"])?;
    cp.kubectl(&["delete", "ns", "team", "--wait=false"])?;
    let phase = cp.kubectl(&["get", "ns", "team", "-o", "jsonpath={.status.phase}"])?;
    assert_eq!(phase, "Terminating");
    let err = cp.kubectl_err(&[
        "create",
        "-f",
        &cp.write("cm2.yaml", &CONFIGMAP.replace("settings", "other"))?,
        "-n",
        "team",
    ])?;
    assert!(err.contains("because it is being terminated"), "{err}");
    // The namespace controller's last step: clearing spec.finalizers through
    // the finalize subresource removes the namespace.
    let mut ns: serde_json::Value =
        serde_json::from_str(&cp.kubectl(&["get", "ns", "team", "-o", "json"])?)?;
    ns["spec"]["finalizers"] = serde_json::json!([]);
    let file = cp.write("finalize.json", &ns.to_string())?;
    cp.kubectl(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/team/finalize",
        "-f",
        &file,
    ])?;
    let err = cp.kubectl_err(&["get", "ns", "team"])?;
    assert!(err.contains("not found"), "{err}");
    Ok(())
}

#[tokio::test]
async fn kubectl_133_typed_creates_send_protobuf_bodies() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    assert_eq!(
        cp.kubectl(&["create", "namespace", "team"])?.trim(),
        "namespace/team created"
    );
    let out = cp.kubectl(&[
        "create",
        "configmap",
        "conf",
        "-n",
        "team",
        "--from-literal=mode=fast",
        "--from-literal=level=3",
    ])?;
    assert_eq!(out.trim(), "configmap/conf created");
    let out = cp.kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        "team",
        "--image=nginx:1.27",
        "--replicas=2",
        "--port=80",
    ])?;
    assert_eq!(out.trim(), "deployment.apps/web created");
    let out = cp.kubectl(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "team",
        "--from-literal=password=s3cr3t",
    ])?;
    assert_eq!(out.trim(), "secret/creds created");
    assert_eq!(
        cp.kubectl(&[
            "get",
            "cm",
            "conf",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.mode} {.data.level}"
        ])?,
        "fast 3"
    );
    let deploy = cp.kubectl(&["get", "deploy", "web", "-n", "team", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.spec.strategy.type}"])?;
    assert_eq!(deploy, "2 nginx:1.27 80 RollingUpdate");
    // base64 of "s3cr3t"
    assert_eq!(
        cp.kubectl(&[
            "get",
            "secret",
            "creds",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.password}"
        ])?,
        "czNjcjN0"
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_get_watch_prints_changes_as_they_happen() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    cp.kubectl(&["create", "-f", &cp.write("cm.yaml", CONFIGMAP)?])?;
    let mut watcher = tokio::process::Command::new(KUBECTL)
        .args(["get", "cm", "-w", "--output-watch-events"])
        .env("KUBECONFIG", &cp.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = watcher
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut seen = Vec::new();
    let mut created_second = false;
    while !seen
        .iter()
        .any(|l: &String| l.contains("ADDED") && l.contains("second"))
    {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await??
            .ok_or_else(|| anyhow::anyhow!("watch ended: {seen:?}"))?;
        if line.contains("settings") && !created_second {
            cp.kubectl(&["create", "configmap", "second"])?;
            created_second = true;
        }
        seen.push(line);
    }
    assert!(
        seen[0].starts_with("EVENT") && seen[0].contains("NAME") && seen[0].contains("DATA"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("ADDED") && l.contains("settings")),
        "{seen:?}"
    );
    Ok(())
}

#[tokio::test]
async fn misspelt_fields_are_refused_strictly_warned_or_ignored_as_asked() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let typo = r#"
apiVersion: v1
kind: Pod
metadata: {name: typo}
spec:
  containers: [{name: c, image: nginx, imagee: oops}]
"#;
    // An empty list is known (and dropped, as upstream's omitempty does).
    let fine = typo.replace("imagee: oops", "env: []");
    cp.kubectl(&[
        "create",
        "-f",
        &cp.write("fine.yaml", &fine)?,
        "--dry-run=server",
    ])?;
    let path = cp.write("typo.yaml", typo)?;
    let err = cp.kubectl_err(&["create", "-f", &path])?;
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.containers[0].imagee""#),
        "{err}"
    );
    assert!(
        cp.kubectl(&["get", "pods", "-o", "name"])?
            .trim()
            .is_empty(),
        "nothing stored"
    );
    let out = cp.kubectl_with(KUBECTL, &["create", "-f", &path, "--validate=warn"])?;
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"unknown field "spec.containers[0].imagee""#),
        "{stderr}"
    );
    cp.kubectl(&["delete", "pod", "typo"])?;
    let out = cp.kubectl_with(KUBECTL, &["create", "-f", &path, "--validate=false"])?;
    assert!(
        out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("unknown field")
    );
    Ok(())
}

#[tokio::test]
async fn apply_again_set_image_restart_and_cordon_use_strategic_merge() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let two = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {team: a}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: "app:1", env: [{name: MODE, value: fast}, {name: DEBUG, value: "1"}]}
      - {name: sidecar, image: "proxy:1"}
"#;
    let path = cp.write("web.yaml", two)?;
    assert!(cp.kubectl(&["apply", "-f", &path])?.contains("created"));
    // Re-apply with a new image, one env var and the label removed.
    let changed = two
        .replace("app:1", "app:2")
        .replace(", {name: DEBUG, value: \"1\"}", "")
        .replace(", labels: {team: a}", "");
    let path = cp.write("web.yaml", &changed)?;
    assert!(cp.kubectl(&["apply", "-f", &path])?.contains("configured"));
    let got = cp.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].image} {.spec.template.spec.containers[0].env[*].name} {.metadata.labels.team}|{.metadata.generation}"])?;
    assert_eq!(got, "app:2 proxy:1 MODE |2");
    assert!(cp.kubectl(&["apply", "-f", &path])?.contains("unchanged"));

    cp.kubectl(&["set", "image", "deploy/web", "sidecar=proxy:2"])?;
    let images = cp.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ])?;
    assert_eq!(images, "app:2 proxy:2", "only the named container changes");
    cp.kubectl(&["rollout", "restart", "deploy/web"])?;
    let restarted = cp.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt} {.spec.template.spec.containers[*].name}"])?;
    assert!(
        restarted.ends_with(" app sidecar") && restarted.len() > " app sidecar".len(),
        "{restarted}"
    );
    cp.kubectl(&["patch", "deploy", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"MODE","$patch":"delete"}]}]}}}}"#])?;
    assert_eq!(
        cp.kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env}"
        ])?,
        ""
    );

    cp.kubectl(&[
        "create",
        "-f",
        &cp.write(
            "node.yaml",
            "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n",
        )?,
    ])?;
    cp.kubectl(&["cordon", "n1"])?;
    assert_eq!(
        cp.kubectl(&["get", "node", "n1", "-o", "jsonpath={.spec.unschedulable}"])?,
        "true"
    );
    assert!(
        cp.kubectl(&["get", "nodes"])?
            .contains("SchedulingDisabled")
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_scale_goes_through_the_scale_subresource() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    cp.kubectl(&["create", "-f", &cp.write("deploy.yaml", DEPLOYMENT)?])?;
    assert_eq!(
        cp.kubectl(&["scale", "deploy", "web", "--replicas=5"])?
            .trim(),
        "deployment.apps/web scaled"
    );
    let got = cp.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.metadata.generation}",
    ])?;
    assert_eq!(got, "5 2");
    let scale = cp.kubectl(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ])?;
    let scale: serde_json::Value = serde_json::from_str(&scale)?;
    assert_eq!(
        (
            scale["kind"].as_str(),
            scale["spec"]["replicas"].as_i64(),
            scale["status"]["selector"].as_str()
        ),
        (Some("Scale"), Some(5), Some("app=web"))
    );
    // A precondition that does not hold is refused and changes nothing.
    let err = cp.kubectl_err(&[
        "scale",
        "deploy",
        "web",
        "--current-replicas=3",
        "--replicas=1",
    ])?;
    assert!(
        err.contains("Expected replicas to be 3, was 5") || err.contains("precondition"),
        "{err}"
    );
    let err = cp.kubectl_err(&["scale", "deploy", "web", "--replicas=-1"])?;
    assert!(!err.is_empty());
    let err = cp.kubectl_err(&[
        "patch",
        "deploy",
        "web",
        "--subresource=scale",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":"3"}}"#,
    ])?;
    assert!(err.contains("decoding Scale"), "{err}");
    assert_eq!(
        cp.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])?,
        "5"
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_drain_cordons_and_evicts() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    cp.kubectl(&[
        "create",
        "-f",
        &cp.write(
            "node.yaml",
            "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n",
        )?,
    ])?;
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: on-n1}\nspec:\n  nodeName: n1\n  containers: [{name: c, image: x}]\n";
    cp.kubectl(&["create", "-f", &cp.write("pod.yaml", pod)?])?;
    cp.kubectl(&[
        "patch",
        "pod",
        "on-n1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running"}}"#,
    ])?;
    let out = cp.kubectl(&[
        "drain",
        "n1",
        "--force",
        "--grace-period=0",
        "--timeout=60s",
    ])?;
    assert!(
        out.contains("evicting pod default/on-n1") || out.contains("pod/on-n1 evicted"),
        "{out}"
    );
    assert!(out.contains("node/n1 drained"), "{out}");
    assert_eq!(
        cp.kubectl(&["get", "node", "n1", "-o", "jsonpath={.spec.unschedulable}"])?,
        "true"
    );
    assert!(
        cp.kubectl(&["get", "pods", "-o", "name"])?
            .trim()
            .is_empty()
    );
    Ok(())
}

/// What kubectl 1.27 and 1.28 do with a manifest, all of which starts by
/// reading `/openapi/v2` in gnostic protobuf: create, apply a change,
/// refuse an unknown field (server-side, as the served document says PATCH
/// takes `fieldValidation`), and explain a field from the v3 document and
/// from the v2 one.
async fn create_apply_refuse_and_explain_with(kubectl: &str) -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let path = cp.write("deploy.yaml", DEPLOYMENT)?;
    assert_eq!(
        cp.kubectl_ok(kubectl, &["create", "-f", &path])?.trim(),
        "deployment.apps/web created"
    );
    let changed = DEPLOYMENT.replace("replicas: 3", "replicas: 2").replace(
        "[{name: nginx, image: nginx}]",
        r#"[{name: nginx, image: "nginx:1.27"}, {name: sidecar, image: busybox}]"#,
    );
    let path = cp.write("deploy.yaml", &changed)?;
    assert_eq!(
        cp.kubectl_ok(kubectl, &["apply", "-f", &path])?.trim(),
        "deployment.apps/web configured"
    );
    let got = cp.kubectl_ok(
        kubectl,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[*].image}",
        ],
    )?;
    assert_eq!(got, "2 nginx:1.27 busybox");
    assert_eq!(
        cp.kubectl_ok(kubectl, &["apply", "-f", &path])?.trim(),
        "deployment.apps/web unchanged"
    );

    let typo = DEPLOYMENT
        .replace("{name: web}", "{name: typo}")
        .replace("image: nginx}", "image: nginx, imagee: oops}");
    let out = cp.kubectl_with(kubectl, &["create", "-f", &cp.write("typo.yaml", &typo)?])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(r#"unknown field "spec.template.spec.containers[0].imagee""#),
        "{stderr}"
    );
    let listed = cp.kubectl_ok(kubectl, &["get", "deploy", "-o", "name"])?;
    assert_eq!(listed.trim(), "deployment.apps/web", "nothing else stored");

    let explained = cp.kubectl_ok(kubectl, &["explain", "pods.spec.containers"])?;
    assert!(
        explained.contains("List of containers belonging to the pod")
            && explained.contains("imagePullPolicy\t<string>")
            && explained.contains("name\t<string> -required-"),
        "{explained}"
    );
    let explained_v2 = cp.kubectl_ok(
        kubectl,
        &[
            "explain",
            "deploy.spec.strategy.rollingUpdate",
            "--output=plaintext-openapiv2",
        ],
    )?;
    assert!(
        explained_v2.contains("RESOURCE: rollingUpdate <Object>")
            && explained_v2.contains("maxSurge\t<string>")
            && explained_v2.contains("The maximum number of pods that can be scheduled"),
        "{explained_v2}"
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_127_creates_applies_validates_and_explains() -> Result<()> {
    create_apply_refuse_and_explain_with(KUBECTL_1_27).await
}

#[tokio::test]
async fn kubectl_128_creates_applies_validates_and_explains() -> Result<()> {
    create_apply_refuse_and_explain_with(KUBECTL_1_28).await
}

/// `/openapi/v2` the way kubectl's HTTP cache sees it: the protobuf it asks
/// for under the legacy name comes back labelled with a name Go can parse,
/// with an ETag that a revalidation answers with 304 and no body; JSON for
/// `application/json`; 406 for anything else.
#[tokio::test]
async fn openapi_v2_negotiates_protobuf_or_json_and_revalidates_by_etag() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let get = |accept: &str, etag: Option<&str>| {
        let mut req = http::Request::get("/openapi/v2").header("Accept", accept);
        if let Some(etag) = etag {
            req = req.header("If-None-Match", etag);
        }
        let req = req.body(kube::client::Body::empty());
        let client = client.clone();
        async move {
            let resp = client.send(req?).await?;
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            let (code, content_type, etag) = (
                resp.status().as_u16(),
                header("Content-Type"),
                header("ETag"),
            );
            let body = resp.into_body().collect_bytes().await?;
            anyhow::Ok((code, content_type, etag, body))
        }
    };
    let legacy = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let (code, content_type, etag, body) = get(legacy, None).await?;
    assert_eq!(
        (code, content_type.as_str()),
        (
            200,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        )
    );
    // Field 1 of openapi.v2.Document is `swagger: "2.0"`.
    assert!(
        body.starts_with(b"\x0a\x032.0"),
        "{:?}",
        &body[..body.len().min(16)]
    );
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
    let (code, _, again, body) = get(legacy, Some(&etag)).await?;
    assert_eq!((code, again.as_str(), body.len()), (304, etag.as_str(), 0));

    let (code, content_type, json_etag, body) = get("application/json", Some(&etag)).await?;
    assert_eq!((code, content_type.as_str()), (200, "application/json"));
    assert_ne!(json_etag, etag, "each encoding has its own ETag");
    let doc: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(
        doc["definitions"]["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "", "version": "v1", "kind": "Pod"}])
    );
    assert!(doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"].is_object());

    let (code, ..) = get("text/html", None).await?;
    assert_eq!(code, 406);
    Ok(())
}

#[tokio::test]
async fn kubectl_get_prints_storage_priority_and_lease_tables_as_upstream() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let objects = r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: example.com/nfs
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv1}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadOnlyMany, ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: fast
  volumeMode: Filesystem
  claimRef: {namespace: default, name: data}
  nfs: {server: nfs.example.com, path: /exports/1}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  storageClassName: fast
  volumeName: pv1
  volumeMode: Filesystem
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: unbound}
spec:
  accessModes: [ReadWriteOncePod]
  resources: {requests: {storage: 1Gi}}
  storageClassName: ""
  volumeMode: Block
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: batch-low}
value: 100
preemptionPolicy: Never
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: n1, namespace: kube-node-lease}
spec: {holderIdentity: n1, leaseDurationSeconds: 40}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: released, namespace: kube-node-lease}
spec: {leaseDurationSeconds: 40}
"#;
    cp.kubectl(&["create", "-f", &cp.write("objects.yaml", objects)?])?;
    for (kind, name, status) in [
        ("pv", "pv1", r#"{"status":{"phase":"Bound"}}"#),
        (
            "pvc",
            "data",
            r#"{"status":{"phase":"Bound","capacity":{"storage":"5Gi"},"accessModes":["ReadWriteOnce","ReadOnlyMany"]}}"#,
        ),
    ] {
        cp.kubectl(&[
            "patch",
            kind,
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ])?;
    }

    let pv = [
        "NAME",
        "CAPACITY",
        "ACCESS MODES",
        "RECLAIM POLICY",
        "STATUS",
        "CLAIM",
        "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS",
        "REASON",
        "AGE",
    ];
    let bound_pv = [
        "pv1",
        "5Gi",
        "RWO,ROX",
        "Retain",
        "Bound",
        "default/data",
        "fast",
        "<unset>",
        "",
        "<age>",
    ];
    assert_eq!(printed_table(&cp.kubectl(&["get", "pv"])?, &pv), [bound_pv]);
    let wide = [&pv[..], &["VOLUMEMODE"]].concat();
    let wide_row = [&bound_pv[..], &["Filesystem"]].concat();
    assert_eq!(
        printed_table(&cp.kubectl(&["get", "pv", "-o", "wide"])?, &wide),
        [wide_row]
    );

    let pvc = [
        "NAME",
        "STATUS",
        "VOLUME",
        "CAPACITY",
        "ACCESS MODES",
        "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS",
        "AGE",
        "VOLUMEMODE",
    ];
    assert_eq!(
        printed_table(&cp.kubectl(&["get", "pvc", "-o", "wide"])?, &pvc),
        [
            [
                "data",
                "Bound",
                "pv1",
                "5Gi",
                "RWO,ROX",
                "fast",
                "<unset>",
                "<age>",
                "Filesystem"
            ],
            [
                "unbound", "Pending", "", "", "", "", "<unset>", "<age>", "Block"
            ],
        ]
    );
    assert_eq!(
        printed_table(&cp.kubectl(&["get", "pvc"])?, &pvc[..8]),
        [
            [
                "data", "Bound", "pv1", "5Gi", "RWO,ROX", "fast", "<unset>", "<age>"
            ],
            ["unbound", "Pending", "", "", "", "", "<unset>", "<age>"],
        ]
    );

    assert_eq!(
        printed_table(
            &cp.kubectl(&["get", "sc"])?,
            &[
                "NAME",
                "PROVISIONER",
                "RECLAIMPOLICY",
                "VOLUMEBINDINGMODE",
                "ALLOWVOLUMEEXPANSION",
                "AGE"
            ]
        ),
        [[
            "fast (default)",
            "example.com/nfs",
            "Delete",
            "WaitForFirstConsumer",
            "true",
            "<age>"
        ]]
    );

    // The two built-in classes are listed with the new one.
    assert_eq!(
        printed_table(
            &cp.kubectl(&["get", "pc"])?,
            &["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
        ),
        [
            ["batch-low", "100", "false", "<age>", "Never"],
            [
                "system-cluster-critical",
                "2000000000",
                "false",
                "<age>",
                "PreemptLowerPriority"
            ],
            [
                "system-node-critical",
                "2000001000",
                "false",
                "<age>",
                "PreemptLowerPriority"
            ],
        ]
    );

    assert_eq!(
        printed_table(
            &cp.kubectl(&["get", "lease", "-n", "kube-node-lease"])?,
            &["NAME", "HOLDER", "AGE"]
        ),
        [["n1", "n1", "<age>"], ["released", "", "<age>"]]
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_get_prints_workload_autoscaler_and_budget_tables_as_upstream() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let objects = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: redis, image: "redis:7"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: done}
spec:
  completions: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: perl}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: queue}
spec:
  parallelism: 2
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: worker, image: busybox}, {name: sidecar, image: envoy}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: hello}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: hello, image: busybox}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"#;
    cp.kubectl(&["create", "-f", &cp.write("objects.yaml", objects)?])?;
    cp.kubectl(&[
        "patch",
        "job",
        "done",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"startTime":"2025-01-01T00:00:00Z","completionTime":"2025-01-01T00:01:05Z","succeeded":1,"conditions":[{"type":"Complete","status":"True"}]}}"#,
    ])?;

    assert_eq!(
        printed_table(&cp.kubectl(&["get", "sts"])?, &["NAME", "READY", "AGE"]),
        [["db", "0/2", "<age>"]]
    );
    assert_eq!(
        printed_table(
            &cp.kubectl(&["get", "sts", "-o", "wide"])?,
            &["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]
        ),
        [["db", "0/2", "<age>", "redis", "redis:7"]]
    );

    let job = ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"];
    assert_eq!(
        printed_table(&cp.kubectl(&["get", "job"])?, &job),
        [
            ["done", "Complete", "1/1", "65s", "<age>"],
            ["queue", "Running", "0/1 of 2", "", "<age>"],
        ]
    );
    let wide = [&job[..], &["CONTAINERS", "IMAGES", "SELECTOR"]].concat();
    let rows = printed_table(&cp.kubectl(&["get", "job", "-o", "wide"])?, &wide);
    let uid = cp.kubectl(&["get", "job", "queue", "-o", "jsonpath={.metadata.uid}"])?;
    assert_eq!(
        rows[1],
        [
            "queue",
            "Running",
            "0/1 of 2",
            "",
            "<age>",
            "worker,sidecar",
            "busybox,envoy",
            &format!("batch.kubernetes.io/controller-uid={uid}"),
        ]
    );

    let cronjob = [
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "SUSPEND",
        "ACTIVE",
        "LAST SCHEDULE",
        "AGE",
    ];
    let row = [
        "hello",
        "*/5 * * * *",
        "<none>",
        "False",
        "0",
        "<none>",
        "<age>",
    ];
    assert_eq!(
        printed_table(&cp.kubectl(&["get", "cronjob"])?, &cronjob),
        [row]
    );
    assert_eq!(
        printed_table(
            &cp.kubectl(&["get", "cj", "-o", "wide"])?,
            &[&cronjob[..], &["CONTAINERS", "IMAGES", "SELECTOR"]].concat()
        ),
        [[&row[..], &["hello", "busybox", "<none>"]].concat()]
    );

    assert_eq!(
        printed_table(
            &cp.kubectl(&["get", "hpa"])?,
            &[
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE"
            ]
        ),
        [[
            "web",
            "Deployment/web",
            "cpu: <unknown>/80%",
            "2",
            "5",
            "0",
            "<age>"
        ]]
    );
    assert_eq!(
        printed_table(
            &cp.kubectl(&["get", "pdb"])?,
            &[
                "NAME",
                "MIN AVAILABLE",
                "MAX UNAVAILABLE",
                "ALLOWED DISRUPTIONS",
                "AGE"
            ]
        ),
        [["web", "1", "N/A", "0", "<age>"]]
    );
    Ok(())
}
