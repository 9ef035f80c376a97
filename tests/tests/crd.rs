//! CustomResourceDefinitions end to end: a CRD becomes servable with no
//! restart, its objects are validated, pruned and defaulted by its schema,
//! printed with its printer columns, scaled through its scale subresource,
//! and deleted with it — through kubectl 1.33 and 1.28 and the kube crate.

use std::time::Duration;

use anyhow::{Context, Result};
use capstan_tests::fixture::{ControlPlane, KUBECTL, KUBECTL_1_28};
use capstan_tests::wait;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::json;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            x-kubernetes-validations:
            - rule: "!has(self.image) || self.image != 'forbidden'"
              message: the forbidden image may not be used
            properties:
              cronSpec:
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
                x-kubernetes-validations:
                - rule: self == oldSelf
                  message: cronSpec is immutable
              image:
                type: string
                default: busybox
              replicas:
                type: integer
                minimum: 1
                maximum: 10
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
"#;

const CRONTAB: &str = r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: my-cron
spec:
  cronSpec: "* * * * */5"
  replicas: 2
"#;

/// Creates the CronTab CRD with `kubectl` and waits until it is
/// established and its resource is served.
async fn establish(cp: &ControlPlane, kubectl: &str) -> Result<()> {
    let path = cp.write("crd.yaml", CRD)?;
    let out = cp.kubectl_ok(kubectl, &["apply", "-f", &path])?;
    assert!(out.contains("created"), "{out}");
    wait::until(
        "the CRD to be established",
        Duration::from_secs(20),
        || async {
            cp.kubectl_ok(
                kubectl,
                &[
                    "get",
                    "crd",
                    "crontabs.stable.example.com",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
                ],
            )
            .ok()
            .filter(|s| s == "True")
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn kubectl_serves_validates_prints_and_scales_custom_resources() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    establish(&cp, KUBECTL).await?;
    let resources = cp.kubectl(&["api-resources", "--api-group=stable.example.com"])?;
    assert!(
        resources.contains("crontabs") && resources.contains("ct") && resources.contains("CronTab"),
        "{resources}"
    );

    let path = cp.write("crontab.yaml", CRONTAB)?;
    let out = cp.kubectl(&["apply", "-f", &path])?;
    assert!(
        out.contains("crontab.stable.example.com/my-cron created"),
        "{out}"
    );
    // Printer columns, short name, and the schema's default.
    let table = cp.kubectl(&["get", "ct"])?;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    assert!(
        table.contains("my-cron") && table.contains("* * * * */5"),
        "{table}"
    );
    let image = cp.kubectl(&["get", "crontab", "my-cron", "-o", "jsonpath={.spec.image}"])?;
    assert_eq!(image, "busybox");
    // `kubectl get all` includes the category.
    let all = cp.kubectl(&["get", "all"])?;
    assert!(all.contains("crontab.stable.example.com/my-cron"), "{all}");

    // Client-side apply of a change (a JSON merge patch for custom kinds).
    let changed = CRONTAB.replace("replicas: 2", "replicas: 3");
    let path = cp.write("crontab.yaml", &changed)?;
    let out = cp.kubectl(&["apply", "-f", &path])?;
    assert!(out.contains("configured"), "{out}");
    let replicas = cp.kubectl(&["get", "ct", "my-cron", "-o", "jsonpath={.spec.replicas}"])?;
    assert_eq!(replicas, "3");

    // The scale subresource.
    let out = cp.kubectl(&["scale", "crontab/my-cron", "--replicas=5"])?;
    assert!(out.contains("scaled"), "{out}");
    let replicas = cp.kubectl(&["get", "ct", "my-cron", "-o", "jsonpath={.spec.replicas}"])?;
    assert_eq!(replicas, "5");

    // Schema violations are 422s naming the fields.
    let bad = cp.write(
        "bad.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\nspec: {replicas: 20, cronSpec: nope}\n",
    )?;
    let err = cp.kubectl_err(&["create", "-f", &bad])?;
    assert!(err.contains("is invalid"), "{err}");
    assert!(
        err.contains("spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10"),
        "{err}"
    );
    assert!(err.contains("spec.cronSpec in body should match"), "{err}");
    // Unknown fields are refused by kubectl's default strict validation.
    let unknown = cp.write(
        "unknown.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: odd}\nspec: {cronSpec: '* * * * *', colour: red}\n",
    )?;
    let err = cp.kubectl_err(&["create", "-f", &unknown])?;
    assert!(err.contains("unknown field \"spec.colour\""), "{err}");
    // With validation off they are pruned instead.
    cp.kubectl(&["create", "-f", &unknown, "--validate=false"])?;
    let odd = cp.kubectl(&["get", "ct", "odd", "-o", "json"])?;
    assert!(!odd.contains("colour"), "{odd}");

    // explain reads the published schema.
    let explain = cp.kubectl(&["explain", "crontab.spec"])?;
    assert!(
        explain.contains("cronSpec") && explain.contains("replicas"),
        "{explain}"
    );

    // Deleting the CRD deletes its objects and stops serving them.
    cp.kubectl(&["delete", "crd", "crontabs.stable.example.com"])?;
    let client = cp.client().await?;
    let gvk = GroupVersionKind::gvk("stable.example.com", "v1", "CronTab");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, "default", &ApiResource::from_gvk(&gvk));
    wait::until(
        "the custom resource to stop being served",
        Duration::from_secs(20),
        || async {
            match api.list(&Default::default()).await {
                Err(kube::Error::Api(e)) if e.code == 404 => Some(()),
                _ => None,
            }
        },
    )
    .await?;
    let etcd = cp.etcd.client().await?;
    let left = etcd
        .kv_client()
        .get(
            "/registry/stable.example.com/crontabs/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await?
        .count();
    assert_eq!(
        left, 0,
        "custom objects left in etcd after the CRD was deleted"
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_1_28_creates_applies_and_scales_custom_resources() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    establish(&cp, KUBECTL_1_28).await?;
    let path = cp.write("crontab.yaml", CRONTAB)?;
    let out = cp.kubectl_ok(KUBECTL_1_28, &["apply", "-f", &path])?;
    assert!(out.contains("created"), "{out}");
    let path = cp.write(
        "crontab.yaml",
        &CRONTAB.replace("replicas: 2", "replicas: 4"),
    )?;
    let out = cp.kubectl_ok(KUBECTL_1_28, &["apply", "-f", &path])?;
    assert!(out.contains("configured"), "{out}");
    cp.kubectl_ok(KUBECTL_1_28, &["scale", "ct/my-cron", "--replicas=6"])?;
    let table = cp.kubectl_ok(KUBECTL_1_28, &["get", "ct"])?;
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row.first(), Some(&"my-cron"), "{table}");
    assert!(row.contains(&"6"), "{table}");
    Ok(())
}

#[tokio::test]
async fn kube_client_uses_dynamic_objects_status_and_scale() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    establish(&cp, KUBECTL).await?;
    let client = cp.client().await?;
    let gvk = GroupVersionKind::gvk("stable.example.com", "v1", "CronTab");
    let resource = ApiResource::from_gvk(&gvk);
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);
    let mut obj = DynamicObject::new("dyn", &resource);
    obj.data =
        json!({"spec": {"cronSpec": "*/5 * * * *", "replicas": 1}, "status": {"replicas": 9}});
    let created = api.create(&PostParams::default(), &obj).await?;
    assert_eq!(created.data["spec"]["image"], "busybox");
    // Status belongs to the status subresource: create drops it.
    assert!(created.data.get("status").is_none(), "{:?}", created.data);
    assert_eq!(created.metadata.generation, Some(1));

    let status = json!({"status": {"replicas": 1, "selector": "app=dyn"}});
    api.patch_status("dyn", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    let spec = json!({"spec": {"replicas": 2}, "status": {"replicas": 7}});
    let patched = api
        .patch("dyn", &PatchParams::default(), &Patch::Merge(&spec))
        .await?;
    assert_eq!(
        patched.data["status"]["replicas"], 1,
        "main writes keep status"
    );
    assert_eq!(patched.metadata.generation, Some(2));

    let scale = api.get_scale("dyn").await?;
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    let status = scale.status.context("scale has status")?;
    assert_eq!(
        (status.replicas, status.selector.as_deref()),
        (1, Some("app=dyn"))
    );

    // A strategic merge patch is refused for custom kinds, as upstream.
    let err = api
        .patch("dyn", &PatchParams::default(), &Patch::Strategic(&spec))
        .await
        .err()
        .context("strategic merge patch must fail")?;
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 415),
        "{err:?}"
    );

    // CEL rules: on the object, and a transition rule on one field.
    let mut forbidden = DynamicObject::new("forbidden", &resource);
    forbidden.data = json!({"spec": {"cronSpec": "* * * * *", "image": "forbidden"}});
    match api.create(&PostParams::default(), &forbidden).await {
        Err(kube::Error::Api(e)) => assert_eq!(
            (e.code, e.message.as_str()),
            (
                422,
                "CronTab.stable.example.com \"forbidden\" is invalid: spec: Invalid value: \"object\": the forbidden image may not be used"
            )
        ),
        other => panic!("expected 422, got {other:?}"),
    }
    let respec = json!({"spec": {"cronSpec": "1 * * * *"}});
    match api
        .patch("dyn", &PatchParams::default(), &Patch::Merge(&respec))
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{e:?}");
            assert!(
                e.message
                    .contains("spec.cronSpec: Invalid value: \"string\": cronSpec is immutable"),
                "{}",
                e.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }

    // Invalid objects: 422 with causes.
    let mut bad = DynamicObject::new("bad", &resource);
    bad.data = json!({"spec": {"replicas": "many"}});
    match api.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{e:?}");
            assert!(
                e.message.contains("spec.cronSpec: Required value"),
                "{}",
                e.message
            );
            assert!(
                e.message.contains("must be of type integer"),
                "{}",
                e.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn crds_are_validated_and_names_may_not_collide() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let bad = cp.write(
        "bad-crd.yaml",
        &CRD.replace(
            "name: crontabs.stable.example.com",
            "name: wrong.stable.example.com",
        )
        .replace("storage: true", "storage: false"),
    )?;
    let err = cp.kubectl_err(&["create", "-f", &bad])?;
    let bad_rule = cp.write(
        "bad-rule.yaml",
        &CRD.replace("rule: self == oldSelf", "rule: self ==="),
    )?;
    let rule_err = cp.kubectl_err(&["create", "-f", &bad_rule])?;
    assert!(
        rule_err.contains("x-kubernetes-validations[0].rule")
            && rule_err.contains("compilation failed"),
        "{rule_err}"
    );
    assert!(
        err.contains("must be spec.names.plural+\".\"+spec.group")
            && err.contains("must have exactly one version marked as storage version"),
        "{err}"
    );
    establish(&cp, KUBECTL).await?;
    // A cluster-scoped CRD in another group claiming the same kind is fine;
    // one claiming the same plural in the same group is not accepted.
    let rival = CRD
        .replace(
            "name: crontabs.stable.example.com",
            "name: crontabs2.stable.example.com",
        )
        .replace("plural: crontabs", "plural: crontabs2")
        .replace("singular: crontab", "singular: crontab2")
        .replace("shortNames: [ct]", "shortNames: [ct2]");
    let path = cp.write("rival.yaml", &rival)?;
    cp.kubectl(&["create", "-f", &path])?;
    let reason = wait::until(
        "the rival CRD's names to be judged",
        Duration::from_secs(20),
        || async {
            cp.kubectl(&[
                "get",
                "crd",
                "crontabs2.stable.example.com",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"NamesAccepted\")].reason}",
            ])
            .ok()
            .filter(|s| !s.is_empty())
        },
    )
    .await?;
    assert_eq!(reason, "NameConflict");
    Ok(())
}

const WIDGETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Cluster
  names: {plural: widgets, kind: Widget}
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

#[tokio::test]
async fn versions_share_storage_and_survive_a_restart() -> Result<()> {
    let mut cp = ControlPlane::start(&[]).await?;
    let path = cp.write("widgets.yaml", WIDGETS)?;
    cp.kubectl(&["apply", "-f", &path])?;
    let client = cp.client().await?;
    let beta = ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1beta1", "Widget"));
    let stable = ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"));
    let beta_api: Api<DynamicObject> = Api::all_with(client.clone(), &beta);
    let mut obj = DynamicObject::new("w1", &beta);
    obj.data = json!({"spec": {"size": 3, "nested": {"free": true}}});
    let created = wait::until("widgets to be served", Duration::from_secs(20), || async {
        beta_api.create(&PostParams::default(), &obj).await.ok()
    })
    .await?;
    assert_eq!(
        created.types.map(|t| t.api_version).as_deref(),
        Some("example.com/v1beta1")
    );
    assert!(created.metadata.namespace.is_none(), "cluster-scoped");
    // The other version reads the same object in its own apiVersion; the
    // stored object is in the storage version.
    let stable_api: Api<DynamicObject> = Api::all_with(client, &stable);
    let read = stable_api.get("w1").await?;
    assert_eq!(
        read.types.map(|t| t.api_version).as_deref(),
        Some("example.com/v1")
    );
    assert_eq!(
        read.data["spec"]["nested"]["free"], true,
        "preserved unknown fields"
    );
    let stored = cp
        .etcd
        .client()
        .await?
        .kv_client()
        .get("/registry/example.com/widgets/w1", None)
        .await?;
    let value: serde_json::Value = serde_json::from_slice(
        stored
            .kvs()
            .first()
            .context("stored under upstream's key")?
            .value(),
    )?;
    assert_eq!(value["apiVersion"], "example.com/v1");
    let versions = cp.kubectl(&[
        "get",
        "crd",
        "widgets.example.com",
        "-o",
        "jsonpath={.status.storedVersions}",
    ])?;
    assert_eq!(versions, "[\"v1\"]");

    // After a restart the custom resources are served from the first
    // request on.
    cp.restart_apiserver().await?;
    let again: Api<DynamicObject> = Api::all_with(cp.client().await?, &stable);
    assert_eq!(again.get("w1").await?.data["spec"]["size"], 3);
    let listed = cp.kubectl(&["get", "widgets.v1beta1.example.com", "-o", "name"])?;
    assert_eq!(listed.trim(), "widget.example.com/w1");
    Ok(())
}

#[tokio::test]
async fn a_deleted_crd_waits_for_its_objects_and_refuses_new_ones() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    establish(&cp, KUBECTL).await?;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "stable.example.com",
        "v1",
        "CronTab",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(cp.client().await?, "default", &resource);
    let mut held = DynamicObject::new("held", &resource);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    held.data = json!({"spec": {"cronSpec": "* * * * *"}});
    api.create(&PostParams::default(), &held).await?;

    cp.kubectl(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--wait=false",
    ])?;
    let mut fresh = DynamicObject::new("fresh", &resource);
    fresh.data = json!({"spec": {"cronSpec": "* * * * *"}});
    let refusal = wait::until("creates to be refused", Duration::from_secs(20), || async {
        match api.create(&PostParams::default(), &fresh).await {
            Err(kube::Error::Api(e)) if e.code == 405 => Some(e.message),
            _ => None,
        }
    })
    .await?;
    assert_eq!(
        refusal,
        "create not allowed while custom resource definition is terminating"
    );
    let terminating = cp.kubectl(&[
        "get",
        "crd",
        "crontabs.stable.example.com",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Terminating\")].status}",
    ])?;
    assert_eq!(terminating, "True");
    let obj = api.get("held").await?;
    assert!(
        obj.metadata.deletion_timestamp.is_some(),
        "the object is being deleted"
    );

    // Releasing the object lets the CRD go.
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    wait::until("the CRD to be gone", Duration::from_secs(20), || async {
        let out = cp
            .kubectl_with(KUBECTL, &["get", "crd", "crontabs.stable.example.com"])
            .ok()?;
        String::from_utf8_lossy(&out.stderr)
            .contains("NotFound")
            .then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn server_side_apply_merges_custom_lists_by_their_schema_keys() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    establish(&cp, KUBECTL).await?;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "stable.example.com",
        "v1",
        "CronTab",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(cp.client().await?, "default", &resource);
    let config = |ports: serde_json::Value| {
        json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "shared"},
            "spec": {"cronSpec": "* * * * *", "ports": ports}})
    };
    api.patch(
        "shared",
        &PatchParams::apply("alice"),
        &Patch::Apply(config(json!([{"name": "a", "port": 1}]))),
    )
    .await?;
    let merged = api
        .patch(
            "shared",
            &PatchParams::apply("bob"),
            &Patch::Apply(config(json!([{"name": "b", "port": 2}]))),
        )
        .await?;
    // x-kubernetes-list-type: map keyed by name: both managers' items stay.
    assert_eq!(
        merged.data["spec"]["ports"],
        json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}])
    );
    match api
        .patch(
            "shared",
            &PatchParams::apply("bob"),
            &Patch::Apply(config(
                json!([{"name": "a", "port": 5}, {"name": "b", "port": 2}]),
            )),
        )
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 409, "{e:?}");
            assert!(
                e.message.contains("conflict with \"alice\""),
                "{}",
                e.message
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // kubectl's server-side apply of a custom object.
    let path = cp.write("crontab.yaml", CRONTAB)?;
    let out = cp.kubectl(&["apply", "--server-side", "-f", &path])?;
    assert!(out.contains("serverside-applied"), "{out}");
    let managers = cp.kubectl(&[
        "get",
        "ct",
        "my-cron",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ])?;
    assert_eq!(managers, "kubectl");
    Ok(())
}
