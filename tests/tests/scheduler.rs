//! `capstan-scheduler` against a real apiserver and etcd, with Nodes
//! created through the API (no kubelet): each filter and score changes
//! where a pod lands, unschedulable pods explain themselves and are placed
//! once room appears, preemption, profiles, metrics and leader failover.

use std::time::Duration;

use anyhow::{Context, Result};
use capstan_tests::fixture::{ControlPlane, Process, https_get, metric};
use capstan_tests::wait;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// How long a pod may take to be bound in these small clusters.
const BIND_TIMEOUT: Duration = Duration::from_secs(30);

struct Cluster {
    cp: ControlPlane,
    client: kube::Client,
    scheduler: Process,
    port: u16,
}

/// A control plane with one scheduler (no leader election) started with
/// `extra` flags.
async fn cluster(extra: &[&str]) -> Result<Cluster> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let mut flags = vec!["--leader-elect=false"];
    flags.extend_from_slice(extra);
    let (scheduler, port) = cp.start_scheduler(&flags)?;
    Ok(Cluster {
        cp,
        client,
        scheduler,
        port,
    })
}

impl Cluster {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a Node with `cpu` cores, 8Gi memory, 110 pods, plus extra
    /// labels, spec and status fields.
    async fn node(
        &self,
        name: &str,
        cpu: &str,
        labels: Value,
        spec: Value,
        status: Value,
    ) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut labels = labels;
        labels["kubernetes.io/hostname"] = json!(name);
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        }))?;
        nodes.create(&PostParams::default(), &node).await?;
        let mut st = json!({
            "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        });
        if let (Some(st), Some(extra)) = (st.as_object_mut(), status.as_object()) {
            st.extend(extra.clone());
        }
        nodes
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": st})),
            )
            .await?;
        Ok(())
    }

    /// Creates a pod in `default` with one container requesting `cpu`,
    /// plus extra metadata labels and spec fields.
    async fn pod(&self, name: &str, cpu: &str, labels: Value, spec: Value) -> Result<()> {
        let mut spec = spec;
        let mut container = json!({"name": "c", "image": "registry.example/app:1"});
        if !cpu.is_empty() {
            container["resources"] = json!({"requests": {"cpu": cpu}});
        }
        if let Some(ports) = spec.get("hostPorts").cloned() {
            container["ports"] = ports;
            spec.as_object_mut().map(|s| s.remove("hostPorts"));
        }
        spec["containers"] = json!([container]);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        }))?;
        self.pods().create(&PostParams::default(), &pod).await?;
        Ok(())
    }

    /// Waits until the pod is bound; returns its node.
    async fn bound(&self, name: &str) -> Result<String> {
        let pods = self.pods();
        wait::until(&format!("pod {name} to be bound"), BIND_TIMEOUT, || {
            let pods = pods.clone();
            async move {
                let p = pods.get(name).await.ok()?;
                p.spec?.node_name.filter(|n| !n.is_empty())
            }
        })
        .await
        .with_context(|| self.scheduler.log_tail())
    }

    /// Waits until the scheduler reports the pod unschedulable; returns the
    /// PodScheduled condition's message.
    async fn unschedulable(&self, name: &str) -> Result<String> {
        let pods = self.pods();
        wait::until(
            &format!("pod {name} to be reported unschedulable"),
            BIND_TIMEOUT,
            || {
                let pods = pods.clone();
                async move {
                    let p = pods.get(name).await.ok()?;
                    let c = p
                        .status?
                        .conditions?
                        .into_iter()
                        .find(|c| c.type_ == "PodScheduled")?;
                    (c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
                        .then(|| c.message.unwrap_or_default())
                }
            },
        )
        .await
        .with_context(|| {
            format!(
                "{}\n{}",
                self.scheduler.log_tail(),
                self.cp
                    .kubectl(&["get", "pod", name, "-o", "yaml"])
                    .unwrap_or_default()
            )
        })
    }

    async fn metrics(&self) -> Result<String> {
        https_get(self.port, "/metrics").await
    }
}

#[tokio::test]
async fn a_pod_is_bound_and_the_user_sees_why_and_where() -> Result<()> {
    let c = cluster(&[]).await?;
    c.node("n1", "2", json!({}), json!({}), json!({})).await?;
    c.pod("web", "500m", json!({}), json!({})).await?;
    assert_eq!(c.bound("web").await?, "n1");
    let pod = c.pods().get("web").await?;
    let cond = pod
        .status
        .and_then(|s| s.conditions)
        .and_then(|cs| cs.into_iter().find(|c| c.type_ == "PodScheduled"))
        .context("no PodScheduled condition")?;
    assert_eq!(cond.status, "True");
    let describe = wait::until("the Scheduled event", BIND_TIMEOUT, || async {
        let out = c.cp.kubectl(&["describe", "pod", "web"]).ok()?;
        out.contains("Successfully assigned default/web to n1")
            .then_some(out)
    })
    .await?;
    assert!(describe.contains("Scheduled"), "{describe}");
    // Health and metrics over HTTPS.
    assert_eq!(https_get(c.port, "/healthz").await?, "ok");
    let m = c.metrics().await?;
    assert_eq!(
        metric(
            &m,
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        m.contains("scheduler_pod_scheduling_sli_duration_seconds_count"),
        "{m}"
    );
    assert!(
        m.contains("scheduler_pending_pods{queue=\"active\"}"),
        "{m}"
    );
    Ok(())
}

#[tokio::test]
async fn a_pod_that_fits_nowhere_says_why_and_lands_when_a_node_appears() -> Result<()> {
    let c = cluster(&[]).await?;
    c.node("small", "1", json!({}), json!({}), json!({}))
        .await?;
    c.node(
        "gpu",
        "8",
        json!({}),
        json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
        json!({}),
    )
    .await?;
    c.pod("big", "3", json!({}), json!({})).await?;
    let msg = c.unschedulable("big").await?;
    assert_eq!(
        msg,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}. \
         preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, \
         1 Preemption is not helpful for scheduling.."
    );
    let describe = wait::until("the FailedScheduling event", BIND_TIMEOUT, || async {
        let out = c.cp.kubectl(&["describe", "pod", "big"]).ok()?;
        out.contains("FailedScheduling").then_some(out)
    })
    .await?;
    assert!(describe.contains("Insufficient cpu"), "{describe}");
    c.node("large", "4", json!({}), json!({}), json!({}))
        .await?;
    assert_eq!(c.bound("big").await?, "large");
    Ok(())
}

#[tokio::test]
async fn resources_ports_cordon_and_taints_filter_nodes() -> Result<()> {
    let c = cluster(&[]).await?;
    c.node("a", "1", json!({}), json!({}), json!({})).await?;
    c.node("b", "4", json!({}), json!({}), json!({})).await?;
    c.node(
        "cordoned",
        "16",
        json!({}),
        json!({"unschedulable": true}),
        json!({}),
    )
    .await?;
    c.node(
        "tainted",
        "16",
        json!({}),
        json!({"taints": [{"key": "team", "value": "x", "effect": "NoSchedule"}]}),
        json!({}),
    )
    .await?;
    // NodeResourcesFit: only b has 2 free cores (cordoned and tainted are out).
    c.pod("two-cores", "2", json!({}), json!({})).await?;
    assert_eq!(c.bound("two-cores").await?, "b");
    // TaintToleration: a toleration opens the tainted node, and it is the
    // only one with 8 free cores.
    c.pod(
        "tolerant",
        "8",
        json!({}),
        json!({"tolerations": [{"key": "team", "operator": "Equal", "value": "x", "effect": "NoSchedule"}]}),
    )
    .await?;
    assert_eq!(c.bound("tolerant").await?, "tainted");
    // NodeUnschedulable: tolerating the unschedulable taint opens the
    // cordoned node.
    c.pod(
        "cordon-tolerant",
        "12",
        json!({}),
        json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
    )
    .await?;
    assert_eq!(c.bound("cordon-tolerant").await?, "cordoned");
    // NodePorts: two pods claiming one host port land on different nodes.
    let port = json!({"hostPorts": [{"containerPort": 80, "hostPort": 8080}]});
    c.pod("port-1", "", json!({}), port.clone()).await?;
    c.pod("port-2", "", json!({}), port).await?;
    assert_ne!(c.bound("port-1").await?, c.bound("port-2").await?);
    Ok(())
}

#[tokio::test]
async fn node_affinity_and_selectors_choose_nodes() -> Result<()> {
    let c = cluster(&[]).await?;
    for (name, zone, gpus) in [("z1", "a", "0"), ("z2", "b", "2"), ("z3", "b", "4")] {
        c.node(
            name,
            "4",
            json!({"zone": zone, "gpus": gpus}),
            json!({}),
            json!({}),
        )
        .await?;
    }
    c.pod(
        "selector",
        "",
        json!({}),
        json!({"nodeSelector": {"zone": "a"}}),
    )
    .await?;
    assert_eq!(c.bound("selector").await?, "z1");
    c.pod(
        "required",
        "",
        json!({}),
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpus", "operator": "Gt", "values": ["3"]}]}]}}}}),
    )
    .await?;
    assert_eq!(c.bound("required").await?, "z3");
    // Preferred affinity outweighs everything else between equal nodes.
    c.pod(
        "preferred",
        "",
        json!({}),
        json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "preference": {"matchExpressions": [{"key": "gpus", "operator": "In", "values": ["2"]}]}}]}}}),
    )
    .await?;
    assert_eq!(c.bound("preferred").await?, "z2");
    c.pod(
        "nowhere",
        "",
        json!({}),
        json!({"nodeSelector": {"zone": "c"}}),
    )
    .await?;
    let msg = c.unschedulable("nowhere").await?;
    assert!(
        msg.starts_with(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
        ),
        "{msg}"
    );
    Ok(())
}

#[tokio::test]
async fn pod_affinity_anti_affinity_and_topology_spread() -> Result<()> {
    let c = cluster(&[]).await?;
    for (name, zone) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        c.node(
            name,
            "8",
            json!({"topology.kubernetes.io/zone": zone}),
            json!({}),
            json!({}),
        )
        .await?;
    }
    // Required anti-affinity by hostname: three replicas on three nodes,
    // the fourth has nowhere to go.
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    let mut nodes = std::collections::BTreeSet::new();
    for i in 0..3 {
        c.pod(&format!("db-{i}"), "", json!({"app": "db"}), anti.clone())
            .await?;
        nodes.insert(c.bound(&format!("db-{i}")).await?);
    }
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    c.pod("db-3", "", json!({"app": "db"}), anti).await?;
    let msg = c.unschedulable("db-3").await?;
    assert!(
        msg.contains("3 node(s) didn't match pod anti-affinity rules"),
        "{msg}"
    );
    // Required affinity by zone: the cache follows the db pod in b1's zone.
    c.pod(
        "cache",
        "",
        json!({}),
        json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "only-in-b"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}}),
    )
    .await?;
    c.pod(
        "anchor",
        "",
        json!({"app": "only-in-b"}),
        json!({"nodeSelector": {"kubernetes.io/hostname": "b1"}}),
    )
    .await?;
    assert_eq!(c.bound("anchor").await?, "b1");
    assert_eq!(c.bound("cache").await?, "b1");
    // Topology spread across zones with maxSkew 1: zone b has one node,
    // zone a two, yet the four web pods split 2/2 by zone.
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]});
    let mut zones = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..4 {
        c.pod(
            &format!("web-{i}"),
            "",
            json!({"app": "web"}),
            spread.clone(),
        )
        .await?;
        let node = c.bound(&format!("web-{i}")).await?;
        *zones
            .entry(if node == "b1" { "b".into() } else { "a".into() })
            .or_default() += 1;
    }
    assert_eq!(zones.get("a"), Some(&2), "{zones:?}");
    assert_eq!(zones.get("b"), Some(&2), "{zones:?}");
    Ok(())
}

#[tokio::test]
async fn a_pod_waiting_for_affinity_is_placed_once_its_partner_is() -> Result<()> {
    let c = cluster(&[]).await?;
    c.node("n1", "4", json!({}), json!({}), json!({})).await?;
    c.node("n2", "4", json!({}), json!({}), json!({})).await?;
    // The web pod needs a cache pod on its node; none exists yet.
    c.pod(
        "web",
        "",
        json!({}),
        json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
    )
    .await?;
    let msg = c.unschedulable("web").await?;
    assert!(
        msg.contains("2 node(s) didn't match pod affinity rules"),
        "{msg}"
    );
    // The cache pod is placed by this same scheduler; that must wake web
    // (not a five-minute timer).
    c.pod("cache", "", json!({"app": "cache"}), json!({}))
        .await?;
    let cache_node = c.bound("cache").await?;
    assert_eq!(c.bound("web").await?, cache_node);
    Ok(())
}

#[tokio::test]
async fn gated_pods_wait_until_their_last_gate_is_removed() -> Result<()> {
    let c = cluster(&[]).await?;
    c.node("n1", "4", json!({}), json!({}), json!({})).await?;
    c.pod(
        "gated",
        "",
        json!({}),
        json!({"schedulingGates": [{"name": "example.com/quota"}]}),
    )
    .await?;
    c.pod("marker", "", json!({}), json!({})).await?;
    c.bound("marker").await?;
    let pods = c.pods();
    let gated = pods.get("gated").await?;
    assert_eq!(gated.spec.as_ref().and_then(|s| s.node_name.clone()), None);
    // Nobody may bind a gated pod, nor a pod under another uid.
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "gated"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    let refused = pods
        .create_subresource::<_, Value>("binding", "gated", &PostParams::default(), &binding)
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 409),
        "{refused:?}"
    );
    let wrong_uid = json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "gated", "uid": "not-the-uid"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    let refused = pods
        .create_subresource::<_, Value>("binding", "gated", &PostParams::default(), &wrong_uid)
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 409 && s.message.contains("UID in precondition: not-the-uid")),
        "{refused:?}"
    );
    pods.patch(
        "gated",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"schedulingGates": null}})),
    )
    .await?;
    assert_eq!(c.bound("gated").await?, "n1");
    // Gates can only be removed, never added to an existing pod.
    let added = pods
        .patch(
            "marker",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedulingGates": [{"name": "late"}]}})),
        )
        .await;
    assert!(
        matches!(&added, Err(kube::Error::Api(s)) if s.code == 422),
        "{added:?}"
    );
    Ok(())
}

#[tokio::test]
async fn soft_preferences_outweigh_free_capacity() -> Result<()> {
    let c = cluster(&[]).await?;
    // The Service that groups the "api" pods for default spreading (used
    // last; created first so the scheduler has long seen it).
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(c.client.clone(), "default");
    let svc = serde_json::from_value(json!({"metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}}))?;
    services.create(&PostParams::default(), &svc).await?;
    // Three pairs of nodes; in each, the second node is the emptier one, so
    // LeastAllocated alone would choose it.
    for pair in ["a", "b", "c"] {
        for i in 1..=2 {
            let name = format!("{pair}{i}");
            let spec = if name == "a2" {
                json!({"taints": [{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]})
            } else {
                json!({})
            };
            c.node(&name, "64", json!({"pair": pair}), spec, json!({}))
                .await?;
        }
        c.pod(
            &format!("{pair}-load"),
            "30",
            json!({}),
            json!({"nodeName": format!("{pair}1")}),
        )
        .await?;
    }
    // TaintToleration scoring: the emptier node has a PreferNoSchedule taint.
    c.pod(
        "untainted",
        "",
        json!({}),
        json!({"nodeSelector": {"pair": "a"}}),
    )
    .await?;
    assert_eq!(c.bound("untainted").await?, "a1");
    // Preferred pod affinity: follow the cache pod to the fuller node.
    c.pod(
        "b-cache",
        "",
        json!({"app": "cache"}),
        json!({"nodeName": "b1"}),
    )
    .await?;
    c.pod(
        "near-cache",
        "",
        json!({}),
        json!({"nodeSelector": {"pair": "b"}, "affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname"}}]}}}),
    )
    .await?;
    assert_eq!(c.bound("near-cache").await?, "b1");
    // ScheduleAnyway spread: c2 already holds two replicas, so the third
    // goes to the fuller c1.
    for i in 0..2 {
        c.pod(
            &format!("c-web-{i}"),
            "",
            json!({"app": "web"}),
            json!({"nodeName": "c2"}),
        )
        .await?;
    }
    c.pod(
        "c-web-2",
        "",
        json!({"app": "web"}),
        json!({"nodeSelector": {"pair": "c"}, "topologySpreadConstraints": [{"maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "web"}}}]}),
    )
    .await?;
    assert_eq!(c.bound("c-web-2").await?, "c1");
    // Default spreading (no constraints declared): a Service groups the
    // pods, so the fourth replica leaves the emptier node holding three.
    c.node("d1", "64", json!({"pair": "d"}), json!({}), json!({}))
        .await?;
    c.node("d2", "64", json!({"pair": "d"}), json!({}), json!({}))
        .await?;
    c.pod("d-load", "30", json!({}), json!({"nodeName": "d2"}))
        .await?;
    for i in 0..3 {
        c.pod(
            &format!("api-{i}"),
            "",
            json!({"app": "api"}),
            json!({"nodeName": "d1"}),
        )
        .await?;
    }
    c.pod(
        "api-3",
        "",
        json!({"app": "api"}),
        json!({"nodeSelector": {"pair": "d"}}),
    )
    .await?;
    assert_eq!(c.bound("api-3").await?, "d2");
    Ok(())
}

#[tokio::test]
async fn scores_spread_by_default_pack_with_most_allocated_and_follow_images() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("scheduler.yaml");
    std::fs::write(
        &config,
        r#"apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packing
  plugins:
    score:
      disabled: [{name: NodeResourcesBalancedAllocation}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources: [{name: cpu, weight: 1}, {name: memory, weight: 1}]
"#,
    )?;
    let config_flag = format!("--config={}", config.display());
    let c = cluster(&[&config_flag]).await?;
    c.node("busy", "4", json!({}), json!({}), json!({})).await?;
    c.node("idle", "4", json!({}), json!({}), json!({})).await?;
    c.pod("load", "2", json!({}), json!({"nodeName": "busy"}))
        .await?;
    // LeastAllocated (default): the idle node wins.
    c.pod("spread", "1", json!({}), json!({})).await?;
    assert_eq!(c.bound("spread").await?, "idle");
    // MostAllocated (bin-packing profile): the fuller node wins.
    c.pod(
        "packed",
        "1",
        json!({}),
        json!({"schedulerName": "bin-packing"}),
    )
    .await?;
    assert_eq!(c.bound("packed").await?, "busy");
    // A pod for a scheduler nobody runs is left alone.
    c.pod(
        "foreign",
        "",
        json!({}),
        json!({"schedulerName": "someone-else"}),
    )
    .await?;
    // ImageLocality: of two equal nodes, the one holding the image wins.
    c.node(
        "with-image",
        "64",
        json!({}),
        json!({}),
        json!({"images": [{"names": ["registry.example/app:1"], "sizeBytes": 800_000_000}]}),
    )
    .await?;
    c.node("without-image", "64", json!({}), json!({}), json!({}))
        .await?;
    c.pod(
        "imaged",
        "",
        json!({}),
        json!({"nodeSelector": {"kubernetes.io/hostname": "with-image"}}),
    )
    .await?;
    c.bound("imaged").await?;
    c.pod(
        "image-user",
        "",
        json!({}),
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["with-image", "without-image"]}]}]}}}}),
    )
    .await?;
    assert_eq!(c.bound("image-user").await?, "with-image");
    let foreign = c.pods().get("foreign").await?;
    assert_eq!(foreign.spec.and_then(|s| s.node_name), None);
    assert!(
        foreign
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .is_empty(),
        "another scheduler's pod must not be touched"
    );
    Ok(())
}

#[tokio::test]
async fn volumes_bind_pods_to_where_their_storage_is() -> Result<()> {
    let c = cluster(&[]).await?;
    c.node("left", "4", json!({}), json!({}), json!({})).await?;
    c.node("right", "4", json!({}), json!({}), json!({}))
        .await?;
    let create = |kind: &str, body: Value| {
        let client = c.client.clone();
        let kind = kind.to_string();
        async move {
            let (group, version, plural, ns) = match kind.as_str() {
                "pv" => ("", "v1", "persistentvolumes", None),
                "pvc" => ("", "v1", "persistentvolumeclaims", Some("default")),
                _ => ("storage.k8s.io", "v1", "storageclasses", None),
            };
            let gvk = kube::api::GroupVersionKind::gvk(group, version, "");
            let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
            let api: Api<kube::api::DynamicObject> = match ns {
                Some(ns) => Api::namespaced_with(client, ns, &ar),
                None => Api::all_with(client, &ar),
            };
            let obj: kube::api::DynamicObject = serde_json::from_value(body)?;
            api.create(&PostParams::default(), &obj).await?;
            anyhow::Ok(())
        }
    };
    let local_pv = |name: &str, node: &str, class: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": class, "local": {"path": "/mnt/disk"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})
    };
    create("sc", json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local"},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"}))
        .await?;
    create("pv", local_pv("pv-right", "right", "local")).await?;
    // Standing in for the PV controller, which marks a new volume
    // Available; the scheduler only matches Available volumes.
    let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(c.client.clone());
    pvs.patch_status(
        "pv-right",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Available"}})),
    )
    .await?;
    create(
        "pvc",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
            "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await?;
    let with_claim = |claim: &str| json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]});
    // WaitForFirstConsumer: the only matching local PV is on the right.
    c.pod("consumer", "", json!({}), with_claim("data")).await?;
    assert_eq!(c.bound("consumer").await?, "right");
    // A bound claim pins the pod to its volume's node. (Standing in for the
    // PV controller, which completes bindings: volumeName plus its
    // bind-completed annotation.)
    create("pv", local_pv("pv-left", "left", "")).await?;
    create(
        "pvc",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "bound", "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": "pv-left",
                "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await?;
    c.pod("pinned", "", json!({}), with_claim("bound")).await?;
    assert_eq!(c.bound("pinned").await?, "left");
    // An unbound claim with Immediate binding keeps the pod pending.
    create("pvc", json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "immediate"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "resources": {"requests": {"storage": "1Gi"}}}}))
        .await?;
    c.pod("waiting", "", json!({}), with_claim("immediate"))
        .await?;
    let msg = c.unschedulable("waiting").await?;
    assert!(
        msg.contains("pod has unbound immediate PersistentVolumeClaims"),
        "{msg}"
    );
    // A missing claim is named.
    c.pod("orphan", "", json!({}), with_claim("missing"))
        .await?;
    let msg = c.unschedulable("orphan").await?;
    assert!(
        msg.contains("persistentvolumeclaim \"missing\" not found"),
        "{msg}"
    );
    Ok(())
}

#[tokio::test]
async fn a_higher_priority_pod_preempts_the_lowest_priority_victim() -> Result<()> {
    let c = cluster(&[]).await?;
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> = Api::all(c.client.clone());
    for (name, value) in [("low", 10), ("mid", 100), ("high", 1000)] {
        let pc = serde_json::from_value(json!({"metadata": {"name": name}, "value": value}))?;
        classes.create(&PostParams::default(), &pc).await?;
    }
    c.node("n1", "2", json!({}), json!({}), json!({})).await?;
    c.node("n2", "2", json!({}), json!({}), json!({})).await?;
    c.pod(
        "low-victim",
        "2",
        json!({}),
        json!({"priorityClassName": "low", "nodeName": "n1"}),
    )
    .await?;
    c.pod(
        "mid-bystander",
        "2",
        json!({}),
        json!({"priorityClassName": "mid", "nodeName": "n2"}),
    )
    .await?;
    c.pod(
        "urgent",
        "2",
        json!({}),
        json!({"priorityClassName": "high"}),
    )
    .await?;
    // The scheduler nominates n1 and deletes the low-priority pod there.
    let pods = c.pods();
    let nominated = wait::until("urgent to be nominated", BIND_TIMEOUT, || {
        let pods = pods.clone();
        async move { pods.get("urgent").await.ok()?.status?.nominated_node_name }
    })
    .await
    .with_context(|| c.scheduler.log_tail())?;
    assert_eq!(nominated, "n1");
    wait::until("the victim to be terminating", BIND_TIMEOUT, || {
        let pods = pods.clone();
        async move {
            pods.get("low-victim")
                .await
                .ok()?
                .metadata
                .deletion_timestamp
        }
    })
    .await?;
    let bystander = pods.get("mid-bystander").await?;
    assert!(
        bystander.metadata.deletion_timestamp.is_none(),
        "a higher-priority pod was preempted"
    );
    // Acting as n1's kubelet: the victim's containers have stopped.
    pods.delete("low-victim", &DeleteParams::default().grace_period(0))
        .await?;
    assert_eq!(c.bound("urgent").await?, "n1");
    // A pod that may not preempt says so.
    let never = serde_json::from_value(
        json!({"metadata": {"name": "high-never"}, "value": 1000, "preemptionPolicy": "Never"}),
    )?;
    classes.create(&PostParams::default(), &never).await?;
    c.pod(
        "polite",
        "2",
        json!({}),
        json!({"priorityClassName": "high-never"}),
    )
    .await?;
    let msg = c.unschedulable("polite").await?;
    assert!(
        msg.ends_with("preemption: not eligible due to preemptionPolicy=Never.."),
        "{msg}"
    );
    Ok(())
}

#[tokio::test]
async fn a_standby_scheduler_takes_over_when_the_leader_dies() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let (mut first, first_port) = cp.start_scheduler(&[])?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let first_holder = wait::until("a leader", BIND_TIMEOUT, || {
        let leases = leases.clone();
        async move {
            leases
                .get("kube-scheduler")
                .await
                .ok()?
                .spec?
                .holder_identity
        }
    })
    .await?;
    let (second, second_port) = cp.start_scheduler(&[])?;
    let c = Cluster {
        cp,
        client: client.clone(),
        scheduler: second,
        port: second_port,
    };
    c.node("n1", "64", json!({}), json!({}), json!({})).await?;
    for i in 0..5 {
        c.pod(&format!("before-{i}"), "", json!({}), json!({}))
            .await?;
        c.bound(&format!("before-{i}")).await?;
    }
    let scheduled = |text: &str| {
        metric(
            text,
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"}",
        )
    };
    assert_eq!(
        scheduled(&https_get(first_port, "/metrics").await?),
        Some(5.0)
    );
    assert_eq!(
        scheduled(&c.metrics().await?),
        None,
        "the standby must not schedule"
    );
    // The leader dies without releasing its lease.
    first.stop();
    for i in 0..5 {
        c.pod(&format!("after-{i}"), "", json!({}), json!({}))
            .await?;
    }
    for i in 0..5 {
        c.bound(&format!("after-{i}")).await?;
    }
    let lease = leases
        .get("kube-scheduler")
        .await?
        .spec
        .context("lease without spec")?;
    assert_ne!(lease.holder_identity, Some(first_holder));
    assert_eq!(lease.lease_transitions, Some(1));
    assert_eq!(scheduled(&c.metrics().await?), Some(5.0));
    // Every pod was bound exactly once.
    let events: Api<Event> = Api::namespaced(client, "default");
    let list = events.list(&ListParams::default()).await?;
    for pod in c.pods().list(&ListParams::default()).await? {
        let name = pod.metadata.name.unwrap_or_default();
        let n = list
            .items
            .iter()
            .filter(|e| {
                e.reason.as_deref() == Some("Scheduled")
                    && e.involved_object.name.as_deref() == Some(&name)
            })
            .count();
        assert_eq!(n, 1, "pod {name} has {n} Scheduled events");
    }
    Ok(())
}
