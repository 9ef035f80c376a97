//! The Endpoints controller (upstream's `endpoint`): the legacy core/v1
//! Endpoints object of every Service with a selector, named as the
//! Service, with the selected pods as `addresses` (ready) or
//! `notReadyAddresses`, grouped into subsets by the ports each pod
//! resolves the Service's ports to, and truncated to 1000 addresses with
//! the `endpoints.kubernetes.io/over-capacity: truncated` annotation.
//! Selectorless Services are left alone: their Endpoints are the user's.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::service_pods::{self, ResolvedPort};
use crate::informer;
use crate::metrics::Metrics;
use crate::runner::{self, Outcome, Runner, split_key};

/// The controller's name, as upstream's `--controllers` spells it.
pub const NAME: &str = "endpoint";

/// Most addresses one Endpoints object holds (upstream's `maxCapacity`).
pub const MAX_CAPACITY: usize = 1000;

/// Annotation set when addresses were left out.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

struct Shared {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
}

/// Runs the controller with `workers` workers until the process stops.
pub async fn run(client: kube::Client, metrics: Metrics, workers: usize) -> Result<()> {
    let runner = Runner::new(NAME, &metrics);
    let endpoints = informer::spawn(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
        informer::enqueue_own_key(runner.queue()),
    );
    let services = informer::spawn(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        informer::enqueue_own_key(runner.queue()),
    );
    let pods = {
        let queue = runner.queue();
        let services = services.clone();
        let endpoints = endpoints.clone();
        informer::spawn(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |event| {
                let Some(pod) = informer::object(event) else {
                    return;
                };
                let ns = pod.metadata.namespace.as_deref();
                for svc in services.state() {
                    let name = svc.metadata.name.as_deref().unwrap_or_default();
                    let selected = service_pods::managed_selector(&svc)
                        .is_some_and(|s| service_pods::selects(&svc, s, pod));
                    let listed = selected
                        || svc.metadata.namespace.as_deref() == ns
                            && endpoints
                                .get(&ObjectRef::new(name).within(ns.unwrap_or_default()))
                                .is_some_and(|e| lists(&e, pod));
                    if listed {
                        queue.add(runner::key(ns, name));
                    }
                }
            },
        )
    };
    endpoints.wait_until_ready().await?;
    services.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    let shared = Arc::new(Shared {
        client,
        services,
        pods,
        endpoints,
    });
    runner
        .run(workers, move |key| reconcile(shared.clone(), key))
        .await;
    Err(anyhow!("the workers stopped"))
}

/// The Endpoints object names `pod` among its addresses.
fn lists(ep: &Endpoints, pod: &Pod) -> bool {
    ep.subsets.iter().flatten().any(|s| {
        s.addresses
            .iter()
            .chain(s.not_ready_addresses.iter())
            .flatten()
            .any(|a| {
                a.target_ref
                    .as_ref()
                    .is_some_and(|r| r.uid == pod.metadata.uid)
            })
    })
}

/// The subsets the Service's pods make: one per distinct resolved port
/// set, addresses sorted by IP (upstream's `RepackSubsets`).
pub fn subsets(svc: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let publish = service_pods::publishes_not_ready(svc);
    let has_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    let headless = service_pods::is_headless(svc);
    let mut groups: BTreeMap<Vec<ResolvedPort>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for pod in pods {
        if !service_pods::should_include(pod, publish) {
            continue;
        }
        let mut ports = service_pods::pod_ports(svc, pod);
        ports.sort();
        // A pod serving none of the ports is left out, unless the Service
        // is headless and has no ports at all.
        if ports.is_empty() && (has_ports || !headless) {
            continue;
        }
        let e = service_pods::pod_endpoint(svc, pod);
        let address = EndpointAddress {
            ip: e.ip,
            hostname: e.hostname,
            node_name: e.node_name,
            target_ref: Some(e.target_ref),
        };
        let group = groups.entry(ports).or_default();
        if publish || e.serving {
            group.0.push(address);
        } else {
            group.1.push(address);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|p| EndpointPort {
                            name: (!p.name.is_empty()).then_some(p.name),
                            port: p.port,
                            protocol: Some(p.protocol),
                            app_protocol: p.app_protocol,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

/// Upstream's `truncateEndpoints`: keeps at most [`MAX_CAPACITY`]
/// addresses, ready ones first, cutting each subset in proportion to its
/// share; true if anything was cut.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut room = max;
    for s in subsets.iter_mut() {
        let list = if truncate_ready {
            s.not_ready_addresses = None;
            &mut s.addresses
        } else {
            &mut s.not_ready_addresses
        };
        let n = count(list);
        let share = (n * max).div_ceil(total.max(1)).min(room);
        if let Some(l) = list.as_mut() {
            l.truncate(share);
        }
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
        room -= count(list);
    }
    true
}

/// The Endpoints object the Service should have.
fn desired(shared: &Shared, svc: &Service, ns: &str, name: &str) -> Endpoints {
    let selector = service_pods::managed_selector(svc);
    let mut pods: Vec<Arc<Pod>> = shared
        .pods
        .state()
        .into_iter()
        .filter(|p| selector.is_some_and(|s| service_pods::selects(svc, s, p)))
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let mut subsets = subsets(svc, &refs);
    let truncated = truncate(&mut subsets);
    let mut annotations = BTreeMap::new();
    if truncated {
        annotations.insert(OVER_CAPACITY.to_string(), "truncated".to_string());
    }
    Endpoints {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some(service_pods::inherited_labels(svc)),
            annotations: Some(annotations),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// One level-triggered sync of the Service `key`.
async fn reconcile(shared: Arc<Shared>, key: String) -> Outcome {
    let (ns, name) = split_key(&key);
    let api: Api<Endpoints> = Api::namespaced(shared.client.clone(), ns);
    let current = shared.endpoints.get(&ObjectRef::new(name).within(ns));
    let Some(svc) = shared.services.get(&ObjectRef::new(name).within(ns)) else {
        // The Service is gone: so are its endpoints, as upstream.
        if current.is_some() {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(None);
    };
    if service_pods::managed_selector(&svc).is_none() {
        return Ok(None);
    }
    let mut want = desired(&shared, &svc, ns, name);
    let Some(current) = current else {
        match api.create(&PostParams::default(), &want).await {
            Ok(_) => return Ok(None),
            // The cache is behind: look again once it shows the object.
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    let mut labels = current.metadata.labels.clone().unwrap_or_default();
    labels.remove(service_pods::HEADLESS_LABEL);
    labels.extend(want.metadata.labels.take().unwrap_or_default());
    let mut annotations = current.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(OVER_CAPACITY);
    let trigger = service_pods::LAST_CHANGE_TRIGGER_TIME;
    let old_trigger = annotations.remove(trigger);
    annotations.extend(want.metadata.annotations.take().unwrap_or_default());
    let normalized = |v: &Option<Vec<EndpointSubset>>| v.clone().filter(|s| !s.is_empty());
    let mut current_annotations = current.metadata.annotations.clone().unwrap_or_default();
    current_annotations.remove(trigger);
    if normalized(&current.subsets) == want.subsets
        && current.metadata.labels.clone().unwrap_or_default() == labels
        && current_annotations == annotations
    {
        return Ok(None);
    }
    let pods: Vec<Arc<Pod>> = shared.pods.state();
    let selected: Vec<&Pod> = service_pods::managed_selector(&svc)
        .map(|s| {
            pods.iter()
                .filter(|p| service_pods::selects(&svc, s, p))
                .map(|p| p.as_ref())
                .collect()
        })
        .unwrap_or_default();
    if let Some(t) = service_pods::last_change(&svc, &selected).or(old_trigger) {
        annotations.insert(trigger.to_string(), t);
    }
    let mut updated = (*current).clone();
    updated.metadata.labels = Some(labels);
    updated.metadata.annotations = Some(annotations);
    updated.subsets = want.subsets;
    api.replace(name, &PostParams::default(), &updated).await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::service_pods::tests::{pod, service};
    use serde_json::json;

    #[test]
    fn ready_and_not_ready_pods_split_and_ports_group_subsets() {
        let svc = service(json!({}));
        let a = pod("a", "10.0.0.2", json!({}));
        let b = pod(
            "b",
            "10.0.0.1",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        let c = pod(
            "c",
            "10.0.0.3",
            json!({"spec": {"containers": [{"name": "c", "image": "i",
                "ports": [{"name": "http", "containerPort": 9090}]}]}}),
        );
        let subsets = subsets(&svc, &[&a, &b, &c]);
        assert_eq!(subsets.len(), 2);
        let s8080 = &subsets[0];
        assert_eq!(s8080.ports.as_ref().map(|p| p[0].port), Some(8080));
        assert_eq!(
            s8080.addresses.as_ref().map(|a| a[0].ip.as_str()),
            Some("10.0.0.2")
        );
        assert_eq!(
            s8080.not_ready_addresses.as_ref().map(|a| a[0].ip.as_str()),
            Some("10.0.0.1")
        );
        assert_eq!(subsets[1].ports.as_ref().map(|p| p[0].port), Some(9090));
    }

    #[test]
    fn more_than_a_thousand_addresses_are_truncated() {
        let addresses = |n: usize| {
            Some(
                (0..n)
                    .map(|i| EndpointAddress {
                        ip: format!("10.0.{}.{}", i / 250, i % 250),
                        ..Default::default()
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let mut subsets = vec![
            EndpointSubset {
                addresses: addresses(900),
                not_ready_addresses: addresses(300),
                ports: None,
            },
            EndpointSubset {
                addresses: addresses(50),
                not_ready_addresses: addresses(100),
                ports: None,
            },
        ];
        assert!(truncate(&mut subsets));
        let total: usize = subsets
            .iter()
            .map(|s| {
                s.addresses.as_ref().map_or(0, Vec::len)
                    + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
            })
            .sum();
        assert_eq!(total, MAX_CAPACITY);
        // Ready addresses are all kept; not-ready ones share the rest.
        assert_eq!(subsets[0].addresses.as_ref().map(Vec::len), Some(900));
        assert_eq!(subsets[1].addresses.as_ref().map(Vec::len), Some(50));
        let mut small = vec![EndpointSubset {
            addresses: addresses(10),
            ..Default::default()
        }];
        assert!(!truncate(&mut small));
    }
}
