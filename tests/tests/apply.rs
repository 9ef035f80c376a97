//! Server-side apply and `managedFields` as users meet them: `kubectl apply
//! --server-side` (current and 1.28), conflicts and `--force-conflicts`,
//! fields dropped from a file, the move from client-side apply, and the
//! `kube` crate's `Patch::Apply`.

use anyhow::{Context, Result};
use capstan_tests::fixture::{ControlPlane, KUBECTL, KUBECTL_1_28};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

fn deployment(replicas: u32, labels: &str, image: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{{labels}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: nginx, image: {image}}}]
"#
    )
}

/// Runs `kubectl` expecting failure; returns its stderr.
fn kubectl_fails(cp: &ControlPlane, kubectl: &str, args: &[&str]) -> Result<String> {
    let out = cp.kubectl_with(kubectl, args)?;
    anyhow::ensure!(
        !out.status.success(),
        "{kubectl} {} unexpectedly succeeded: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn apply_conflict_force_and_prune_with(kubectl: &str) -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let mine = cp.write(
        "deploy.yaml",
        &deployment(2, "app: web, tier: front", "nginx"),
    )?;
    let out = cp.kubectl_ok(kubectl, &["apply", "--server-side", "-f", &mine])?;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let labels = cp.kubectl_ok(
        kubectl,
        &["get", "deploy", "web", "-o", "jsonpath={.metadata.labels}"],
    )?;
    assert!(labels.contains("\"tier\":\"front\""), "{labels}");

    // The label dropped from the file goes from the object.
    cp.write("deploy.yaml", &deployment(2, "app: web", "nginx"))?;
    cp.kubectl_ok(kubectl, &["apply", "--server-side", "-f", &mine])?;
    let labels = cp.kubectl_ok(
        kubectl,
        &["get", "deploy", "web", "-o", "jsonpath={.metadata.labels}"],
    )?;
    assert!(!labels.contains("tier"), "{labels}");
    assert!(labels.contains("\"app\":\"web\""), "{labels}");

    // Another manager wanting other replicas meets a conflict.
    let theirs = cp.write("other.yaml", &deployment(5, "app: web", "nginx"))?;
    let err = kubectl_fails(
        &cp,
        kubectl,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &theirs,
        ],
    )?;
    assert!(err.contains("conflict"), "{err}");
    assert!(err.contains(".spec.replicas"), "{err}");
    assert!(err.contains("\"kubectl\""), "{err}");
    let replicas = cp.kubectl_ok(
        kubectl,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
    )?;
    assert_eq!(replicas.trim(), "2");

    // Forced, the field changes hands.
    let out = cp.kubectl_ok(
        kubectl,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            &theirs,
        ],
    )?;
    assert!(out.contains("serverside-applied"), "{out}");
    let replicas = cp.kubectl_ok(
        kubectl,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
    )?;
    assert_eq!(replicas.trim(), "5");
    let yaml = cp.kubectl_ok(
        kubectl,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ],
    )?;
    for want in [
        "manager: kubectl\n",
        "manager: other\n",
        "operation: Apply",
        "fieldsType: FieldsV1",
        "f:replicas: {}",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in\n{yaml}");
    }
    // Without the flag kubectl hides them.
    let plain = cp.kubectl_ok(kubectl, &["get", "deploy", "web", "-o", "yaml"])?;
    assert!(!plain.contains("managedFields"), "{plain}");
    Ok(())
}

#[tokio::test]
async fn kubectl_server_side_apply_conflicts_force_and_prunes() -> Result<()> {
    apply_conflict_force_and_prune_with(KUBECTL).await
}

#[tokio::test]
async fn kubectl_1_28_server_side_apply_conflicts_force_and_prunes() -> Result<()> {
    apply_conflict_force_and_prune_with(KUBECTL_1_28).await
}

#[tokio::test]
async fn client_side_apply_then_server_side_apply() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let path = cp.write("deploy.yaml", &deployment(2, "app: web", "nginx:1.27"))?;
    let out = cp.kubectl(&["apply", "-f", &path])?;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let yaml = cp.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "yaml",
        "--show-managed-fields",
    ])?;
    assert!(
        yaml.contains("manager: kubectl-client-side-apply"),
        "{yaml}"
    );
    assert!(yaml.contains("operation: Update"), "{yaml}");

    let out = cp.kubectl(&["apply", "--server-side", "-f", &path])?;
    assert!(out.contains("serverside-applied"), "{out}");
    // Changing a field the client-side apply set is no conflict any more:
    // kubectl moved that ownership to its server-side manager.
    cp.write("deploy.yaml", &deployment(4, "app: web", "nginx:1.28"))?;
    let out = cp.kubectl(&["apply", "--server-side", "-f", &path])?;
    assert!(out.contains("serverside-applied"), "{out}");
    let shown = cp.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}",
    ])?;
    assert_eq!(shown.trim(), "4 nginx:1.28");
    Ok(())
}

fn config_map(data: Value) -> Result<ConfigMap> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": data,
    }))?)
}

fn managers(cm: &ConfigMap) -> Vec<(String, String)> {
    cm.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn kube_apply_patch_conflicts_force_and_dry_run() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await?, "default");

    // Dry run creates nothing.
    let dry = PatchParams::apply("mgr").dry_run();
    let shown = api
        .patch(
            "settings",
            &dry,
            &Patch::Apply(config_map(json!({"a": "1"}))?),
        )
        .await?;
    assert_eq!(managers(&shown), vec![("mgr".into(), "Apply".into())]);
    assert!(api.get_opt("settings").await?.is_none());

    // Apply creates.
    let created = api
        .patch(
            "settings",
            &PatchParams::apply("mgr"),
            &Patch::Apply(config_map(json!({"a": "1", "b": "2"}))?),
        )
        .await?;
    assert_eq!(
        created
            .data
            .as_ref()
            .and_then(|d| d.get("b"))
            .map(String::as_str),
        Some("2")
    );
    // Applying the same again writes nothing.
    let again = api
        .patch(
            "settings",
            &PatchParams::apply("mgr"),
            &Patch::Apply(config_map(json!({"a": "1", "b": "2"}))?),
        )
        .await?;
    assert_eq!(
        again.metadata.resource_version,
        created.metadata.resource_version
    );

    // Another manager changing `a` conflicts.
    let err = api
        .patch(
            "settings",
            &PatchParams::apply("other"),
            &Patch::Apply(config_map(json!({"a": "9"}))?),
        )
        .await
        .err()
        .context("a conflicting apply must fail")?;
    let kube::Error::Api(status) = err else {
        anyhow::bail!("unexpected error {err}");
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"mgr\": .data.a"
    );

    // Forced, `other` owns `a`; `mgr` dropping `b` removes it.
    let forced = api
        .patch(
            "settings",
            &PatchParams::apply("other").force(),
            &Patch::Apply(config_map(json!({"a": "9"}))?),
        )
        .await?;
    assert_eq!(
        forced
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("9")
    );
    let mut seen = managers(&forced);
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("mgr".into(), "Apply".into()),
            ("other".into(), "Apply".into())
        ]
    );
    let pruned = api
        .patch(
            "settings",
            &PatchParams::apply("mgr"),
            &Patch::Apply(config_map(json!({}))?),
        )
        .await?;
    let data = pruned.data.unwrap_or_default();
    assert_eq!(data.get("a").map(String::as_str), Some("9"));
    assert!(!data.contains_key("b"), "{data:?}");
    Ok(())
}

#[tokio::test]
async fn apply_without_field_manager_is_refused_and_updates_are_tracked() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/settings")
        .header("Content-Type", "application/apply-patch+yaml")
        .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n".to_vec())?;
    let err = client
        .request_text(req)
        .await
        .err()
        .context("apply without fieldManager must fail")?;
    let kube::Error::Api(status) = err else {
        anyhow::bail!("unexpected error {err}");
    };
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );

    // The configuration must be of the URL's kind.
    let req =
        http::Request::patch("/api/v1/namespaces/default/configmaps/settings?fieldManager=mgr")
            .header("Content-Type", "application/apply-patch+yaml")
            .body(b"apiVersion: v1\nkind: Secret\nmetadata: {name: settings}\n".to_vec())?;
    let err = client
        .request_text(req)
        .await
        .err()
        .context("applying a Secret to a ConfigMap must fail")?;
    let kube::Error::Api(status) = err else {
        anyhow::bail!("unexpected error {err}");
    };
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "the kind of the object (Secret) does not match the kind on the URL (ConfigMap)"
    );

    // A create and a merge patch each record their manager.
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(
        &kube::api::PostParams {
            field_manager: Some("creator".into()),
            ..Default::default()
        },
        &config_map(json!({"a": "1"}))?,
    )
    .await?;
    let patched = api
        .patch(
            "settings",
            &PatchParams {
                field_manager: Some("patcher".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"b": "2"}})),
        )
        .await?;
    let entries = patched.metadata.managed_fields.unwrap_or_default();
    let fields = |m: &str| {
        entries
            .iter()
            .find(|e| e.manager.as_deref() == Some(m))
            .and_then(|e| e.fields_v1.as_ref())
            .map(|f| f.0.clone())
    };
    assert_eq!(
        fields("creator"),
        Some(json!({"f:data": {".": {}, "f:a": {}}}))
    );
    assert_eq!(fields("patcher"), Some(json!({"f:data": {"f:b": {}}})));
    Ok(())
}

#[tokio::test]
async fn status_and_scale_subresources_apply_with_their_own_entries() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let path = cp.write("deploy.yaml", &deployment(2, "app: web", "nginx"))?;
    cp.kubectl(&["apply", "--server-side", "-f", &path])?;

    let status = cp.write(
        "status.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nstatus: {replicas: 2, readyReplicas: 1}\n",
    )?;
    let out = cp.kubectl(&[
        "apply",
        "--server-side",
        "--subresource=status",
        "--field-manager=status-writer",
        "-f",
        &status,
    ])?;
    assert!(out.contains("serverside-applied"), "{out}");
    let ready = cp.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ])?;
    assert_eq!(ready.trim(), "1");

    // Scaling through the scale subresource meets kubectl's ownership of
    // replicas, and takes it when forced.
    let api: Api<Deployment> = Api::namespaced(cp.client().await?, "default");
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web"}, "spec": {"replicas": 6}});
    let err = api
        .patch_scale(
            "web",
            &PatchParams::apply("autoscaler"),
            &Patch::Apply(&scale),
        )
        .await
        .err()
        .context("a conflicting scale apply must fail")?;
    let kube::Error::Api(status) = err else {
        anyhow::bail!("unexpected error {err}");
    };
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );
    let scaled = api
        .patch_scale(
            "web",
            &PatchParams::apply("autoscaler").force(),
            &Patch::Apply(&scale),
        )
        .await?;
    assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(6));
    let replicas = cp.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])?;
    assert_eq!(replicas.trim(), "6");

    let yaml = cp.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "yaml",
        "--show-managed-fields",
    ])?;
    for want in [
        "manager: status-writer",
        "subresource: status",
        "manager: autoscaler",
        "subresource: scale",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in\n{yaml}");
    }
    Ok(())
}

#[tokio::test]
async fn kubectl_diff_and_dry_run_server_side_write_nothing() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let path = cp.write("deploy.yaml", &deployment(2, "app: web", "nginx"))?;
    let out = cp.kubectl(&["apply", "--server-side", "--dry-run=server", "-f", &path])?;
    assert!(out.contains("serverside-applied (server dry run)"), "{out}");
    let err = cp.kubectl_err(&["get", "deploy", "web"])?;
    assert!(err.contains("not found"), "{err}");

    cp.kubectl(&["apply", "--server-side", "-f", &path])?;
    // Re-applying an unchanged file writes nothing.
    let version = |cp: &ControlPlane| {
        cp.kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
    };
    let before = version(&cp)?;
    cp.kubectl(&["apply", "--server-side", "-f", &path])?;
    assert_eq!(version(&cp)?, before);
    cp.write("deploy.yaml", &deployment(3, "app: web", "nginx"))?;
    // `kubectl diff` exits 1 when there are differences.
    let out = cp.kubectl_with(KUBECTL, &["diff", "--server-side", "-f", &path])?;
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("-  replicas: 2"), "{shown}");
    assert!(shown.contains("+  replicas: 3"), "{shown}");
    let replicas = cp.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])?;
    assert_eq!(replicas.trim(), "2");
    Ok(())
}
