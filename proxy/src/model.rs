//! What the proxy needs from a Service and its EndpointSlices, extracted
//! once per change so rule generation never looks at API objects: one
//! [`PortModel`] per service port with its usable endpoints. Pure
//! functions, upstream's rules (`pkg/proxy/servicechangetracker.go`,
//! `endpointslicecache.go`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// A Service's identity: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceKey {
    /// Builds a key.
    pub fn new(namespace: &str, name: &str) -> Self {
        ServiceKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// Transport protocols a service port can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses the API spelling (`TCP`, `UDP`, `SCTP`; absent means TCP).
    pub fn from_api(p: Option<&str>) -> Option<Self> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The nftables spelling (`inet_proto` values and `meta l4proto`).
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One backend of a service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The pod's IP.
    pub ip: Ipv4Addr,
    /// The target port on the pod.
    pub port: u16,
    /// `conditions.ready` (absent means ready).
    pub ready: bool,
    /// `conditions.serving` (absent means the value of ready).
    pub serving: bool,
    /// `conditions.terminating` (absent means false).
    pub terminating: bool,
    /// `nodeName`, for the Local traffic policies.
    pub node_name: Option<String>,
}

/// One port of a Service, with everything its rules depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortModel {
    /// `namespace/name/protocol/portname`: unique, and the base of every
    /// chain name this port owns.
    pub id: String,
    /// The Service's IPv4 cluster IPs.
    pub cluster_ips: Vec<Ipv4Addr>,
    /// `spec.externalIPs` and load-balancer ingress IPs (IPv4): treated as
    /// external traffic, like NodePorts.
    pub external_ips: Vec<Ipv4Addr>,
    /// The service port.
    pub port: u16,
    /// Its protocol.
    pub protocol: Protocol,
    /// The node port, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP` timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// Every endpoint of this port, sorted and de-duplicated.
    pub endpoints: Vec<Endpoint>,
}

/// The endpoints traffic may use, chosen as upstream's
/// `CategorizeEndpoints` does: ready ones, else serving-and-terminating
/// ones (separately for the whole cluster and for this node).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usable<'a> {
    /// For internal (cluster IP) traffic.
    pub cluster: Vec<&'a Endpoint>,
    /// For external traffic with `externalTrafficPolicy: Local`.
    pub local: Vec<&'a Endpoint>,
    /// For external traffic with the Cluster policy: every usable
    /// endpoint, whatever the internal policy (empty: reject, not drop).
    pub all: Vec<&'a Endpoint>,
}

fn pick<'a>(eps: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
    let ready: Vec<&Endpoint> = eps.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    eps.filter(|e| e.serving && e.terminating).collect()
}

impl PortModel {
    /// The usable endpoints of this port as seen from `node`.
    pub fn usable(&self, node: &str) -> Usable<'_> {
        let all = pick(self.endpoints.iter());
        let local = pick(
            self.endpoints
                .iter()
                .filter(|e| e.node_name.as_deref() == Some(node)),
        );
        let cluster = if self.internal_local {
            local.clone()
        } else {
            all.clone()
        };
        Usable {
            cluster,
            local,
            all,
        }
    }
}

/// The ports of `svc` the proxy serves, with their endpoints from
/// `slices`; empty for ExternalName and headless Services (and ones with
/// no IPv4 cluster IP), which the proxy ignores.
pub fn service_ports<'a>(
    svc: &Service,
    slices: impl Iterator<Item = &'a EndpointSlice> + Clone,
) -> Vec<PortModel> {
    let namespace = svc.metadata.namespace.as_deref().unwrap_or("default");
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let mut ips: Vec<&str> = spec
        .cluster_ips
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if ips.is_empty()
        && let Some(ip) = spec.cluster_ip.as_deref()
    {
        ips.push(ip);
    }
    let cluster_ips: Vec<Ipv4Addr> = ips.iter().filter_map(|s| s.parse().ok()).collect();
    if cluster_ips.is_empty() {
        return Vec::new();
    }
    let mut external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|s| s.parse().ok())
        .collect();
    if let Some(ingress) = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
    {
        external_ips.extend(
            ingress
                .iter()
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
    }
    external_ips.sort();
    external_ips.dedup();
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let node_ports_allowed = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let mut out = Vec::new();
    for p in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::from_api(p.protocol.as_deref()) else {
            continue;
        };
        let Ok(port) = u16::try_from(p.port) else {
            continue;
        };
        let port_name = p.name.clone().unwrap_or_default();
        let node_port = if node_ports_allowed {
            p.node_port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
        } else {
            None
        };
        let mut endpoints = Vec::new();
        for slice in slices.clone() {
            if slice.address_type != "IPv4" {
                continue;
            }
            let Some(sp) = slice.ports.iter().flatten().find(|sp| {
                sp.name.clone().unwrap_or_default() == port_name
                    && Protocol::from_api(sp.protocol.as_deref()) == Some(protocol)
            }) else {
                continue;
            };
            let Some(target) = sp.port.and_then(|n| u16::try_from(n).ok()) else {
                continue;
            };
            for ep in &slice.endpoints {
                // Upstream uses the first address of each endpoint.
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse().ok()) else {
                    continue;
                };
                let cond = ep.conditions.as_ref();
                let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                endpoints.push(Endpoint {
                    ip,
                    port: target,
                    ready,
                    serving: cond.and_then(|c| c.serving).unwrap_or(ready),
                    terminating: cond.and_then(|c| c.terminating).unwrap_or(false),
                    node_name: ep.node_name.clone(),
                });
            }
        }
        endpoints.sort();
        endpoints.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
        let id_port = if port_name.is_empty() {
            format!("p{port}")
        } else {
            port_name
        };
        out.push(PortModel {
            id: format!("{namespace}/{name}/{}/{id_port}", protocol.nft()),
            cluster_ips: cluster_ips.clone(),
            external_ips: external_ips.clone(),
            port,
            protocol,
            node_port,
            affinity_timeout,
            external_local: spec.external_traffic_policy.as_deref() == Some("Local")
                && (node_port.is_some() || !external_ips.is_empty()),
            internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
            endpoints,
        });
    }
    out
}

/// The Services and EndpointSlices the proxy has seen, indexed so one
/// change re-derives only its own Service.
#[derive(Default)]
pub struct Cache {
    services: BTreeMap<ServiceKey, Service>,
    /// Service key → slice name → slice.
    slices: BTreeMap<ServiceKey, BTreeMap<String, EndpointSlice>>,
}

impl Cache {
    /// The Service an EndpointSlice belongs to (by its service-name label).
    pub fn slice_owner(slice: &EndpointSlice) -> Option<ServiceKey> {
        let ns = slice.metadata.namespace.as_deref()?;
        let svc = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
        Some(ServiceKey::new(ns, svc))
    }

    /// Stores or replaces a Service; returns its key.
    pub fn put_service(&mut self, svc: Service) -> Option<ServiceKey> {
        let key = ServiceKey::new(
            svc.metadata.namespace.as_deref()?,
            svc.metadata.name.as_deref()?,
        );
        self.services.insert(key.clone(), svc);
        Some(key)
    }

    /// Forgets a Service; returns its key.
    pub fn delete_service(&mut self, svc: &Service) -> Option<ServiceKey> {
        let key = ServiceKey::new(
            svc.metadata.namespace.as_deref()?,
            svc.metadata.name.as_deref()?,
        );
        self.services.remove(&key);
        Some(key)
    }

    /// Stores or replaces a slice; returns the keys of the Services it
    /// belonged to before and belongs to now.
    pub fn put_slice(&mut self, slice: EndpointSlice) -> Vec<ServiceKey> {
        let mut touched = self.delete_slice(&slice);
        if let (Some(key), Some(name)) = (Self::slice_owner(&slice), slice.metadata.name.clone()) {
            self.slices
                .entry(key.clone())
                .or_default()
                .insert(name, slice);
            if !touched.contains(&key) {
                touched.push(key);
            }
        }
        touched
    }

    /// Forgets a slice (wherever it was filed); returns the keys it was
    /// filed under.
    pub fn delete_slice(&mut self, slice: &EndpointSlice) -> Vec<ServiceKey> {
        let (Some(ns), Some(name)) = (
            slice.metadata.namespace.as_deref(),
            slice.metadata.name.as_deref(),
        ) else {
            return Vec::new();
        };
        let mut touched = Vec::new();
        // The label may have changed, so look in the slice's namespace.
        let from = ServiceKey::new(ns, "");
        let to = ServiceKey::new(&format!("{ns}\0"), "");
        for (key, by_name) in self.slices.range_mut(from..to) {
            if by_name.remove(name).is_some() {
                touched.push(key.clone());
            }
        }
        self.slices.retain(|_, m| !m.is_empty());
        touched
    }

    /// Every Service key currently known (Services and slice owners).
    pub fn keys(&self) -> Vec<ServiceKey> {
        let mut keys: Vec<ServiceKey> = self
            .services
            .keys()
            .chain(self.slices.keys())
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The ports of one Service with their endpoints (empty when the
    /// Service is gone or ignored).
    pub fn ports(&self, key: &ServiceKey) -> Vec<PortModel> {
        let Some(svc) = self.services.get(key) else {
            return Vec::new();
        };
        match self.slices.get(key) {
            Some(slices) => service_ports(svc, slices.values()),
            None => service_ports(svc, std::iter::empty()),
        }
    }

    /// Replaces all Services at once (a watch re-list); returns the keys
    /// whose Service appeared, changed or disappeared.
    pub fn replace_services(&mut self, list: Vec<Service>) -> Vec<ServiceKey> {
        let old = std::mem::take(&mut self.services);
        for svc in list {
            self.put_service(svc);
        }
        let mut touched: Vec<ServiceKey> = old
            .iter()
            .filter(|(k, v)| self.services.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        touched.extend(
            self.services
                .iter()
                .filter(|(k, v)| old.get(*k) != Some(*v))
                .map(|(k, _)| k.clone()),
        );
        touched.sort();
        touched.dedup();
        touched
    }

    /// Replaces all slices at once (a watch re-list); returns the keys of
    /// the Services whose slices changed.
    pub fn replace_slices(&mut self, list: Vec<EndpointSlice>) -> Vec<ServiceKey> {
        let old = std::mem::take(&mut self.slices);
        for s in list {
            self.put_slice(s);
        }
        let mut touched: Vec<ServiceKey> = old
            .iter()
            .filter(|(k, v)| self.slices.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        touched.extend(
            self.slices
                .iter()
                .filter(|(k, v)| old.get(*k) != Some(*v))
                .map(|(k, _)| k.clone()),
        );
        touched.sort();
        touched.dedup();
        touched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }
    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    fn web() -> Service {
        svc(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "type": "NodePort",
                "sessionAffinity": "ClientIP",
                "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"},
                          {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }))
    }

    fn web_slice(name: &str, eps: serde_json::Value) -> EndpointSlice {
        slice(json!({
            "metadata": {"namespace": "ns", "name": name,
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": eps
        }))
    }

    #[test]
    fn ports_take_endpoints_from_matching_slice_ports() {
        let s = web_slice(
            "web-1",
            json!([{"addresses": ["10.244.1.2"], "nodeName": "n1"},
                   {"addresses": ["10.244.1.3"], "conditions": {"ready": false}}]),
        );
        let ports = service_ports(&web(), [&s].into_iter());
        assert_eq!(ports.len(), 2);
        let http = &ports[0];
        assert_eq!(http.id, "ns/web/tcp/http");
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert_eq!(http.endpoints.len(), 2);
        assert_eq!(http.endpoints[0].port, 8080);
        assert!(!http.endpoints[1].serving, "serving defaults to ready");
        assert!(ports[1].endpoints.is_empty(), "no udp port in the slice");
        let usable = http.usable("n1");
        assert_eq!(usable.cluster.len(), 1);
        assert_eq!(usable.local.len(), 1);
    }

    #[test]
    fn headless_and_external_name_services_are_ignored() {
        let headless = svc(json!({"metadata": {"namespace": "ns", "name": "h"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}));
        assert!(service_ports(&headless, std::iter::empty()).is_empty());
        let ext = svc(json!({"metadata": {"namespace": "ns", "name": "e"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}}));
        assert!(service_ports(&ext, std::iter::empty()).is_empty());
    }

    #[test]
    fn terminating_endpoints_serve_only_when_none_is_ready() {
        let s = web_slice(
            "web-1",
            json!([{"addresses": ["10.244.1.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                   {"addresses": ["10.244.1.3"], "conditions": {"ready": false, "serving": false, "terminating": true}}]),
        );
        let ports = service_ports(&web(), [&s].into_iter());
        let u = ports[0].usable("n1");
        assert_eq!(u.cluster.len(), 1);
        assert_eq!(u.cluster[0].ip.to_string(), "10.244.1.2");
        let s2 = web_slice(
            "web-2",
            json!([{"addresses": ["10.244.1.4"], "conditions": {"ready": true}}]),
        );
        let ports = service_ports(&web(), [&s, &s2].into_iter());
        let u = ports[0].usable("n1");
        assert_eq!(u.cluster.len(), 1);
        assert_eq!(u.cluster[0].ip.to_string(), "10.244.1.4");
    }

    #[test]
    fn internal_local_keeps_only_this_nodes_endpoints() {
        let mut s = web();
        s.spec.as_mut().unwrap().internal_traffic_policy = Some("Local".into());
        let sl = web_slice(
            "web-1",
            json!([{"addresses": ["10.244.1.2"], "nodeName": "n1"},
                   {"addresses": ["10.244.2.2"], "nodeName": "n2"}]),
        );
        let ports = service_ports(&s, [&sl].into_iter());
        let u = ports[0].usable("n2");
        assert_eq!(u.cluster.len(), 1);
        assert_eq!(u.cluster[0].ip.to_string(), "10.244.2.2");
        assert!(ports[0].usable("n3").cluster.is_empty());
        assert_eq!(ports[0].usable("n3").all.len(), 2);
    }

    #[test]
    fn cache_files_slices_under_their_service_and_reports_changes() {
        let mut c = Cache::default();
        assert_eq!(c.put_service(web()), Some(ServiceKey::new("ns", "web")));
        let touched = c.put_slice(web_slice("web-1", json!([{"addresses": ["10.244.1.2"]}])));
        assert_eq!(touched, vec![ServiceKey::new("ns", "web")]);
        assert_eq!(c.ports(&ServiceKey::new("ns", "web"))[0].endpoints.len(), 1);
        // Relabelled to another Service: both are touched.
        let mut moved = web_slice("web-1", json!([{"addresses": ["10.244.1.2"]}]));
        moved
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SERVICE_NAME_LABEL.into(), "other".into());
        let touched = c.put_slice(moved);
        assert_eq!(
            touched,
            vec![ServiceKey::new("ns", "web"), ServiceKey::new("ns", "other")]
        );
        assert!(
            c.ports(&ServiceKey::new("ns", "web"))[0]
                .endpoints
                .is_empty()
        );
        let touched = c.replace_services(vec![]);
        assert_eq!(touched, vec![ServiceKey::new("ns", "web")]);
    }
}
