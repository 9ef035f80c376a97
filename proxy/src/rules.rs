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

/// Up to this many endpoints are picked by a row of `numgen` rules;
/// more by one `numgen … vmap` (upstream always uses the map).
pub const LINEAR_BALANCE_MAX: usize = 16;

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
    let n = eps.len();
    if n <= LINEAR_BALANCE_MAX {
        // Rule i wins with probability 1/(n-i) of what reaches it: uniform
        // overall, and no anonymous map per Service (the kernel names each
        // one by scanning all sets of the table).
        for (i, ep) in eps.iter().enumerate() {
            let target = format!("goto endpoint-{}", endpoint_suffix(port, ep));
            if i + 1 == n {
                rules.push(target);
            } else {
                rules.push(format!("numgen random mod {} == 0 {target}", n - i));
            }
        }
        return;
    }
    let mut r = format!("numgen random mod {n} vmap {{ ");
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
    /// Rewrite every chain and map of the table in place and remove
    /// whatever else is in it (`existing` says what is): the first sync
    /// (taking over a table a previous run left), the one after a
    /// failure, and hourly. Affinity sets whose timeout is known to be
    /// unchanged keep their entries.
    Full,
    /// Rewrite only what differs between `old` and `new`.
    Partial,
}

/// The chains and sets a table holds right now (from
/// [`crate::nft::existing`]).
#[derive(Clone, Debug, Default)]
pub struct Existing {
    /// Chain names.
    pub chains: Vec<String>,
    /// Named set names (maps excluded).
    pub sets: Vec<String>,
}

/// One sync's input to [`script`].
pub struct Plan<'a> {
    /// How much to rewrite.
    pub kind: SyncKind,
    /// The applied objects of the Services being synced (for `Full`: of
    /// all Services, or none when nothing is known to be applied).
    pub old: Vec<&'a PortObjects>,
    /// Their objects now (for `Full`: of all Services).
    pub new: Vec<&'a PortObjects>,
    /// The `nodeport-ips` set's contents, when it must be rewritten.
    pub nodeport_ips: Option<&'a [Ipv4Addr]>,
    /// What the table holds (used by `Full`).
    pub existing: &'a Existing,
}

/// A sync as two `nft -f` transactions. `prepare` only creates what
/// nothing refers to yet (new chains, sets and maps), so applying it
/// changes no packet's fate; `commit` then switches everything at once.
/// The split is for speed: a rule added in the transaction that creates
/// its chain is resolved by the kernel through a walk of the whole
/// transaction, which is quadratic for tens of thousands of chains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scripts {
    /// First transaction.
    pub prepare: String,
    /// Second transaction.
    pub commit: String,
}

/// Above this many lines the prepare step runs as a transaction of its
/// own; below, one transaction is faster (`nft` reads the table once).
const SEPARATE_PREPARE_LINES: usize = 1000;

impl Scripts {
    /// The transactions to run, in order: `prepare` and `commit`, or
    /// both as one when `prepare` is small.
    pub fn transactions(&self) -> Vec<String> {
        if self.prepare.lines().count() > SEPARATE_PREPARE_LINES {
            return vec![self.prepare.clone(), self.commit.clone()];
        }
        let commit_body = self
            .commit
            .split_once('\n')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        vec![format!("{}{commit_body}", self.prepare)]
    }

    /// Whether the sync changes nothing (both scripts only name the
    /// table).
    pub fn is_noop(&self) -> bool {
        self.prepare.lines().count() <= 1 && self.commit.lines().count() <= 1
    }
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

/// The set of node addresses NodePorts answer on with
/// `--nodeport-addresses`.
pub const NODEPORT_SET: &str = "nodeport-ips";

fn write_elements<'a>(
    s: &mut String,
    cmd: &str,
    table: &str,
    map: Map,
    items: impl Iterator<Item = &'a Element>,
    with_verdict: bool,
) {
    let mut n: usize = 0;
    for e in items.filter(|e| e.map == map) {
        if n.is_multiple_of(ELEMENT_BATCH) {
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

fn add_set(s: &mut String, table: &str, name: &str, timeout: u32) {
    let _ = writeln!(
        s,
        "add set ip {table} {name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"
    );
}

/// The `nft -f` scripts of one sync.
pub fn script(cfg: &Config, plan: &Plan) -> Scripts {
    let t = &cfg.table;
    let full = plan.kind == SyncKind::Full;
    let mut p = String::new();
    let mut c = String::with_capacity(256 + plan.new.len() * 512);
    let _ = writeln!(p, "add table ip {t}");
    let _ = writeln!(c, "add table ip {t}");

    let old_chains: HashMap<&str, &Chain> = plan
        .old
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
    let old_sets: HashMap<&str, u32> = plan
        .old
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
    let base = base_chains(cfg);
    let existing_chains: HashSet<&str> = if full {
        plan.existing.chains.iter().map(String::as_str).collect()
    } else {
        HashSet::new()
    };
    let existing_sets: HashSet<&str> = if full {
        plan.existing.sets.iter().map(String::as_str).collect()
    } else {
        HashSet::new()
    };

    // Prepare: only what nothing refers to yet.
    let mut rewrite: Vec<&Chain> = Vec::new();
    if full {
        for (name, hook, _) in &base {
            match hook {
                Some(h) => {
                    let _ = writeln!(p, "add chain ip {t} {name} {{ {h} ; }}");
                }
                None => {
                    let _ = writeln!(p, "add chain ip {t} {name}");
                }
            }
        }
        for m in Map::ALL {
            let _ = writeln!(
                p,
                "add map ip {t} {} {{ type {} : verdict ; }}",
                m.name(),
                m.key_type()
            );
        }
        let _ = writeln!(p, "add set ip {t} {NODEPORT_SET} {{ type ipv4_addr ; }}");
        for n in &plan.new {
            for ch in &n.chains {
                if !existing_chains.contains(ch.name.as_str()) {
                    let _ = writeln!(p, "add chain ip {t} {}", ch.name);
                }
                rewrite.push(ch);
            }
            for (name, timeout) in &n.sets {
                if !existing_sets.contains(name.as_str()) {
                    add_set(&mut p, t, name, *timeout);
                }
            }
        }
    } else {
        for n in &plan.new {
            for ch in &n.chains {
                match old_chains.get(ch.name.as_str()) {
                    None => {
                        let _ = writeln!(p, "add chain ip {t} {}", ch.name);
                        rewrite.push(ch);
                    }
                    Some(o) if o.rules != ch.rules => rewrite.push(ch),
                    Some(_) => {}
                }
            }
            for (name, timeout) in &n.sets {
                if !old_sets.contains_key(name.as_str()) {
                    add_set(&mut p, t, name, *timeout);
                }
            }
        }
    }

    // Commit, 1: elements that go away (Full flushes the maps instead).
    let new_elems: HashSet<&Element> = plan.new.iter().flat_map(|o| o.elements.iter()).collect();
    let old_elems: HashSet<&Element> = plan.old.iter().flat_map(|o| o.elements.iter()).collect();
    if full {
        for m in Map::ALL {
            let _ = writeln!(c, "flush map ip {t} {}", m.name());
        }
    } else {
        let gone: Vec<&Element> = plan
            .old
            .iter()
            .flat_map(|o| o.elements.iter())
            .filter(|e| !new_elems.contains(e))
            .collect();
        for m in Map::ALL {
            write_elements(&mut c, "delete", t, m, gone.iter().copied(), false);
        }
    }
    // 2: empty the chains that change or go away, then delete the latter.
    let base_names: HashSet<&str> = base.iter().map(|(n, _, _)| *n).collect();
    if full {
        for name in &plan.existing.chains {
            let _ = writeln!(c, "flush chain ip {t} {name}");
        }
        for name in &plan.existing.chains {
            if !new_chains.contains_key(name.as_str()) && !base_names.contains(name.as_str()) {
                let _ = writeln!(c, "delete chain ip {t} {name}");
            }
        }
    } else {
        for o in &plan.old {
            for ch in &o.chains {
                match new_chains.get(ch.name.as_str()) {
                    Some(n) if n.rules == ch.rules => {}
                    _ => {
                        let _ = writeln!(c, "flush chain ip {t} {}", ch.name);
                    }
                }
            }
        }
        for o in &plan.old {
            for ch in &o.chains {
                if !new_chains.contains_key(ch.name.as_str()) {
                    let _ = writeln!(c, "delete chain ip {t} {}", ch.name);
                }
            }
        }
    }
    // 3: sets that go away or change their timeout (re-created).
    if full {
        for name in &plan.existing.sets {
            if name == NODEPORT_SET {
                continue;
            }
            let keep = new_sets
                .get(name.as_str())
                .is_some_and(|t| old_sets.get(name.as_str()) == Some(t));
            if !keep {
                let _ = writeln!(c, "delete set ip {t} {name}");
                if let Some(timeout) = new_sets.get(name.as_str()) {
                    add_set(&mut c, t, name, *timeout);
                }
            }
        }
    } else {
        for o in &plan.old {
            for (name, timeout) in &o.sets {
                let now = new_sets.get(name.as_str());
                if now != Some(timeout) {
                    let _ = writeln!(c, "delete set ip {t} {name}");
                    if let Some(n) = now {
                        add_set(&mut c, t, name, *n);
                    }
                }
            }
        }
    }
    if let Some(ips) = plan.nodeport_ips {
        let _ = writeln!(c, "flush set ip {t} {NODEPORT_SET}");
        if !ips.is_empty() {
            let list: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
            let _ = writeln!(
                c,
                "add element ip {t} {NODEPORT_SET} {{ {} }}",
                list.join(", ")
            );
        }
    }
    // 4: rules.
    if full {
        for (name, _, rules) in &base {
            for r in rules {
                let _ = writeln!(c, "add rule ip {t} {name} {r}");
            }
        }
    }
    for ch in rewrite {
        write_rules(&mut c, t, ch);
    }
    // 5: elements that are new (all of them after a flush).
    let added: Vec<&Element> = plan
        .new
        .iter()
        .flat_map(|o| o.elements.iter())
        .filter(|e| full || !old_elems.contains(e))
        .collect();
    for m in Map::ALL {
        write_elements(&mut c, "add", t, m, added.iter().copied(), true);
    }
    Scripts {
        prepare: p,
        commit: c,
    }
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
                "numgen random mod 2 == 0 goto endpoint-ns/web/tcp/http__10.244.1.2/8080",
                "goto endpoint-ns/web/tcp/http__10.244.2.2/8080",
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
            vec!["goto endpoint-ns/web/tcp/http__10.244.1.2/8080"]
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
        let none = Existing::default();
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
                existing: &none,
            },
        );
        assert_eq!(s.prepare, "add table ip capstan-proxy\n", "no new chain");
        let s = s.commit;
        assert!(!s.contains("filter-input"), "{s}");
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
        // Growing again: the new chain is created in the prepare step.
        let s = script(
            &c,
            &Plan {
                kind: SyncKind::Partial,
                old: vec![&b],
                new: vec![&a],
                nodeport_ips: None,
                existing: &none,
            },
        );
        assert_eq!(
            s.prepare,
            "add table ip capstan-proxy\nadd chain ip capstan-proxy endpoint-ns/web/tcp/http__10.244.1.3/8080\n"
        );
        // Nothing changed: nothing to do.
        let s = script(
            &c,
            &Plan {
                kind: SyncKind::Partial,
                old: vec![&b],
                new: vec![&b],
                nodeport_ips: None,
                existing: &none,
            },
        );
        assert!(s.is_noop(), "{s:?}");
        // A small sync is one transaction: the table line once.
        let s = script(
            &c,
            &Plan {
                kind: SyncKind::Partial,
                old: vec![&b],
                new: vec![&a],
                nodeport_ips: None,
                existing: &none,
            },
        );
        let tx = s.transactions();
        assert_eq!(tx.len(), 1);
        assert_eq!(tx[0].matches("add table").count(), 1);
        assert!(tx[0].find("add chain").unwrap() < tx[0].find("add rule").unwrap());
    }

    #[test]
    fn full_sync_rewrites_in_place_and_removes_unknown_objects() {
        let c = cfg();
        let mut p = port(vec![ep("10.244.1.2", "n1")]);
        p.affinity_timeout = Some(60);
        let a = render_port(&c, &p);
        // A fresh table: everything is created.
        let s = script(
            &c,
            &Plan {
                kind: SyncKind::Full,
                old: vec![],
                new: vec![&a],
                nodeport_ips: Some(&[]),
                existing: &Existing::default(),
            },
        );
        assert!(s.prepare.contains(
            "add chain ip capstan-proxy nat-output { type nat hook output priority -100 ; }"
        ));
        assert!(
            s.prepare
                .contains("add chain ip capstan-proxy service-ns/web/tcp/http\n")
        );
        assert!(s.prepare.contains("add set ip capstan-proxy affinity-ns/web/tcp/http__10.244.1.2/8080 { type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; }"));
        assert!(s.commit.contains("add element ip capstan-proxy service-ips { 10.96.0.10 . tcp . 80 : goto service-ns/web/tcp/http }"));
        assert!(s.commit.contains("add rule ip capstan-proxy services ip daddr . meta l4proto . th dport vmap @service-ips"));
        // A table left by someone else: its chains and sets are emptied,
        // those not wanted deleted, unknown affinity sets re-created.
        let existing = Existing {
            chains: vec![
                "services".into(),
                "service-ns/web/tcp/http".into(),
                "stale".into(),
            ],
            sets: vec![
                "nodeport-ips".into(),
                "affinity-ns/web/tcp/http__10.244.1.2/8080".into(),
                "affinity-old".into(),
            ],
        };
        let s = script(
            &c,
            &Plan {
                kind: SyncKind::Full,
                old: vec![],
                new: vec![&a],
                nodeport_ips: Some(&[]),
                existing: &existing,
            },
        );
        assert!(
            !s.prepare
                .contains("add chain ip capstan-proxy service-ns/web/tcp/http\n")
        );
        assert!(s.commit.contains("flush chain ip capstan-proxy stale\n"));
        assert!(s.commit.contains("delete chain ip capstan-proxy stale\n"));
        assert!(
            !s.commit
                .contains("delete chain ip capstan-proxy services\n")
        );
        assert!(
            s.commit
                .contains("delete set ip capstan-proxy affinity-old\n")
        );
        assert!(s.commit.contains(
            "delete set ip capstan-proxy affinity-ns/web/tcp/http__10.244.1.2/8080\nadd set"
        ));
        assert!(s.commit.contains("flush map ip capstan-proxy service-ips"));
        // Known sets with unchanged timeouts keep their entries.
        let s = script(
            &c,
            &Plan {
                kind: SyncKind::Full,
                old: vec![&a],
                new: vec![&a],
                nodeport_ips: Some(&[]),
                existing: &existing,
            },
        );
        assert!(
            !s.commit.contains("delete set ip capstan-proxy affinity-ns"),
            "{}",
            s.commit
        );
    }

    #[test]
    fn many_endpoints_are_picked_through_one_numgen_map() {
        let eps: Vec<Endpoint> = (0..20)
            .map(|i| ep(&format!("10.244.1.{i}"), "n1"))
            .collect();
        let o = render_port(&cfg(), &port(eps));
        let svc = chain(&o, "service-ns/web/tcp/http");
        assert_eq!(svc.rules.len(), 2);
        assert!(svc.rules[1].starts_with("numgen random mod 20 vmap { 0 : goto endpoint-"));
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
        assert!(chain(&o, "service-ns/web/tcp/http").rules[0].starts_with("goto endpoint-"));
    }
}
