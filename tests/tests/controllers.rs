//! `capstan-controller-manager` against a real apiserver and etcd, with no
//! kubelet: the test plays the kubelet by writing pod status where it
//! needs ready pods. ReplicaSets and ReplicationControllers keep their
//! pods, adopt and release them, scale with kubectl and report status;
//! namespaces get a `default` ServiceAccount and are emptied when
//! deleted; a restarted controller-manager picks up where the API is; a
//! standby does nothing while the leader holds the lease.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use capstan_tests::fixture::{ControlPlane, Process, https_get, metric};
use capstan_tests::wait;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// How long the controllers may take to converge in these small clusters.
const CONVERGE: Duration = Duration::from_secs(30);

struct Cluster {
    cp: ControlPlane,
    client: kube::Client,
    cm: Process,
    port: u16,
}

/// A control plane with one controller-manager (no leader election)
/// started with `extra` flags.
async fn cluster(extra: &[&str]) -> Result<Cluster> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let mut flags = vec!["--leader-elect=false"];
    flags.extend_from_slice(extra);
    let (cm, port) = cp.start_controller_manager(&flags)?;
    Ok(Cluster {
        cp,
        client,
        cm,
        port,
    })
}

fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// The controller reference's (kind, name), if any.
fn controller_of(p: &Pod) -> Option<(String, String)> {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.clone(), r.name.clone()))
}

impl Cluster {
    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn replicasets(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Creates a ReplicaSet `name` in `ns` selecting `app=<name>`.
    async fn replicaset(&self, ns: &str, name: &str, replicas: i32, extra: Value) -> Result<()> {
        let mut spec = json!({
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "web"}},
                "spec": {"containers": [{"name": "c", "image": "registry.example/app:1"}]},
            },
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": spec,
        }))?;
        self.replicasets(ns)
            .create(&PostParams::default(), &rs)
            .await?;
        Ok(())
    }

    /// Active pods in `ns` controlled by `kind/name`, once there are `n`.
    async fn owned(&self, ns: &str, kind: &str, name: &str, n: usize) -> Result<Vec<Pod>> {
        let pods = self.pods(ns);
        let want = (kind.to_string(), name.to_string());
        wait::until(&format!("{n} pods of {kind} {name}"), CONVERGE, || {
            let pods = pods.clone();
            let want = want.clone();
            async move {
                let list = pods.list(&ListParams::default()).await.ok()?;
                let owned: Vec<Pod> = list
                    .items
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| controller_of(p).as_ref() == Some(&want))
                    .collect();
                (owned.len() == n).then_some(owned)
            }
        })
        .await
        .with_context(|| self.cm.log_tail())
    }

    /// Waits until the ReplicaSet's status satisfies `check`.
    async fn rs_status(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let api: Api<ReplicaSet> = self.replicasets(ns);
        wait::until(&format!("ReplicaSet {name} {what}"), CONVERGE, || {
            let api = api.clone();
            let check = &check;
            async move {
                let rs = api.get(name).await.ok()?;
                let status = serde_json::to_value(rs.status?).ok()?;
                check(&status).then_some(status)
            }
        })
        .await
        .with_context(|| self.cm.log_tail())
    }

    /// Plays the kubelet: the pod runs and is Ready.
    async fn make_ready(&self, ns: &str, pod: &str) -> Result<()> {
        let now = jiff::Timestamp::now().to_string();
        self.pods(ns)
            .patch_status(
                pod,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                }})),
            )
            .await?;
        Ok(())
    }

    /// Waits until namespace `name` no longer exists.
    async fn namespace_gone(&self, name: &str) -> Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        wait::until(&format!("namespace {name} to be gone"), CONVERGE, || {
            let namespaces = namespaces.clone();
            async move {
                matches!(namespaces.get(name).await, Err(kube::Error::Api(e)) if e.code == 404)
                    .then_some(())
            }
        })
        .await
        .with_context(|| self.cm.log_tail())
    }

    async fn metrics(&self) -> Result<String> {
        https_get(self.port, "/metrics").await
    }
}

fn num(status: &Value, field: &str) -> i64 {
    status.get(field).and_then(Value::as_i64).unwrap_or(0)
}

#[tokio::test]
async fn a_replicaset_creates_its_pods_and_replaces_a_deleted_one() -> Result<()> {
    let c = cluster(&[]).await?;
    c.replicaset("default", "web", 3, json!({})).await?;
    let pods = c.owned("default", "ReplicaSet", "web", 3).await?;
    let rs = c.replicasets("default").get("web").await?;
    for p in &pods {
        let name = pod_name(p);
        let suffix = name.strip_prefix("web-").unwrap_or_default();
        assert_eq!(suffix.len(), 5, "pod {name} is named <rs>-<5 chars>");
        let r = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .next()
            .context("no ownerReference")?;
        assert_eq!(r.uid, rs.metadata.uid.clone().unwrap_or_default());
        assert_eq!(r.api_version, "apps/v1");
        assert_eq!(r.block_owner_deletion, Some(true));
        assert_eq!(
            p.metadata.labels.as_ref().and_then(|l| l.get("tier")),
            Some(&"web".to_string())
        );
    }
    let status = c
        .rs_status("default", "web", "reports 3 replicas", |s| {
            num(s, "replicas") == 3 && num(s, "fullyLabeledReplicas") == 3
        })
        .await?;
    assert_eq!(num(&status, "observedGeneration"), 1);
    assert_eq!(num(&status, "readyReplicas"), 0);

    // A deleted pod is replaced by a new one.
    let victim = pod_name(&pods[0]);
    c.pods("default")
        .delete(&victim, &DeleteParams::default())
        .await?;
    let after = c.owned("default", "ReplicaSet", "web", 3).await?;
    let names: BTreeSet<String> = after.iter().map(pod_name).collect();
    assert!(!names.contains(&victim), "{victim} is gone");
    // And nothing more: the count stays at 3 once settled.
    let listed = c.pods("default").list(&ListParams::default()).await?;
    assert_eq!(listed.items.len(), 3, "no extra pods were created");

    // Health and metrics over HTTPS.
    assert_eq!(https_get(c.port, "/healthz").await?, "ok");
    let m = c.metrics().await?;
    assert!(
        metric(
            &m,
            "controller_reconcile_total{controller=\"replicaset\",result=\"success\"}"
        )
        .is_some_and(|v| v > 0.0),
        "{m}"
    );
    assert!(m.contains("workqueue_depth{name=\"replicaset\"}"), "{m}");
    assert!(m.contains("controller_reconcile_duration_seconds_bucket"));

    // What it did shows in `kubectl describe`, as upstream's Events.
    let described = wait::until("the SuccessfulCreate events", CONVERGE, || async {
        let out = c.cp.kubectl(&["describe", "rs", "web"]).ok()?;
        out.contains("Created pod: web-").then_some(out)
    })
    .await?;
    assert!(described.contains("SuccessfulCreate"), "{described}");
    assert!(described.contains("replicaset-controller"), "{described}");
    Ok(())
}

#[tokio::test]
async fn kubectl_scale_down_removes_the_not_ready_pod_and_status_follows_readiness() -> Result<()> {
    let c = cluster(&[]).await?;
    c.replicaset("default", "web", 3, json!({"minReadySeconds": 5}))
        .await?;
    let pods = c.owned("default", "ReplicaSet", "web", 3).await?;
    let ready: BTreeSet<String> = pods.iter().skip(1).map(pod_name).collect();
    for p in &ready {
        c.make_ready("default", p).await?;
    }
    let status = c
        .rs_status("default", "web", "counts 2 ready pods", |s| {
            num(s, "readyReplicas") == 2
        })
        .await?;
    assert!(
        num(&status, "availableReplicas") < 2,
        "not available before minReadySeconds: {status}"
    );
    c.rs_status("default", "web", "counts 2 available pods", |s| {
        num(s, "availableReplicas") == 2
    })
    .await?;

    let out = c.cp.kubectl(&["scale", "rs", "web", "--replicas=2"])?;
    assert!(out.contains("scaled"), "{out}");
    let left = c.owned("default", "ReplicaSet", "web", 2).await?;
    let left: BTreeSet<String> = left.iter().map(pod_name).collect();
    assert_eq!(left, ready, "the not-ready pod goes first");
    let status = c
        .rs_status("default", "web", "reports 2 replicas", |s| {
            num(s, "replicas") == 2
        })
        .await?;
    assert_eq!(num(&status, "readyReplicas"), 2);
    assert_eq!(num(&status, "observedGeneration"), 2);
    let table = c.cp.kubectl(&["get", "rs", "web"])?;
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().take(4).eq(["web", "2", "2", "2"])),
        "{table}"
    );
    Ok(())
}

#[tokio::test]
async fn a_terminating_pod_is_not_counted_and_is_replaced_at_once() -> Result<()> {
    let c = cluster(&[]).await?;
    c.replicaset("default", "web", 2, json!({})).await?;
    let pods = c.owned("default", "ReplicaSet", "web", 2).await?;
    // Bound to a node, a pod is deleted gracefully: with no kubelet to
    // finish it, it stays Terminating.
    let victim = pod_name(&pods[0]);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": victim},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
    });
    c.pods("default")
        .create_subresource::<_, Value>("binding", &victim, &PostParams::default(), &binding)
        .await?;
    c.pods("default")
        .delete(&victim, &DeleteParams::default())
        .await?;
    let replaced = c.owned("default", "ReplicaSet", "web", 2).await?;
    assert!(replaced.iter().all(|p| pod_name(p) != victim));
    let status = c
        .rs_status("default", "web", "counts 2 replicas", |s| {
            num(s, "replicas") == 2
        })
        .await?;
    assert_eq!(num(&status, "fullyLabeledReplicas"), 2);
    // The victim is still there, terminating, and was not counted.
    let old = c.pods("default").get(&victim).await?;
    assert!(old.metadata.deletion_timestamp.is_some());
    Ok(())
}

#[tokio::test]
async fn a_failing_create_shows_as_replica_failure_until_it_succeeds() -> Result<()> {
    let c = cluster(&[]).await?;
    // Pods of this template are refused until their PriorityClass exists.
    let template = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "priorityClassName": "urgent",
            "containers": [{"name": "c", "image": "registry.example/app:1"}],
        },
    });
    c.replicaset("default", "web", 2, json!({"template": template}))
        .await?;
    let status = c
        .rs_status("default", "web", "reports ReplicaFailure", |s| {
            s["conditions"][0]["type"] == "ReplicaFailure"
        })
        .await?;
    let condition = &status["conditions"][0];
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "FailedCreate");
    assert!(
        condition["message"]
            .as_str()
            .is_some_and(|m| m.contains("no PriorityClass with name urgent was found")),
        "{condition}"
    );
    let described = wait::until("the FailedCreate event", CONVERGE, || async {
        let out = c.cp.kubectl(&["describe", "rs", "web"]).ok()?;
        out.contains("FailedCreate").then_some(out)
    })
    .await?;
    assert!(described.contains("Error creating"), "{described}");

    c.cp.kubectl(&["create", "priorityclass", "urgent", "--value=1000"])?;
    c.owned("default", "ReplicaSet", "web", 2).await?;
    c.rs_status("default", "web", "drops ReplicaFailure", |s| {
        num(s, "replicas") == 2
            && s.get("conditions")
                .is_none_or(|c| c.as_array().is_none_or(|a| a.is_empty()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn an_orphan_is_adopted_and_a_relabelled_pod_is_released() -> Result<()> {
    let c = cluster(&[]).await?;
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "registry.example/app:1"}]},
    }))?;
    c.pods("default")
        .create(&PostParams::default(), &orphan)
        .await?;
    c.replicaset("default", "web", 2, json!({})).await?;
    let owned = c.owned("default", "ReplicaSet", "web", 2).await?;
    let names: BTreeSet<String> = owned.iter().map(pod_name).collect();
    assert!(
        names.contains("orphan"),
        "the orphan was adopted: {names:?}"
    );
    assert_eq!(
        c.pods("default")
            .list(&ListParams::default())
            .await?
            .items
            .len(),
        2,
        "only one pod was created"
    );

    // A pod relabelled out of the selector is released and replaced.
    c.pods("default")
        .patch(
            "orphan",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "debug"}}})),
        )
        .await?;
    let pods = c.pods("default");
    wait::until("the relabelled pod to be released", CONVERGE, || {
        let pods = pods.clone();
        async move {
            let p = pods.get("orphan").await.ok()?;
            p.metadata
                .owner_references
                .is_none_or(|r| r.is_empty())
                .then_some(())
        }
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    let owned = c.owned("default", "ReplicaSet", "web", 2).await?;
    assert!(owned.iter().all(|p| pod_name(p) != "orphan"));
    Ok(())
}

#[tokio::test]
async fn a_replication_controller_keeps_and_scales_its_pods() -> Result<()> {
    let c = cluster(&[]).await?;
    let manifest = c.cp.write(
        "rc.yaml",
        r#"
apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 2
  selector:
    app: legacy
  template:
    metadata:
      labels:
        app: legacy
    spec:
      containers:
      - name: c
        image: registry.example/app:1
"#,
    )?;
    c.cp.kubectl(&["create", "-f", &manifest])?;
    let pods = c
        .owned("default", "ReplicationController", "legacy", 2)
        .await?;
    assert!(pods.iter().all(|p| pod_name(p).starts_with("legacy-")));
    c.cp.kubectl(&["scale", "rc", "legacy", "--replicas=3"])?;
    c.owned("default", "ReplicationController", "legacy", 3)
        .await?;
    let out = wait::until("the RC to report 3 replicas", CONVERGE, || async {
        let out =
            c.cp.kubectl(&["get", "rc", "legacy", "-o", "jsonpath={.status.replicas}"])
                .ok()?;
        (out == "3").then_some(out)
    })
    .await?;
    assert_eq!(out, "3");
    Ok(())
}

#[tokio::test]
async fn only_the_controllers_named_in_controllers_run() -> Result<()> {
    let c = cluster(&["--controllers=*,-serviceaccount,-replicationcontroller"]).await?;
    c.replicaset("default", "web", 1, json!({})).await?;
    c.owned("default", "ReplicaSet", "web", 1).await?;
    let m = c.metrics().await?;
    assert!(m.contains("workqueue_depth{name=\"replicaset\"}"), "{m}");
    assert!(m.contains("workqueue_depth{name=\"namespace\"}"), "{m}");
    assert!(!m.contains("name=\"serviceaccount\""), "{m}");
    assert!(!m.contains("name=\"replicationcontroller\""), "{m}");
    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "default");
    assert!(sas.get_opt("default").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn a_new_namespace_gets_a_default_service_account_back_after_deletion() -> Result<()> {
    let c = cluster(&[]).await?;
    c.cp.kubectl(&["create", "namespace", "team"])?;
    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "team");
    let first = wait::until("the default ServiceAccount", CONVERGE, || {
        let sas = sas.clone();
        async move { sas.get("default").await.ok()?.metadata.uid }
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    c.cp.kubectl(&["delete", "serviceaccount", "default", "-n", "team"])?;
    let second = wait::until("the default ServiceAccount again", CONVERGE, || {
        let sas = sas.clone();
        async move { sas.get("default").await.ok()?.metadata.uid }
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    assert_ne!(first, second, "recreated, not the old one");
    Ok(())
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

#[tokio::test]
async fn kubectl_delete_namespace_removes_everything_in_it() -> Result<()> {
    let c = cluster(&[]).await?;
    let crd = c.cp.write("crd.yaml", CRD)?;
    c.cp.kubectl(&["create", "-f", &crd])?;
    c.cp.kubectl(&["create", "namespace", "doomed"])?;
    wait::until("the Widget kind to be served", CONVERGE, || async {
        c.cp.kubectl(&["get", "widgets", "-n", "doomed"]).ok()
    })
    .await?;
    for i in 0..3 {
        c.cp.kubectl(&[
            "create",
            "configmap",
            &format!("cm-{i}"),
            "-n",
            "doomed",
            "--from-literal=k=v",
        ])?;
    }
    let widget = c.cp.write(
        "widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: doomed\nsize: 3\n",
    )?;
    c.cp.kubectl(&["create", "-f", &widget])?;
    c.replicaset("doomed", "web", 2, json!({})).await?;
    c.owned("doomed", "ReplicaSet", "web", 2).await?;

    let out =
        c.cp.kubectl(&["delete", "namespace", "doomed", "--timeout=60s"])?;
    assert!(out.contains("deleted"), "{out}");
    c.namespace_gone("doomed").await?;
    // Nothing of it is left behind in storage: recreating the namespace
    // finds it empty.
    c.cp.kubectl(&["create", "namespace", "doomed"])?;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "doomed");
    assert!(cms.list(&ListParams::default()).await?.items.is_empty());
    assert!(
        c.pods("doomed")
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
    );
    let widgets =
        c.cp.kubectl(&["get", "widgets", "-n", "doomed", "-o", "name"])?;
    assert_eq!(widgets.trim(), "", "no widget survived");
    Ok(())
}

#[tokio::test]
async fn a_namespace_held_by_a_finalizer_stays_terminating_and_says_why() -> Result<()> {
    let c = cluster(&[]).await?;
    c.cp.kubectl(&["create", "namespace", "held"])?;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "held");
    let pinned: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "pinned", "finalizers": ["example.com/hold"]},
    }))?;
    cms.create(&PostParams::default(), &pinned).await?;
    c.cp.kubectl(&["delete", "namespace", "held", "--wait=false"])?;
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    let ns = wait::until("the namespace to say what holds it", CONVERGE, || {
        let namespaces = namespaces.clone();
        async move {
            let ns = namespaces.get("held").await.ok()?;
            let held = ns
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "NamespaceFinalizersRemaining" && c.status == "True");
            held.then_some(ns)
        }
    })
    .await
    .with_context(|| c.cm.log_tail())?;
    let status = ns.status.context("no status")?;
    assert_eq!(status.phase.as_deref(), Some("Terminating"));
    let message = |t: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .and_then(|c| c.message.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        message("NamespaceFinalizersRemaining"),
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    assert_eq!(
        message("NamespaceContentRemaining"),
        "Some resources are remaining: configmaps. has 1 resource instances"
    );
    let table = c.cp.kubectl(&["get", "namespace", "held"])?;
    assert!(table.contains("Terminating"), "{table}");

    // Once the finalizer is done, the namespace goes.
    cms.patch(
        "pinned",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    c.namespace_gone("held").await?;
    Ok(())
}

#[tokio::test]
async fn a_restarted_controller_manager_resumes_from_the_api() -> Result<()> {
    let mut c = cluster(&[]).await?;
    c.replicaset("default", "web", 2, json!({})).await?;
    let pods = c.owned("default", "ReplicaSet", "web", 2).await?;
    c.cp.kubectl(&["create", "namespace", "later"])?;
    c.cp.kubectl(&["create", "configmap", "cfg", "-n", "later"])?;
    c.cm.stop();
    // Meanwhile: the user scales up, a pod disappears, and a namespace is
    // deleted (it stays Terminating while no controller empties it).
    c.cp.kubectl(&["scale", "rs", "web", "--replicas=4"])?;
    c.pods("default")
        .delete(&pod_name(&pods[0]), &DeleteParams::default())
        .await?;
    c.cp.kubectl(&["delete", "namespace", "later", "--wait=false"])?;
    let phase =
        c.cp.kubectl(&["get", "ns", "later", "-o", "jsonpath={.status.phase}"])?;
    assert_eq!(phase, "Terminating");
    let (cm, port) = c.cp.start_controller_manager(&["--leader-elect=false"])?;
    c.cm = cm;
    c.port = port;
    c.owned("default", "ReplicaSet", "web", 4).await?;
    c.rs_status("default", "web", "reports 4 replicas", |s| {
        num(s, "replicas") == 4 && num(s, "observedGeneration") == 2
    })
    .await?;
    c.namespace_gone("later").await?;
    Ok(())
}

#[tokio::test]
async fn a_standby_controller_manager_waits_while_the_leader_holds_the_lease() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let lease_flags = [
        "--leader-elect-lease-duration=4s",
        "--leader-elect-renew-deadline=3s",
        "--leader-elect-retry-period=1s",
    ];
    let (mut first, first_port) = cp.start_controller_manager(&lease_flags)?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let first_holder = wait::until("a leader", CONVERGE, || {
        let leases = leases.clone();
        async move {
            leases
                .get("kube-controller-manager")
                .await
                .ok()?
                .spec?
                .holder_identity
        }
    })
    .await
    .with_context(|| first.log_tail())?;
    let (second, second_port) = cp.start_controller_manager(&lease_flags)?;
    let c = Cluster {
        cp,
        client: client.clone(),
        cm: second,
        port: second_port,
    };
    wait::until("the standby to serve /healthz", CONVERGE, || async {
        https_get(second_port, "/healthz").await.ok()
    })
    .await?;
    c.replicaset("default", "web", 2, json!({})).await?;
    c.owned("default", "ReplicaSet", "web", 2).await?;
    let leader = https_get(first_port, "/metrics").await?;
    let standby = c.metrics().await?;
    assert_eq!(metric(&leader, "leader_election_master_status"), Some(1.0));
    assert_eq!(metric(&standby, "leader_election_master_status"), Some(0.0));
    assert_eq!(
        metric(
            &standby,
            "controller_reconcile_total{controller=\"replicaset\""
        ),
        None,
        "the standby must not reconcile"
    );
    // The leader dies without releasing its lease: the standby takes over.
    first.stop();
    c.cp.kubectl(&["scale", "rs", "web", "--replicas=3"])?;
    c.owned("default", "ReplicaSet", "web", 3).await?;
    let lease = leases
        .get("kube-controller-manager")
        .await?
        .spec
        .context("lease without spec")?;
    assert_ne!(lease.holder_identity, Some(first_holder));
    assert_eq!(
        metric(&c.metrics().await?, "leader_election_master_status"),
        Some(1.0)
    );
    Ok(())
}
