//! The cluster zone as DNS records: a pure function ([`build`]) from the
//! cached Services and EndpointSlices to an index keyed by owner name
//! ([`Zone`]), and the answer to one question against it
//! ([`Zone::answer`]), following the Kubernetes DNS specification
//! (schema 1.1.0) and CoreDNS's `kubernetes` plugin where the
//! specification leaves room (dashed-IP hostnames, `pods insecure`).
//!
//! Lookups are one hash probe per name; nothing scans the Services.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label by which an EndpointSlice names its Service (upstream's
/// `discovery.k8s.io` convention).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The schema version `dns-version.<zone>` reports, as the spec asks.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// What the zone is built with: the cluster domain and the TTL of every
/// record.
#[derive(Clone, Debug)]
pub struct ZoneConfig {
    /// The cluster domain, e.g. `cluster.local` (with or without the final
    /// dot).
    pub domain: String,
    /// TTL of every answer, and the SOA minimum (negative caching).
    pub ttl: u32,
}

/// The cluster's DNS data at one moment, indexed by lower-case FQDN.
#[derive(Debug)]
pub struct Zone {
    /// `cluster.local.`: lower case, final dot.
    domain: String,
    /// `.pod.cluster.local.`, for the computed pod names.
    pod_suffix: String,
    ttl: u32,
    soa: Record,
    names: HashMap<String, Vec<Record>>,
}

/// Where a question's answer comes from.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The zone answers authoritatively.
    Authoritative {
        /// NoError (answer or NODATA) or NXDomain.
        rcode: ResponseCode,
        /// The answer section.
        answers: Vec<Record>,
        /// The SOA for negative answers (NODATA and NXDOMAIN).
        soa: Option<Box<Record>>,
        /// Addresses of SRV targets.
        additionals: Vec<Record>,
    },
    /// Not ours: send it to the upstream resolvers.
    Forward,
}

/// The lower-case FQDN form (`a.b.` ) of a domain given with or without the
/// final dot.
fn fqdn(domain: &str) -> String {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        ".".into()
    } else {
        format!("{d}.")
    }
}

/// The lower-case FQDN form of a cluster domain (`cluster.local.`).
pub fn domain_fqdn(domain: &str) -> String {
    fqdn(domain)
}

/// Whether `qname` (lower-case FQDN) is `domain` (lower-case FQDN) or a
/// name below it.
pub fn in_domain(domain: &str, qname: &str) -> bool {
    qname == domain
        || (qname.len() > domain.len()
            && qname.ends_with(domain)
            && qname.as_bytes()[qname.len() - domain.len() - 1] == b'.')
}

/// An endpoint's hostname as CoreDNS makes it when the endpoint has none:
/// its address with `.`/`:` replaced by `-`.
pub fn dashed(ip: &IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

struct Builder {
    ttl: u32,
    names: HashMap<String, Vec<Record>>,
}

impl Builder {
    /// Adds a record under `owner` (a lower-case FQDN); names that are not
    /// valid DNS names are skipped (the apiserver validates them, so this
    /// only guards against bad input).
    fn add(&mut self, owner: &str, data: RData) {
        let Ok(name) = Name::from_ascii(owner) else {
            return;
        };
        let rec = Record::from_rdata(name, self.ttl, data);
        let set = self.names.entry(owner.to_string()).or_default();
        if !set.contains(&rec) {
            set.push(rec);
        }
    }

    fn touch(&mut self, owner: &str) {
        self.names.entry(owner.to_string()).or_default();
    }
}

fn name(s: &str) -> Option<Name> {
    Name::from_ascii(s).ok()
}

fn address_record(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    }
}

/// Builds the zone from the cached objects. Pure: the same objects give
/// the same zone; `serial` is the SOA serial (bumped by the caller on
/// every rebuild so secondaries and caches can tell versions apart).
pub fn build(
    cfg: &ZoneConfig,
    serial: u32,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Zone {
    let domain = fqdn(&cfg.domain);
    let mut b = Builder {
        ttl: cfg.ttl,
        names: HashMap::new(),
    };
    let apex = name(&domain).unwrap_or_else(Name::root);
    let mname = name(&format!("ns.dns.{domain}")).unwrap_or_else(Name::root);
    let rname = name(&format!("hostmaster.{domain}")).unwrap_or_else(Name::root);
    let soa_data = RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, cfg.ttl));
    let soa = Record::from_rdata(apex, cfg.ttl, soa_data.clone());
    b.add(&domain, soa_data);
    b.add(
        &format!("dns-version.{domain}"),
        RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
    );
    b.touch(&format!("svc.{domain}"));
    b.touch(&format!("pod.{domain}"));

    // Slices by (namespace, service), so each Service finds its own.
    let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for s in slices {
        let (Some(ns), Some(svc)) = (
            s.metadata.namespace.as_deref(),
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .map(String::as_str),
        ) else {
            continue;
        };
        by_service.entry((ns, svc)).or_default().push(s);
    }

    for svc in services {
        let (Some(svc_name), Some(ns)) = (
            svc.metadata.name.as_deref(),
            svc.metadata.namespace.as_deref(),
        ) else {
            continue;
        };
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let svc_name = svc_name.to_ascii_lowercase();
        let ns_lc = ns.to_ascii_lowercase();
        let owner = format!("{svc_name}.{ns_lc}.svc.{domain}");
        b.touch(&owner);

        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(target) = spec.external_name.as_deref().and_then(|t| name(&fqdn(t))) {
                b.add(&owner, RData::CNAME(CNAME(target)));
            }
            continue;
        }

        let mut ips: Vec<IpAddr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if ips.is_empty()
            && let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok())
        {
            ips.push(ip);
        }
        let headless = spec.cluster_ip.as_deref() == Some("None") || ips.is_empty();
        let Some(owner_name) = name(&owner) else {
            continue;
        };

        if !headless {
            for ip in &ips {
                b.add(&owner, address_record(*ip));
                b.add(
                    &Name::from(*ip).to_ascii().to_ascii_lowercase(),
                    RData::PTR(PTR(owner_name.clone())),
                );
            }
            for p in spec.ports.iter().flatten() {
                let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                let Ok(port) = u16::try_from(p.port) else {
                    continue;
                };
                b.add(
                    &format!("_{}._{proto}.{owner}", port_name.to_ascii_lowercase()),
                    RData::SRV(SRV::new(0, 100, port, owner_name.clone())),
                );
            }
            continue;
        }

        // Headless: the ready endpoints (all of them when the Service
        // publishes not-ready addresses).
        let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
        let mut seen: BTreeSet<(String, IpAddr)> = BTreeSet::new();
        let mut srv: BTreeSet<(String, String, u16, String)> = BTreeSet::new();
        for slice in by_service
            .get(&(ns, svc.metadata.name.as_deref().unwrap_or_default()))
            .into_iter()
            .flatten()
        {
            if slice.address_type == "FQDN" {
                continue;
            }
            let ports: Vec<(String, String, u16)> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    let n = p.name.as_deref().filter(|n| !n.is_empty())?;
                    let port = u16::try_from(p.port?).ok()?;
                    let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                    Some((n.to_ascii_lowercase(), proto, port))
                })
                .collect();
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready && !publish_not_ready {
                    continue;
                }
                for addr in &ep.addresses {
                    let Ok(ip) = addr.parse::<IpAddr>() else {
                        continue;
                    };
                    let host = ep
                        .hostname
                        .as_deref()
                        .filter(|h| !h.is_empty())
                        .map(str::to_ascii_lowercase)
                        .unwrap_or_else(|| dashed(&ip));
                    if !seen.insert((host.clone(), ip)) {
                        continue;
                    }
                    let host_owner = format!("{host}.{owner}");
                    b.add(&owner, address_record(ip));
                    b.add(&host_owner, address_record(ip));
                    if let Some(target) = name(&host_owner) {
                        b.add(
                            &Name::from(ip).to_ascii().to_ascii_lowercase(),
                            RData::PTR(PTR(target)),
                        );
                    }
                    for (pn, proto, port) in &ports {
                        srv.insert((pn.clone(), proto.clone(), *port, host_owner.clone()));
                    }
                }
            }
        }
        for (pn, proto, port, target) in srv {
            if let Some(t) = name(&target) {
                b.add(
                    &format!("_{pn}._{proto}.{owner}"),
                    RData::SRV(SRV::new(0, 100, port, t)),
                );
            }
        }
    }

    // Every name between an owner and the apex exists (empty non-terminals
    // answer NODATA, not NXDOMAIN).
    let owners: Vec<String> = b
        .names
        .keys()
        .filter(|k| k.ends_with(&domain) && k.len() > domain.len())
        .cloned()
        .collect();
    for o in owners {
        let mut rest = o.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            // A parent already present had its own ancestors added.
            if parent.len() <= domain.len() || b.names.contains_key(parent) {
                break;
            }
            b.touch(parent);
            rest = parent;
        }
    }

    Zone {
        pod_suffix: format!(".pod.{domain}"),
        domain,
        ttl: cfg.ttl,
        soa,
        names: b.names,
    }
}

impl Zone {
    /// The zone's domain (lower case, final dot).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether `qname` (lower-case FQDN) is inside the cluster domain.
    pub fn contains(&self, qname: &str) -> bool {
        in_domain(&self.domain, qname)
    }

    /// How many owner names the zone holds (for logs and tests).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the zone holds no names at all.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Answers `qtype` for `qname` (a lower-case FQDN, as the wire form
    /// lower-cased): authoritative inside the cluster domain and for the
    /// reverse names of cluster addresses, [`Answer::Forward`] otherwise.
    pub fn answer(&self, qname: &str, qtype: RecordType) -> Answer {
        if !self.contains(qname) {
            return match self.names.get(qname) {
                Some(set) if !set.is_empty() => self.answer_set(set, qtype),
                _ => Answer::Forward,
            };
        }
        if let Some(set) = self.names.get(qname) {
            return self.answer_set(set, qtype);
        }
        if let Some(ip) = self.pod_address(qname) {
            let Ok(owner) = Name::from_ascii(qname) else {
                return self.negative(ResponseCode::NXDomain);
            };
            let rec = Record::from_rdata(owner, self.ttl, address_record(ip));
            return if matches!(qtype, RecordType::ANY) || rec.record_type() == qtype {
                self.positive(vec![rec])
            } else {
                self.negative(ResponseCode::NoError)
            };
        }
        self.negative(ResponseCode::NXDomain)
    }

    /// `a-b-c-d.<ns>.pod.<zone>` → `a.b.c.d` (CoreDNS's `pods insecure`:
    /// any well-formed address, without checking that such a pod exists).
    fn pod_address(&self, qname: &str) -> Option<IpAddr> {
        let head = qname.strip_suffix(&self.pod_suffix)?;
        let (label, ns) = head.split_once('.')?;
        if ns.is_empty() || ns.contains('.') {
            return None;
        }
        if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
            return Some(IpAddr::V4(v4));
        }
        label
            .replace('-', ":")
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6)
    }

    fn answer_set(&self, set: &[Record], qtype: RecordType) -> Answer {
        if qtype != RecordType::CNAME
            && let Some(cname) = set.iter().find(|r| r.record_type() == RecordType::CNAME)
        {
            return self.positive(vec![cname.clone()]);
        }
        let answers: Vec<Record> = set
            .iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .cloned()
            .collect();
        if answers.is_empty() {
            return self.negative(ResponseCode::NoError);
        }
        self.positive(answers)
    }

    fn positive(&self, answers: Vec<Record>) -> Answer {
        let mut additionals = Vec::new();
        for r in &answers {
            if let RData::SRV(srv) = &r.data {
                let key = srv.target.to_ascii().to_ascii_lowercase();
                for a in self.names.get(&key).into_iter().flatten() {
                    if matches!(a.record_type(), RecordType::A | RecordType::AAAA)
                        && !additionals.contains(a)
                    {
                        additionals.push(a.clone());
                    }
                }
            }
        }
        Answer::Authoritative {
            rcode: ResponseCode::NoError,
            answers,
            soa: None,
            additionals,
        }
    }

    fn negative(&self, rcode: ResponseCode) -> Answer {
        Answer::Authoritative {
            rcode,
            answers: Vec::new(),
            soa: Some(Box::new(self.soa.clone())),
            additionals: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cfg() -> ZoneConfig {
        ZoneConfig {
            domain: "cluster.local".into(),
            ttl: 30,
        }
    }

    fn svc(ns: &str, name: &str, spec: ServiceSpec) -> Arc<Service> {
        Arc::new(Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(spec),
            ..Default::default()
        })
    }

    fn cluster_ip(ip: &str, ports: &[(&str, i32, &str)]) -> ServiceSpec {
        ServiceSpec {
            cluster_ip: Some(ip.into()),
            cluster_ips: Some(vec![ip.into()]),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, proto)| ServicePort {
                        name: Some(n.to_string()),
                        port: *p,
                        protocol: Some(proto.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn headless(publish_not_ready: bool) -> ServiceSpec {
        ServiceSpec {
            cluster_ip: Some("None".into()),
            cluster_ips: Some(vec!["None".into()]),
            publish_not_ready_addresses: Some(publish_not_ready),
            ..Default::default()
        }
    }

    /// (address, hostname, ready)
    fn slice(ns: &str, svc: &str, eps: &[(&str, Option<&str>, bool)]) -> Arc<EndpointSlice> {
        Arc::new(EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{svc}-abc")),
                namespace: Some(ns.into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), svc.to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps
                .iter()
                .map(|(ip, host, ready)| Endpoint {
                    addresses: vec![ip.to_string()],
                    hostname: host.map(str::to_string),
                    conditions: Some(EndpointConditions {
                        ready: Some(*ready),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        })
    }

    fn rdatas(a: &Answer) -> Vec<String> {
        match a {
            Answer::Authoritative { answers, .. } => {
                let mut v: Vec<String> = answers.iter().map(|r| r.data.to_string()).collect();
                v.sort();
                v
            }
            Answer::Forward => vec!["<forward>".into()],
        }
    }

    fn rcode(a: &Answer) -> Option<ResponseCode> {
        match a {
            Answer::Authoritative { rcode, .. } => Some(*rcode),
            Answer::Forward => None,
        }
    }

    #[test]
    fn cluster_ip_service_has_a_srv_and_ptr() {
        let z = build(
            &cfg(),
            1,
            &[svc(
                "default",
                "web",
                cluster_ip("10.96.0.20", &[("http", 80, "TCP"), ("", 81, "TCP")]),
            )],
            &[],
        );
        let a = z.answer("web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(rdatas(&a), ["10.96.0.20"]);
        let srv = z.answer("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(rdatas(&srv), ["0 100 80 web.default.svc.cluster.local."]);
        let Answer::Authoritative { additionals, .. } = &srv else {
            panic!("not authoritative")
        };
        assert_eq!(
            additionals.len(),
            1,
            "the SRV target's A record rides along"
        );
        let ptr = z.answer("20.0.96.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(rdatas(&ptr), ["web.default.svc.cluster.local."]);
        // A name that exists with another type: NODATA.
        let aaaa = z.answer("web.default.svc.cluster.local.", RecordType::AAAA);
        assert_eq!(rcode(&aaaa), Some(ResponseCode::NoError));
        assert!(rdatas(&aaaa).is_empty());
    }

    #[test]
    fn missing_names_are_nxdomain_and_empty_non_terminals_nodata() {
        let z = build(
            &cfg(),
            1,
            &[svc(
                "default",
                "web",
                cluster_ip("10.96.0.20", &[("http", 80, "TCP")]),
            )],
            &[],
        );
        assert_eq!(
            rcode(&z.answer("nope.default.svc.cluster.local.", RecordType::A)),
            Some(ResponseCode::NXDomain)
        );
        assert_eq!(
            rcode(&z.answer("default.svc.cluster.local.", RecordType::A)),
            Some(ResponseCode::NoError)
        );
        assert_eq!(
            rcode(&z.answer("_tcp.web.default.svc.cluster.local.", RecordType::SRV)),
            Some(ResponseCode::NoError)
        );
        assert_eq!(
            rcode(&z.answer("svc.cluster.local.", RecordType::A)),
            Some(ResponseCode::NoError)
        );
        assert_eq!(
            rcode(&z.answer("other.cluster.local.", RecordType::A)),
            Some(ResponseCode::NXDomain)
        );
        // Outside the zone: forwarded, including unknown reverse names.
        assert_eq!(z.answer("example.com.", RecordType::A), Answer::Forward);
        assert_eq!(
            z.answer("1.1.168.192.in-addr.arpa.", RecordType::PTR),
            Answer::Forward
        );
        // Not fooled by a suffix that is not a label boundary.
        assert_eq!(z.answer("xcluster.local.", RecordType::A), Answer::Forward);
    }

    #[test]
    fn headless_service_answers_ready_endpoints_with_hostnames() {
        let z = build(
            &cfg(),
            1,
            &[svc("db", "pg", headless(false))],
            &[slice(
                "db",
                "pg",
                &[
                    ("10.0.0.1", Some("pg-0"), true),
                    ("10.0.0.2", None, true),
                    ("10.0.0.3", Some("pg-2"), false),
                ],
            )],
        );
        assert_eq!(
            rdatas(&z.answer("pg.db.svc.cluster.local.", RecordType::A)),
            ["10.0.0.1", "10.0.0.2"]
        );
        assert_eq!(
            rdatas(&z.answer("pg-0.pg.db.svc.cluster.local.", RecordType::A)),
            ["10.0.0.1"]
        );
        assert_eq!(
            rdatas(&z.answer("10-0-0-2.pg.db.svc.cluster.local.", RecordType::A)),
            ["10.0.0.2"]
        );
        assert_eq!(
            rcode(&z.answer("pg-2.pg.db.svc.cluster.local.", RecordType::A)),
            Some(ResponseCode::NXDomain),
            "a not-ready endpoint has no name"
        );
        assert_eq!(
            rdatas(&z.answer("_http._tcp.pg.db.svc.cluster.local.", RecordType::SRV)),
            [
                "0 100 8080 10-0-0-2.pg.db.svc.cluster.local.",
                "0 100 8080 pg-0.pg.db.svc.cluster.local."
            ]
        );
        assert_eq!(
            rdatas(&z.answer("1.0.0.10.in-addr.arpa.", RecordType::PTR)),
            ["pg-0.pg.db.svc.cluster.local."]
        );
    }

    #[test]
    fn headless_service_without_endpoints_is_nodata_and_publish_not_ready_counts_all() {
        let z = build(&cfg(), 1, &[svc("db", "pg", headless(false))], &[]);
        let a = z.answer("pg.db.svc.cluster.local.", RecordType::A);
        assert_eq!(rcode(&a), Some(ResponseCode::NoError));
        assert!(rdatas(&a).is_empty());

        let z = build(
            &cfg(),
            1,
            &[svc("db", "pg", headless(true))],
            &[slice("db", "pg", &[("10.0.0.3", Some("pg-2"), false)])],
        );
        assert_eq!(
            rdatas(&z.answer("pg.db.svc.cluster.local.", RecordType::A)),
            ["10.0.0.3"]
        );
    }

    #[test]
    fn slices_of_another_namespace_do_not_leak() {
        let z = build(
            &cfg(),
            1,
            &[svc("db", "pg", headless(false))],
            &[slice("other", "pg", &[("10.0.0.9", None, true)])],
        );
        assert!(rdatas(&z.answer("pg.db.svc.cluster.local.", RecordType::A)).is_empty());
    }

    #[test]
    fn external_name_is_a_cname_for_every_type() {
        let spec = ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some("db.example.com".into()),
            ..Default::default()
        };
        let z = build(&cfg(), 1, &[svc("default", "ext", spec)], &[]);
        for t in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
            assert_eq!(
                rdatas(&z.answer("ext.default.svc.cluster.local.", t)),
                ["db.example.com."]
            );
        }
    }

    #[test]
    fn dual_stack_service_has_a_and_aaaa() {
        let spec = ServiceSpec {
            cluster_ip: Some("10.96.0.30".into()),
            cluster_ips: Some(vec!["10.96.0.30".into(), "fd00::30".into()]),
            ..Default::default()
        };
        let z = build(&cfg(), 1, &[svc("default", "ds", spec)], &[]);
        assert_eq!(
            rdatas(&z.answer("ds.default.svc.cluster.local.", RecordType::A)),
            ["10.96.0.30"]
        );
        assert_eq!(
            rdatas(&z.answer("ds.default.svc.cluster.local.", RecordType::AAAA)),
            ["fd00::30"]
        );
        let rev = Name::from("fd00::30".parse::<IpAddr>().unwrap()).to_ascii();
        assert_eq!(
            rdatas(&z.answer(&rev.to_ascii_lowercase(), RecordType::PTR)),
            ["ds.default.svc.cluster.local."]
        );
    }

    #[test]
    fn pod_names_map_dashed_addresses() {
        let z = build(&cfg(), 1, &[], &[]);
        assert_eq!(
            rdatas(&z.answer("10-244-1-7.default.pod.cluster.local.", RecordType::A)),
            ["10.244.1.7"]
        );
        assert_eq!(
            rcode(&z.answer("10-244-1-7.default.pod.cluster.local.", RecordType::AAAA)),
            Some(ResponseCode::NoError)
        );
        assert_eq!(
            rdatas(&z.answer("fd00--7.default.pod.cluster.local.", RecordType::AAAA)),
            ["fd00::7"]
        );
        assert_eq!(
            rcode(&z.answer("not-an-ip.default.pod.cluster.local.", RecordType::A)),
            Some(ResponseCode::NXDomain)
        );
    }

    #[test]
    fn apex_soa_and_schema_version() {
        let z = build(&cfg(), 7, &[], &[]);
        assert_eq!(
            rdatas(&z.answer("dns-version.cluster.local.", RecordType::TXT)),
            ["1.1.0"]
        );
        let soa = z.answer("cluster.local.", RecordType::SOA);
        assert_eq!(rcode(&soa), Some(ResponseCode::NoError));
        assert_eq!(rdatas(&soa).len(), 1);
        let Answer::Authoritative { soa: Some(neg), .. } =
            z.answer("x.cluster.local.", RecordType::A)
        else {
            panic!("NXDOMAIN carries the SOA")
        };
        assert_eq!(neg.record_type(), RecordType::SOA);
    }

    #[test]
    fn custom_domain_and_case_are_normalised() {
        let z = build(
            &ZoneConfig {
                domain: "Example.Internal.".into(),
                ttl: 5,
            },
            1,
            &[svc("default", "web", cluster_ip("10.96.0.20", &[]))],
            &[],
        );
        let Answer::Authoritative { answers, .. } =
            z.answer("web.default.svc.example.internal.", RecordType::A)
        else {
            panic!("not authoritative")
        };
        assert_eq!(answers[0].ttl, 5);
        assert_eq!(
            z.answer("web.default.svc.cluster.local.", RecordType::A),
            Answer::Forward
        );
    }
}
