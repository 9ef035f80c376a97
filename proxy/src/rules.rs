//! Rule generation: service ports in, an `nft -f` script out, as pure
//! functions. The layout follows upstream kube-proxy's nftables mode
//! (`pkg/proxy/nftables`): one table; verdict maps from
//! `ip . protocol . port` (cluster and external IPs) and from
//! `protocol . port` (NodePorts) to per-service chains; a chain per
//! endpoint that DNATs (and marks hairpin traffic for masquerade); random
//! load balancing with `numgen`; ClientIP affinity through per-endpoint
//! dynamic sets with timeouts; `no-endpoint-*` maps that reject (or drop,
//! when a traffic policy leaves no endpoint) new connections in filter
//! chains that run before DNAT; masquerade of marked packets in
//! postrouting.
//!
//! A service port's objects ([`PortObjects`]) are rendered on their own,
//! so a sync after a change re-renders and rewrites only the Services
//! that changed ([`SyncKind::Partial`]); unchanged chains are never
//! touched.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::model::{Endpoint, PortModel};

/// The table the proxy owns (family `ip`).
pub const TABLE: &str = "capstan-proxy";

/// The packet mark bit that asks postrouting to masquerade (upstream's
/// `0x4000`).
pub const MASQ_MARK: &str = "0x4000";

/// Maps and sets elements are written in batches of this many per
/// statement, which keeps huge full syncs fast to parse.
const ELEMENT_BATCH: usize = 4096;

/// What rule generation needs besides the Services.
#[derive(Clone, Debug)]
pub struct Config {
    /// The table to own (normally [`TABLE`]).
    pub table: String,
    /// This node's name, for the Local traffic policies.
    pub node_name: String,
    /// `--cluster-cidr`: traffic to a cluster IP from outside these is
    /// masqueraded. Empty: none is (unless `masquerade_all`).
    pub cluster_cidrs: Vec<String>,
    /// `--masquerade-all`: masquerade all traffic to cluster IPs.
    pub masquerade_all: bool,
    /// `--nodeport-addresses` given: NodePorts answer only on the
    /// addresses in the `nodeport-ips` set; otherwise on every local
    /// address but loopback.
    pub nodeport_set: bool,
}

/// One chain and its rules, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The chain's name.
    pub name: String,
    /// Its rules.
    pub rules: Vec<String>,
}

/// The four verdict maps service ports put elements in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Map {
    /// `ip . proto . port : verdict` for cluster and external IPs.
    ServiceIps,
    /// `proto . port : verdict` for NodePorts.
    ServiceNodePorts,
    /// Cluster/external IPs with no usable endpoint.
    NoEndpointServices,
    /// NodePorts with no usable endpoint.
    NoEndpointNodePorts,
}

impl Map {
    /// Every map, in declaration order.
    pub const ALL: [Map; 4] = [
        Map::ServiceIps,
        Map::ServiceNodePorts,
        Map::NoEndpointServices,
        Map::NoEndpointNodePorts,
    ];

    /// The map's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Map::ServiceIps => "service-ips",
            Map::ServiceNodePorts => "service-nodeports",
            Map::NoEndpointServices => "no-endpoint-services",
            Map::NoEndpointNodePorts => "no-endpoint-nodeports",
        }
    }

    fn key_type(self) -> &'static str {
        match self {
            Map::ServiceIps | Map::NoEndpointServices => "ipv4_addr . inet_proto . inet_service",
            Map::ServiceNodePorts | Map::NoEndpointNodePorts => "inet_proto . inet_service",
        }
    }
}

/// One element of a verdict map.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Element {
    /// Which map.
    pub map: Map,
    /// The key, in nft syntax (`10.96.0.1 . tcp . 80`).
    pub key: String,
    /// The verdict (`goto service-…`, `drop`).
    pub verdict: String,
}

/// Everything one service port owns in the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortObjects {
    /// Chains: endpoint chains first, then the chains that jump to them.
    pub chains: Vec<Chain>,
    /// ClientIP affinity sets: name and timeout in seconds.
    pub sets: Vec<(String, u32)>,
    /// Map elements.
    pub elements: Vec<Element>,
}

impl PortObjects {
    /// Number of rules in its chains.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }
}

fn endpoint_suffix(port: &PortModel, ep: &Endpoint) -> String {
    format!("{}__{}/{}", port.id, ep.ip, ep.port)
}

/// Appends the load-balancing rules over `eps` (affinity first).
fn balance(rules: &mut Vec<String>, port: &PortModel, eps: &[&Endpoint]) {
    if port.affinity_timeout.is_some() {
        for ep in eps {
            let s = endpoint_suffix(port, ep);
            rules.push(format!("ip saddr @affinity-{s} goto endpoint-{s}"));
        }
    }
    let mut r = format!("numgen random mod {} vmap {{ ", eps.len());
    for (i, ep) in eps.iter().enumerate() {
        if i > 0 {
            r.push_str(", ");
        }
        let _ = write!(r, "{i} : goto endpoint-{}", endpoint_suffix(port, ep));
    }
    r.push_str(" }");
    rules.push(r);
}

fn masquerade_rule(cfg: &Config, ip: Ipv4Addr, port: &PortModel) -> Option<String> {
    let matcher = format!(
        "ip daddr {ip} meta l4proto {} th dport {}",
        port.protocol.nft(),
        port.port
    );
    if cfg.masquerade_all {
        Some(format!("{matcher} jump mark-for-masquerade"))
    } else if cfg.cluster_cidrs.is_empty() {
        None
    } else {
        Some(format!(
            "{matcher} ip saddr != {{ {} }} jump mark-for-masquerade",
            cfg.cluster_cidrs.join(", ")
        ))
    }
}

/// The objects of one service port as seen from `cfg.node_name`.
pub fn render_port(cfg: &Config, port: &PortModel) -> PortObjects {
    let usable = port.usable(&cfg.node_name);
    let all = &usable.all;
    let internal = &usable.cluster;
    let local = &usable.local;
    let id = &port.id;
    let proto = port.protocol.nft();
    let reject = "goto reject-chain".to_string();
    let mut out = PortObjects::default();

    // Endpoint chains for every endpoint any balancer below uses.
    let mut used: Vec<&Endpoint> = Vec::new();
    let has_external = port.node_port.is_some() || !port.external_ips.is_empty();
    let external_eps: &[&Endpoint] = if port.external_local { local } else { all };
    for ep in internal
        .iter()
        .chain(if has_external { external_eps } else { &[] })
        .chain(if has_external && port.external_local {
            &all[..]
        } else {
            &[]
        })
    {
        if !used.contains(ep) {
            used.push(ep);
        }
    }
    used.sort();
    for ep in &used {
        let s = endpoint_suffix(port, ep);
        let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", ep.ip)];
        if let Some(timeout) = port.affinity_timeout {
            out.sets.push((format!("affinity-{s}"), timeout));
            rules.push(format!("update @affinity-{s} {{ ip saddr }}"));
        }
        rules.push(format!(
            "meta l4proto {proto} dnat to {}:{}",
            ep.ip, ep.port
        ));
        out.chains.push(Chain {
            name: format!("endpoint-{s}"),
            rules,
        });
    }

    // Internal traffic: cluster IPs.
    let service_chain = format!("service-{id}");
    if !internal.is_empty() {
        let mut rules: Vec<String> = port
            .cluster_ips
            .iter()
            .filter_map(|ip| masquerade_rule(cfg, *ip, port))
            .collect();
        balance(&mut rules, port, internal);
        out.chains.push(Chain {
            name: service_chain.clone(),
            rules,
        });
        for ip in &port.cluster_ips {
            out.elements.push(Element {
                map: Map::ServiceIps,
                key: format!("{ip} . {proto} . {}", port.port),
                verdict: format!("goto {service_chain}"),
            });
        }
    } else {
        // No endpoint at all: reject; endpoints elsewhere but the Local
        // policy allows none here: drop (upstream's choice).
        let verdict = if !all.is_empty() {
            "drop".to_string()
        } else {
            reject.clone()
        };
        for ip in &port.cluster_ips {
            out.elements.push(Element {
                map: Map::NoEndpointServices,
                key: format!("{ip} . {proto} . {}", port.port),
                verdict: verdict.clone(),
            });
        }
    }

    if !has_external {
        return out;
    }
    // External traffic: NodePorts and external IPs.
    let external_chain = format!("external-{id}");
    if all.is_empty() {
        if let Some(np) = port.node_port {
            out.elements.push(Element {
                map: Map::NoEndpointNodePorts,
                key: format!("{proto} . {np}"),
                verdict: reject.clone(),
            });
        }
        for ip in &port.external_ips {
            out.elements.push(Element {
                map: Map::NoEndpointServices,
                key: format!("{ip} . {proto} . {}", port.port),
                verdict: reject.clone(),
            });
        }
        return out;
    }
    // The chain balancing over every endpoint: the service chain when it
    // does, else a chain of its own.
    let cluster_chain = if port.internal_local {
        let name = format!("cluster-{id}");
        let mut rules = Vec::new();
        balance(&mut rules, port, all);
        out.chains.push(Chain {
            name: name.clone(),
            rules,
        });
        name
    } else {
        service_chain
    };
    let mut rules = Vec::new();
    if port.external_local {
        // Traffic from the node itself may go anywhere (upstream's
        // short-circuit); outside traffic keeps its source and goes only
        // to this node's endpoints, or nowhere.
        rules.push("fib saddr type local jump mark-for-masquerade".to_string());
        rules.push(format!("fib saddr type local goto {cluster_chain}"));
        if local.is_empty() {
            rules.push("drop".to_string());
        } else {
            let name = format!("local-{id}");
            let mut lrules = Vec::new();
            balance(&mut lrules, port, local);
            out.chains.push(Chain {
                name: name.clone(),
                rules: lrules,
            });
            rules.push(format!("goto {name}"));
        }
    } else {
        rules.push("jump mark-for-masquerade".to_string());
        rules.push(format!("goto {cluster_chain}"));
    }
    out.chains.push(Chain {
        name: external_chain.clone(),
        rules,
    });
    if let Some(np) = port.node_port {
        out.elements.push(Element {
            map: Map::ServiceNodePorts,
            key: format!("{proto} . {np}"),
            verdict: format!("goto {external_chain}"),
        });
    }
    for ip in &port.external_ips {
        out.elements.push(Element {
            map: Map::ServiceIps,
            key: format!("{ip} . {proto} . {}", port.port),
            verdict: format!("goto {external_chain}"),
        });
    }
    out
}

/// How much of the table a sync rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncKind {
    /// Delete the table (whatever is in it) and build it anew: the first
    /// sync, and the one after a failed apply.
    Takeover,
    /// Rewrite every chain and map of the table in place (affinity sets
    /// keep their entries).
    Full,
    /// Rewrite only what differs between `old` and `new`.
    Partial,
}

/// One sync's input to [`script`].
pub struct Plan<'a> {
    /// How much to rewrite.
    pub kind: SyncKind,
    /// The applied objects of the Services being synced (for `Full`: of
    /// all Services); ignored by `Takeover`.
    pub old: Vec<&'a PortObjects>,
    /// Their objects now (for `Full` and `Takeover`: of all Services).
    pub new: Vec<&'a PortObjects>,
    /// The `nodeport-ips` set's contents, when it must be rewritten.
    pub nodeport_ips: Option<&'a [Ipv4Addr]>,
}

fn base_chains(cfg: &Config) -> Vec<(&'static str, Option<&'static str>, Vec<String>)> {
    let nodeport_match = if cfg.nodeport_set {
        "ip daddr @nodeport-ips"
    } else {
        "fib daddr type local ip daddr != 127.0.0.0/8"
    };
    vec![
        (
            "filter-input",
            Some("type filter hook input priority -110"),
            vec!["ct state new jump service-endpoints-check".into()],
        ),
        (
            "filter-forward",
            Some("type filter hook forward priority -110"),
            vec!["ct state new jump service-endpoints-check".into()],
        ),
        (
            "filter-output",
            Some("type filter hook output priority -110"),
            vec!["ct state new jump service-endpoints-check".into()],
        ),
        (
            "nat-prerouting",
            Some("type nat hook prerouting priority -100"),
            vec!["jump services".into()],
        ),
        (
            // nft 1.0.6 refuses `priority dstnat` on the output hook.
            "nat-output",
            Some("type nat hook output priority -100"),
            vec!["jump services".into()],
        ),
        (
            "nat-postrouting",
            Some("type nat hook postrouting priority 100"),
            vec!["jump masquerading".into()],
        ),
        (
            "service-endpoints-check",
            None,
            vec![
                "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into(),
                format!("{nodeport_match} meta l4proto . th dport vmap @no-endpoint-nodeports"),
            ],
        ),
        ("reject-chain", None, vec!["reject".into()]),
        (
            "mark-for-masquerade",
            None,
            vec![format!("meta mark set meta mark | {MASQ_MARK}")],
        ),
        (
            "masquerading",
            None,
            vec![
                format!("meta mark & {MASQ_MARK} == 0 return"),
                format!("meta mark set meta mark ^ {MASQ_MARK}"),
                "masquerade fully-random".into(),
            ],
        ),
        (
            "services",
            None,
            vec![
                "ip daddr . meta l4proto . th dport vmap @service-ips".into(),
                format!("{nodeport_match} meta l4proto . th dport vmap @service-nodeports"),
            ],
        ),
    ]
}

fn write_elements<'a>(
    s: &mut String,
    cmd: &str,
    table: &str,
    map: Map,
    items: impl Iterator<Item = &'a Element>,
    with_verdict: bool,
) {
    let mut n = 0;
    for e in items.filter(|e| e.map == map) {
        if n % ELEMENT_BATCH == 0 {
            if n > 0 {
                s.push_str(" }\n");
            }
            let _ = write!(s, "{cmd} element ip {table} {} {{ ", map.name());
        } else {
            s.push_str(", ");
        }
        s.push_str(&e.key);
        if with_verdict {
            s.push_str(" : ");
            s.push_str(&e.verdict);
        }
        n += 1;
    }
    if n > 0 {
        s.push_str(" }\n");
    }
}

fn write_rules(s: &mut String, table: &str, chain: &Chain) {
    for r in &chain.rules {
        let _ = writeln!(s, "add rule ip {table} {} {r}", chain.name);
    }
}

/// The `nft -f` script of one sync: atomic as a whole.
pub fn script(cfg: &Config, plan: &Plan) -> String {
    let t = &cfg.table;
    let mut s = String::with_capacity(256 + plan.new.len() * 512);
    let _ = writeln!(s, "add table ip {t}");
    if plan.kind == SyncKind::Takeover {
        let _ = writeln!(s, "delete table ip {t}");
        let _ = writeln!(s, "add table ip {t}");
    }
    let rebuild_base = plan.kind != SyncKind::Partial;
    if rebuild_base {
        for (name, hook, _) in base_chains(cfg) {
            match hook {
                Some(h) => {
                    let _ = writeln!(s, "add chain ip {t} {name} {{ {h} ; }}");
                }
                None => {
                    let _ = writeln!(s, "add chain ip {t} {name}");
                }
            }
            if plan.kind == SyncKind::Full {
                let _ = writeln!(s, "flush chain ip {t} {name}");
            }
        }
        for m in Map::ALL {
            let _ = writeln!(
                s,
                "add map ip {t} {} {{ type {} : verdict ; }}",
                m.name(),
                m.key_type()
            );
            if plan.kind == SyncKind::Full {
                let _ = writeln!(s, "flush map ip {t} {}", m.name());
            }
        }
        let _ = writeln!(s, "add set ip {t} nodeport-ips {{ type ipv4_addr ; }}");
    }
    if let Some(ips) = plan.nodeport_ips {
        let _ = writeln!(s, "flush set ip {t} nodeport-ips");
        if !ips.is_empty() {
            let list: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
            let _ = writeln!(
                s,
                "add element ip {t} nodeport-ips {{ {} }}",
                list.join(", ")
            );
        }
    }

    let old: &[&PortObjects] = if plan.kind == SyncKind::Takeover {
        &[]
    } else {
        &plan.old
    };
    let old_chains: HashMap<&str, &Chain> = old
        .iter()
        .flat_map(|o| o.chains.iter())
        .map(|c| (c.name.as_str(), c))
        .collect();
    let new_chains: HashMap<&str, &Chain> = plan
        .new
        .iter()
        .flat_map(|o| o.chains.iter())
        .map(|c| (c.name.as_str(), c))
        .collect();
    let old_sets: HashMap<&str, u32> = old
        .iter()
        .flat_map(|o| o.sets.iter())
        .map(|(n, t)| (n.as_str(), *t))
        .collect();
    let new_sets: HashMap<&str, u32> = plan
        .new
        .iter()
        .flat_map(|o| o.sets.iter())
        .map(|(n, t)| (n.as_str(), *t))
        .collect();
    let force = plan.kind != SyncKind::Partial;

    // 1. Elements that go away (Partial only; Full flushed the maps).
    let old_elems: HashSet<&Element> = old.iter().flat_map(|o| o.elements.iter()).collect();
    let new_elems: HashSet<&Element> = plan.new.iter().flat_map(|o| o.elements.iter()).collect();
    if plan.kind == SyncKind::Partial {
        let gone: Vec<&Element> = old
            .iter()
            .flat_map(|o| o.elements.iter())
            .filter(|e| !new_elems.contains(e))
            .collect();
        for m in Map::ALL {
            write_elements(&mut s, "delete", t, m, gone.iter().copied(), false);
        }
    }
    // 2. Empty the chains that change or go away, then delete the latter.
    let mut rewrite: Vec<&Chain> = Vec::new();
    for o in old {
        for c in &o.chains {
            match new_chains.get(c.name.as_str()) {
                Some(n) if !force && n.rules == c.rules => {}
                _ => {
                    let _ = writeln!(s, "flush chain ip {t} {}", c.name);
                }
            }
        }
    }
    for o in old {
        for c in &o.chains {
            if !new_chains.contains_key(c.name.as_str()) {
                let _ = writeln!(s, "delete chain ip {t} {}", c.name);
            }
        }
    }
    // 3. Sets that go away or change their timeout.
    for o in old {
        for (name, timeout) in &o.sets {
            if new_sets.get(name.as_str()) != Some(timeout) {
                let _ = writeln!(s, "delete set ip {t} {name}");
            }
        }
    }
    // 4. New sets and chains, then every rule that needs writing.
    for n in &plan.new {
        for (name, timeout) in &n.sets {
            if old_sets.get(name.as_str()) != Some(timeout) {
                let _ = writeln!(
                    s,
                    "add set ip {t} {name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"
                );
            }
        }
        for c in &n.chains {
            match old_chains.get(c.name.as_str()) {
                None => {
                    let _ = writeln!(s, "add chain ip {t} {}", c.name);
                    rewrite.push(c);
                }
                Some(o) if force || o.rules != c.rules => rewrite.push(c),
                Some(_) => {}
            }
        }
    }
    if rebuild_base {
        for (name, _, rules) in base_chains(cfg) {
            for r in rules {
                let _ = writeln!(s, "add rule ip {t} {name} {r}");
            }
        }
    }
    for c in rewrite {
        write_rules(&mut s, t, c);
    }
    // 5. Elements that are new (all of them after a flush).
    let added: Vec<&Element> = plan
        .new
        .iter()
        .flat_map(|o| o.elements.iter())
        .filter(|e| force || !old_elems.contains(e))
        .collect();
    for m in Map::ALL {
        write_elements(&mut s, "add", t, m, added.iter().copied(), true);
    }
    s
}

/// The script `--cleanup` runs: removes the table and nothing else
/// (adding it first makes the delete succeed when it is absent).
pub fn cleanup_script(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Protocol};

    fn cfg() -> Config {
        Config {
            table: TABLE.into(),
            node_name: "n1".into(),
            cluster_cidrs: vec!["10.244.0.0/16".into()],
            masquerade_all: false,
            nodeport_set: false,
        }
    }

    fn ep(ip: &str, node: &str) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some(node.into()),
        }
    }

    fn port(eps: Vec<Endpoint>) -> PortModel {
        PortModel {
            id: "ns/web/tcp/http".into(),
            cluster_ips: vec!["10.96.0.10".parse().unwrap()],
            external_ips: vec![],
            port: 80,
            protocol: Protocol::Tcp,
            node_port: None,
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            endpoints: eps,
        }
    }

    fn chain<'a>(o: &'a PortObjects, name: &str) -> &'a Chain {
        o.chains
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no chain {name} in {o:#?}"))
    }

    #[test]
    fn cluster_ip_balances_randomly_over_endpoint_chains_that_dnat() {
        let o = render_port(
            &cfg(),
            &port(vec![ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")]),
        );
        let svc = chain(&o, "service-ns/web/tcp/http");
        assert_eq!(
            svc.rules,
            vec![
                "ip daddr 10.96.0.10 meta l4proto tcp th dport 80 ip saddr != { 10.244.0.0/16 } jump mark-for-masquerade",
                "numgen random mod 2 vmap { 0 : goto endpoint-ns/web/tcp/http__10.244.1.2/8080, 1 : goto endpoint-ns/web/tcp/http__10.244.2.2/8080 }",
            ]
        );
        let e = chain(&o, "endpoint-ns/web/tcp/http__10.244.1.2/8080");
        assert_eq!(
            e.rules,
            vec![
                "ip saddr 10.244.1.2 jump mark-for-masquerade",
                "meta l4proto tcp dnat to 10.244.1.2:8080",
            ]
        );
        assert_eq!(
            o.elements,
            vec![Element {
                map: Map::ServiceIps,
                key: "10.96.0.10 . tcp . 80".into(),
                verdict: "goto service-ns/web/tcp/http".into()
            }]
        );
    }

    #[test]
    fn no_endpoints_reject_and_policy_without_local_endpoints_drops() {
        let o = render_port(&cfg(), &port(vec![]));
        assert!(o.chains.is_empty());
        assert_eq!(o.elements[0].map, Map::NoEndpointServices);
        assert_eq!(o.elements[0].verdict, "goto reject-chain");
        let mut p = port(vec![ep("10.244.2.2", "n2")]);
        p.internal_local = true;
        let o = render_port(&cfg(), &p);
        assert_eq!(o.elements[0].map, Map::NoEndpointServices);
        assert_eq!(o.elements[0].verdict, "drop");
    }

    #[test]
    fn affinity_uses_per_endpoint_sets_with_the_timeout() {
        let mut p = port(vec![ep("10.244.1.2", "n1")]);
        p.affinity_timeout = Some(60);
        let o = render_port(&cfg(), &p);
        assert_eq!(
            o.sets,
            vec![("affinity-ns/web/tcp/http__10.244.1.2/8080".to_string(), 60)]
        );
        let svc = chain(&o, "service-ns/web/tcp/http");
        assert_eq!(
            svc.rules[1],
            "ip saddr @affinity-ns/web/tcp/http__10.244.1.2/8080 goto endpoint-ns/web/tcp/http__10.244.1.2/8080"
        );
        let e = chain(&o, "endpoint-ns/web/tcp/http__10.244.1.2/8080");
        assert!(e.rules.contains(
            &"update @affinity-ns/web/tcp/http__10.244.1.2/8080 { ip saddr }".to_string()
        ));
    }

    #[test]
    fn node_port_local_policy_goes_only_to_local_endpoints() {
        let mut p = port(vec![ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")]);
        p.node_port = Some(30080);
        p.external_local = true;
        let o = render_port(&cfg(), &p);
        let ext = chain(&o, "external-ns/web/tcp/http");
        assert_eq!(ext.rules.last().unwrap(), "goto local-ns/web/tcp/http");
        let local = chain(&o, "local-ns/web/tcp/http");
        assert_eq!(
            local.rules,
            vec!["numgen random mod 1 vmap { 0 : goto endpoint-ns/web/tcp/http__10.244.1.2/8080 }"]
        );
        assert!(o.elements.contains(&Element {
            map: Map::ServiceNodePorts,
            key: "tcp . 30080".into(),
            verdict: "goto external-ns/web/tcp/http".into()
        }));
        // No local endpoint: outside traffic is dropped.
        let o = render_port(&cfg(), &port(vec![ep("10.244.2.2", "n2")]).tap_np());
        let ext = chain(&o, "external-ns/web/tcp/http");
        assert_eq!(ext.rules.last().unwrap(), "drop");
    }

    trait TapNp {
        fn tap_np(self) -> Self;
    }
    impl TapNp for PortModel {
        fn tap_np(mut self) -> Self {
            self.node_port = Some(30080);
            self.external_local = true;
            self
        }
    }

    #[test]
    fn node_port_cluster_policy_masquerades_and_uses_every_endpoint() {
        let mut p = port(vec![ep("10.244.1.2", "n1")]);
        p.node_port = Some(30080);
        let o = render_port(&cfg(), &p);
        let ext = chain(&o, "external-ns/web/tcp/http");
        assert_eq!(
            ext.rules,
            vec!["jump mark-for-masquerade", "goto service-ns/web/tcp/http"]
        );
        let o = render_port(&cfg(), &port(vec![]).tap_np());
        assert!(o.elements.contains(&Element {
            map: Map::NoEndpointNodePorts,
            key: "tcp . 30080".into(),
            verdict: "goto reject-chain".into()
        }));
    }

    #[test]
    fn partial_sync_touches_only_what_changed() {
        let c = cfg();
        let a = render_port(
            &c,
            &port(vec![ep("10.244.1.2", "n1"), ep("10.244.1.3", "n1")]),
        );
        let b = render_port(&c, &port(vec![ep("10.244.1.2", "n1")]));
        let s = script(
            &c,
            &Plan {
                kind: SyncKind::Partial,
                old: vec![&a],
                new: vec![&b],
                nodeport_ips: None,
            },
        );
        assert!(
            !s.contains("add chain ip capstan-proxy filter-input"),
            "{s}"
        );
        assert!(s.contains("flush chain ip capstan-proxy service-ns/web/tcp/http\n"));
        let flush = s
            .find("flush chain ip capstan-proxy endpoint-ns/web/tcp/http__10.244.1.3/8080\n")
            .expect("gone endpoint chain flushed");
        let delete = s
            .find("delete chain ip capstan-proxy endpoint-ns/web/tcp/http__10.244.1.3/8080\n")
            .expect("gone endpoint chain deleted");
        assert!(flush < delete, "{s}");
        assert!(
            !s.contains("flush chain ip capstan-proxy endpoint-ns/web/tcp/http__10.244.1.2/8080"),
            "unchanged chain is left alone: {s}"
        );
        assert!(!s.contains("element"), "elements are unchanged: {s}");
        // Nothing changed: nothing but the table line.
        let s = script(
            &c,
            &Plan {
                kind: SyncKind::Partial,
                old: vec![&b],
                new: vec![&b],
                nodeport_ips: None,
            },
        );
        assert_eq!(s, "add table ip capstan-proxy\n");
    }

    #[test]
    fn takeover_replaces_the_table_and_full_flushes_in_place() {
        let c = cfg();
        let a = render_port(&c, &port(vec![ep("10.244.1.2", "n1")]));
        let s = script(
            &c,
            &Plan {
                kind: SyncKind::Takeover,
                old: vec![],
                new: vec![&a],
                nodeport_ips: Some(&[]),
            },
        );
        assert!(s.starts_with("add table ip capstan-proxy\ndelete table ip capstan-proxy\nadd table ip capstan-proxy\n"));
        assert!(s.contains(
            "add chain ip capstan-proxy nat-output { type nat hook output priority -100 ; }"
        ));
        assert!(s.contains("add element ip capstan-proxy service-ips { 10.96.0.10 . tcp . 80 : goto service-ns/web/tcp/http }"));
        let s = script(
            &c,
            &Plan {
                kind: SyncKind::Full,
                old: vec![&a],
                new: vec![],
                nodeport_ips: None,
            },
        );
        assert!(!s.contains("delete table"));
        assert!(s.contains("flush map ip capstan-proxy service-ips"));
        assert!(s.contains("delete chain ip capstan-proxy service-ns/web/tcp/http"));
    }

    #[test]
    fn masquerade_all_and_no_cluster_cidr() {
        let mut c = cfg();
        c.masquerade_all = true;
        let o = render_port(&c, &port(vec![ep("10.244.1.2", "n1")]));
        assert_eq!(
            chain(&o, "service-ns/web/tcp/http").rules[0],
            "ip daddr 10.96.0.10 meta l4proto tcp th dport 80 jump mark-for-masquerade"
        );
        c.masquerade_all = false;
        c.cluster_cidrs.clear();
        let o = render_port(&c, &port(vec![ep("10.244.1.2", "n1")]));
        assert!(chain(&o, "service-ns/web/tcp/http").rules[0].starts_with("numgen"));
    }
}
