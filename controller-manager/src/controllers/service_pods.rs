//! Which pods back a Service and what endpoint each one is, shared by the
//! EndpointSlice and Endpoints controllers so the two never disagree
//! (upstream's `endpointutil` and `podutil.FindPort`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::replicaset::pods::is_ready;

/// Label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label marking the Endpoints/EndpointSlices of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Annotation with the time of the last pod or Service change that
/// triggered the endpoints' update.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Node label with the node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The Service's selector when its endpoints are managed by the
/// controllers: `None` for selectorless and `ExternalName` Services,
/// whose endpoints (if any) users manage themselves.
pub fn managed_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// The selector matches the pod's labels (a Service selects pods in its
/// own namespace only).
pub fn selects(svc: &Service, selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    if svc.metadata.namespace != pod.metadata.namespace {
        return false;
    }
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The Service has no cluster IP (`clusterIP: None`).
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// `publishNotReadyAddresses`: every endpoint counts as ready.
pub fn publishes_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// The labels the Service's endpoint objects carry from it: its own
/// labels, plus the headless marker when it has no cluster IP.
pub fn inherited_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

/// Upstream's `ShouldPodBeInEndpoints`: the pod has an IP and is bound to
/// a node, has not finished, and is not terminating unless
/// `include_terminating`.
pub fn should_include(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    let has_ip = status
        .and_then(|s| s.pod_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty());
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = status.and_then(|s| s.phase.as_deref());
    has_ip
        && scheduled
        && !matches!(phase, Some("Succeeded" | "Failed"))
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// One pod as an endpoint of one Service, before it is written in either
/// API's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct PodEndpoint {
    /// The pod IP.
    pub ip: String,
    /// The node the pod runs on.
    pub node_name: Option<String>,
    /// `spec.hostname` when the pod's subdomain is this Service.
    pub hostname: Option<String>,
    /// The pod.
    pub target_ref: ObjectReference,
    /// The pod's Ready condition is True (upstream's `serving`).
    pub serving: bool,
    /// The pod is being deleted.
    pub terminating: bool,
    /// What clients may send traffic to: serving and not terminating,
    /// or anything when the Service publishes not-ready addresses.
    pub ready: bool,
}

/// The endpoint `pod` is for `svc` (call [`should_include`] first).
pub fn pod_endpoint(svc: &Service, pod: &Pod) -> PodEndpoint {
    let spec = pod.spec.as_ref();
    let serving = is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let hostname = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
        .filter(|_| {
            spec.and_then(|s| s.subdomain.as_deref()) == svc.metadata.name.as_deref()
                && svc.metadata.namespace == pod.metadata.namespace
        })
        .map(str::to_string);
    PodEndpoint {
        ip: pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default(),
        node_name: spec.and_then(|s| s.node_name.clone()),
        hostname,
        target_ref: ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        serving,
        terminating,
        ready: publishes_not_ready(svc) || (serving && !terminating),
    }
}

/// A Service port resolved against one pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResolvedPort {
    /// The Service port's name ("" when unnamed).
    pub name: String,
    /// The port on the pod.
    pub port: i32,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The Service port's `appProtocol`.
    pub app_protocol: Option<String>,
}

/// Upstream's `FindPort`: a numeric `targetPort` (or the port itself
/// when unset) as is; a named one is the pod's container port of that
/// name and protocol, `None` when the pod has none.
pub fn resolve_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(p)) => Some(*p),
        Some(IntOrString::String(s)) => {
            if let Ok(p) = s.parse::<i32>() {
                return Some(p);
            }
            pod.spec
                .iter()
                .flat_map(|s| &s.containers)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(s.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The Service's ports as `pod` serves them; ports the pod cannot
/// resolve are left out, as upstream does.
pub fn pod_ports(svc: &Service, pod: &Pod) -> Vec<ResolvedPort> {
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| {
            Some(ResolvedPort {
                name: p.name.clone().unwrap_or_default(),
                port: resolve_port(pod, p)?,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect()
}

/// The time of the newest change among the Service's pods and the
/// Service itself (creation, Ready transition, deletion), upstream's
/// trigger time as RFC 3339.
pub fn last_change(svc: &Service, pods: &[&Pod]) -> Option<String> {
    let mut newest = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
    for pod in pods {
        let times = [
            pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            pod.metadata.deletion_timestamp.as_ref().map(|t| t.0),
        ]
        .into_iter()
        .chain(
            pod.status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .filter(|c| c.type_ == "Ready")
                .map(|c| c.last_transition_time.as_ref().map(|t| t.0)),
        );
        for t in times.flatten() {
            newest = Some(newest.map_or(t, |n: jiff::Timestamp| n.max(t)));
        }
    }
    newest.map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn pod(name: &str, ip: &str, extra: serde_json::Value) -> Pod {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i",
                "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True"}]},
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap_or_default()
    }

    pub(crate) fn service(spec: serde_json::Value) -> Service {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
                "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
        });
        merge(&mut v, json!({ "spec": spec }));
        serde_json::from_value(v).unwrap_or_default()
    }

    fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
        match (base, extra) {
            (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
                for (k, v) in e {
                    merge(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, e) => *b = e,
        }
    }

    #[test]
    fn named_target_ports_resolve_per_pod() {
        let svc = service(json!({}));
        let a = pod("a", "10.0.0.1", json!({}));
        let b = pod(
            "b",
            "10.0.0.2",
            json!({"spec": {"containers": [{"name": "c", "image": "i",
                "ports": [{"name": "http", "containerPort": 9090}]}]}}),
        );
        let c = pod(
            "c",
            "10.0.0.3",
            json!({"spec": {"containers": [{"name": "c", "image": "i"}]}}),
        );
        assert_eq!(pod_ports(&svc, &a)[0].port, 8080);
        assert_eq!(pod_ports(&svc, &b)[0].port, 9090);
        assert!(pod_ports(&svc, &c).is_empty());
        let numeric = service(
            json!({"ports": [{"name": "x", "port": 80, "targetPort": 8443, "protocol": "TCP"}]}),
        );
        assert_eq!(pod_ports(&numeric, &c)[0].port, 8443);
        // A UDP port does not resolve to a TCP container port of that name.
        let udp = service(
            json!({"ports": [{"name": "x", "port": 53, "targetPort": "http", "protocol": "UDP"}]}),
        );
        assert!(pod_ports(&udp, &a).is_empty());
    }

    #[test]
    fn conditions_follow_upstream() {
        let svc = service(json!({}));
        let ready = pod_endpoint(&svc, &pod("a", "10.0.0.1", json!({})));
        assert!(ready.ready && ready.serving && !ready.terminating);
        let not_ready = pod(
            "b",
            "10.0.0.2",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        let e = pod_endpoint(&svc, &not_ready);
        assert!(!e.ready && !e.serving);
        let terminating = pod(
            "c",
            "10.0.0.3",
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        let e = pod_endpoint(&svc, &terminating);
        assert!(!e.ready && e.serving && e.terminating);
        assert!(should_include(&terminating, true) && !should_include(&terminating, false));
        let publish = service(json!({"publishNotReadyAddresses": true}));
        assert!(pod_endpoint(&publish, &not_ready).ready);
        let no_ip = pod("d", "", json!({}));
        assert!(!should_include(&no_ip, true));
        let done = pod("e", "10.0.0.5", json!({"status": {"phase": "Succeeded"}}));
        assert!(!should_include(&done, true));
    }

    #[test]
    fn hostname_only_for_the_pods_subdomain() {
        let svc = service(json!({}));
        let mine = pod(
            "a",
            "10.0.0.1",
            json!({"spec": {"hostname": "h", "subdomain": "web"}}),
        );
        let other = pod(
            "b",
            "10.0.0.2",
            json!({"spec": {"hostname": "h", "subdomain": "other"}}),
        );
        assert_eq!(pod_endpoint(&svc, &mine).hostname.as_deref(), Some("h"));
        assert_eq!(pod_endpoint(&svc, &other).hostname, None);
    }

    #[test]
    fn selectorless_and_external_name_services_are_not_managed() {
        assert!(managed_selector(&service(json!({}))).is_some());
        assert!(managed_selector(&service(json!({"selector": null}))).is_none());
        assert!(
            managed_selector(&service(
                json!({"type": "ExternalName", "externalName": "x"})
            ))
            .is_none()
        );
        let headless = service(json!({"clusterIP": "None"}));
        assert_eq!(
            inherited_labels(&headless).get(HEADLESS_LABEL),
            Some(&String::new())
        );
    }
}
