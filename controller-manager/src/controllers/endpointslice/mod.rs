//! The EndpointSlice controller (upstream's `endpointslice`): for every
//! Service with a selector, discovery.k8s.io/v1 EndpointSlices listing
//! the selected pods (address, ready/serving/terminating, node, zone,
//! pod reference, hostname), one slice per port set the pods resolve the
//! Service's ports to, at most `--max-endpoints-per-slice` endpoints each,
//! owned by the Service and labelled with its name and this controller.
//! `plan.rs` decides the writes, `tracker.rs` holds back a sync until the
//! cache shows this controller's own earlier writes.

pub mod plan;
mod tracker;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::service_pods::{self, SERVICE_NAME_LABEL, ZONE_LABEL};
use crate::informer;
use crate::metrics::Metrics;
use crate::queue::WorkQueue;
use crate::runner::{self, Outcome, Runner, split_key};
use plan::{Desired, SliceMeta};
use tracker::Tracker;

/// The controller's name, as upstream's `--controllers` spells it.
pub const NAME: &str = "endpointslice";

/// Label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";

/// This controller's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// How soon a Service whose own writes are not yet in the cache is
/// looked at again.
const CACHE_WAIT: Duration = Duration::from_millis(100);

/// The controller's settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Services synced at once (`--concurrent-service-endpoint-syncs`).
    pub workers: usize,
    /// Endpoints per slice (`--max-endpoints-per-slice`).
    pub max_endpoints_per_slice: usize,
}

struct Shared {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    tracker: Tracker,
    max: usize,
}

/// The slice is one this controller manages, for the Service it names.
fn managed_service(slice: &EndpointSlice) -> Option<&str> {
    let labels = slice.metadata.labels.as_ref()?;
    (labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY))
        .then(|| labels.get(SERVICE_NAME_LABEL).map(String::as_str))
        .flatten()
}

/// Queues the Services that select `pod` or whose slices list it.
fn enqueue_for_pod(
    queue: &WorkQueue,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    pod: &Pod,
) {
    let ns = pod.metadata.namespace.as_deref();
    for svc in services.state() {
        if let Some(selector) = service_pods::managed_selector(&svc)
            && service_pods::selects(&svc, selector, pod)
        {
            queue.add(runner::key(
                ns,
                svc.metadata.name.as_deref().unwrap_or_default(),
            ));
        }
    }
    for slice in slices.state() {
        if slice.metadata.namespace.as_deref() != ns {
            continue;
        }
        let Some(svc) = managed_service(&slice) else {
            continue;
        };
        let listed = slice.endpoints.iter().any(|e| {
            e.target_ref
                .as_ref()
                .is_some_and(|r| r.name == pod.metadata.name && r.kind.as_deref() == Some("Pod"))
        });
        if listed {
            queue.add(runner::key(ns, svc));
        }
    }
}

/// Runs the controller until the process stops.
pub async fn run(client: kube::Client, metrics: Metrics, settings: Settings) -> Result<()> {
    let runner = Runner::new(NAME, &metrics);
    let queue = runner.queue();
    let slices = informer::spawn(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            if let Some(slice) = informer::object(event)
                && let Some(svc) = managed_service(slice)
            {
                queue.add(runner::key(slice.metadata.namespace.as_deref(), svc));
            }
        },
    );
    let services = informer::spawn(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        informer::enqueue_own_key(runner.queue()),
    );
    let pods = {
        let queue = runner.queue();
        let services = services.clone();
        let slices = slices.clone();
        informer::spawn(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |event| {
                if let Some(pod) = informer::object(event) {
                    enqueue_for_pod(&queue, &services, &slices, pod);
                }
            },
        )
    };
    let nodes = {
        let queue = runner.queue();
        let services = services.clone();
        let mut zones: HashMap<String, Option<String>> = HashMap::new();
        informer::spawn(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            move |event| {
                let Some(node) = informer::object(event) else {
                    return;
                };
                let name = node.metadata.name.clone().unwrap_or_default();
                let zone = match event {
                    watcher::Event::Delete(_) => None,
                    _ => node_zone(node),
                };
                if zones.insert(name, zone.clone()) != Some(zone) {
                    // A zone changed: every Service may list that node.
                    for svc in services.state() {
                        queue.add(runner::key(
                            svc.metadata.namespace.as_deref(),
                            svc.metadata.name.as_deref().unwrap_or_default(),
                        ));
                    }
                }
            },
        )
    };
    slices.wait_until_ready().await?;
    services.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    nodes.wait_until_ready().await?;
    let shared = Arc::new(Shared {
        client,
        services,
        pods,
        nodes,
        slices,
        tracker: Tracker::default(),
        max: settings.max_endpoints_per_slice,
    });
    runner
        .run(settings.workers, move |key| reconcile(shared.clone(), key))
        .await;
    Err(anyhow!("the workers stopped"))
}

fn node_zone(node: &Node) -> Option<String> {
    node.metadata.labels.as_ref()?.get(ZONE_LABEL).cloned()
}

/// The slice endpoint of one pod.
fn endpoint(shared: &Shared, svc: &Service, pod: &Pod) -> Endpoint {
    let e = service_pods::pod_endpoint(svc, pod);
    let zone = e
        .node_name
        .as_deref()
        .and_then(|n| shared.nodes.get(&ObjectRef::new(n)))
        .and_then(|n| node_zone(&n));
    Endpoint {
        addresses: vec![e.ip],
        conditions: Some(EndpointConditions {
            ready: Some(e.ready),
            serving: Some(e.serving),
            terminating: Some(e.terminating),
        }),
        hostname: e.hostname,
        node_name: e.node_name,
        target_ref: Some(e.target_ref),
        zone,
        ..Default::default()
    }
}

/// The Service's desired endpoints by port set, pods sorted by name.
fn desired(
    shared: &Shared,
    svc: &Service,
    selector: &BTreeMap<String, String>,
) -> (Desired, Option<String>) {
    let mut pods: Vec<Arc<Pod>> = shared
        .pods
        .state()
        .into_iter()
        .filter(|p| service_pods::selects(svc, selector, p))
        .filter(|p| service_pods::should_include(p, true))
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        })
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out = Desired::new();
    for pod in &pods {
        let mut ports = service_pods::pod_ports(svc, pod);
        ports.sort();
        out.entry(ports)
            .or_default()
            .push(endpoint(shared, svc, pod));
    }
    let refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    (out, service_pods::last_change(svc, &refs))
}

/// One level-triggered sync of the Service `key`.
async fn reconcile(shared: Arc<Shared>, key: String) -> Outcome {
    let (ns, name) = split_key(&key);
    if !shared.tracker.observed(&key, ns, &shared.slices) {
        return Ok(Some(CACHE_WAIT));
    }
    // A deleted Service's slices go with it through the garbage
    // collector (they are owned by it), as upstream.
    let Some(svc) = shared.services.get(&ObjectRef::new(name).within(ns)) else {
        return Ok(None);
    };
    let Some(selector) = service_pods::managed_selector(&svc) else {
        return Ok(None);
    };
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let (desired, trigger) = desired(&shared, &svc, selector);
    let existing: Vec<EndpointSlice> = shared
        .slices
        .state()
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(ns) && managed_service(s) == Some(name))
        .map(|s| (*s).clone())
        .collect();
    let mut labels = service_pods::inherited_labels(&svc);
    labels.insert(SERVICE_NAME_LABEL.into(), name.into());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let meta = SliceMeta {
        namespace: ns.into(),
        generate_name: format!("{name}-"),
        labels,
        owner: OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name: name.into(),
            uid: svc.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        annotations: trigger
            .map(|t| [(service_pods::LAST_CHANGE_TRIGGER_TIME.to_string(), t)].into())
            .unwrap_or_default(),
    };
    let plan = plan::plan(&meta, &existing, &desired, shared.max);
    if plan.is_empty() {
        return Ok(None);
    }
    let api: Api<EndpointSlice> = Api::namespaced(shared.client.clone(), ns);
    for slice in &plan.update {
        let slice_name = slice.metadata.name.clone().unwrap_or_default();
        let written = api
            .replace(&slice_name, &PostParams::default(), slice)
            .await?;
        shared.tracker.written(&key, &written);
    }
    for slice in &plan.create {
        let written = api.create(&PostParams::default(), slice).await?;
        shared.tracker.written(&key, &written);
    }
    for slice_name in &plan.delete {
        match api.delete(slice_name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        shared.tracker.deleted(&key, slice_name);
    }
    tracing::debug!(
        service = key,
        created = plan.create.len(),
        updated = plan.update.len(),
        deleted = plan.delete.len(),
        "synced endpoint slices"
    );
    Ok(None)
}
