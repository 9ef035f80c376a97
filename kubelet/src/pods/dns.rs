//! A pod's resolver configuration and host name, as upstream's kubelet
//! makes them (`pkg/kubelet/network/dns`, `GeneratePodHostNameAndDomain`):
//! the CRI `DNSConfig` containerd writes into the pod's `/etc/resolv.conf`
//! from `dnsPolicy` (`ClusterFirst`, `ClusterFirstWithHostNet`, `Default`,
//! `None`), `dnsConfig` merged in, and upstream's limits with its
//! `DNSConfigForming` Events. Pure functions over the pod, the node's
//! settings and the node's parsed resolv.conf, so every rule is unit
//! tested; [`host_resolv_conf`] is the only file read.

use std::path::Path;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

/// The options every ClusterFirst pod gets (upstream's `defaultDNSOptions`).
pub const DEFAULT_OPTIONS: &[&str] = &["ndots:5"];
/// Most nameservers a resolv.conf may list (upstream's `MaxDNSNameservers`,
/// glibc's `MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;
/// Most search domains (upstream's `MaxDNSSearchPathsExpanded`).
pub const MAX_SEARCH_PATHS: usize = 32;
/// Longest search line in characters (`MaxDNSSearchListCharsExpanded`).
pub const MAX_SEARCH_LIST_CHARS: usize = 2048;
/// Longest single search domain (a DNS-1123 subdomain); longer ones make
/// some resolvers abort, so upstream drops them.
pub const MAX_SEARCH_PATH_LEN: usize = 253;
/// Longest kernel host name including the domain for `setHostnameAsFQDN`.
pub const FQDN_MAX_LEN: usize = 64;
/// Longest host name (upstream truncates longer pod names to it).
pub const HOSTNAME_MAX_LEN: usize = 63;
/// Largest resolv.conf the kubelet reads (upstream's 10 MiB).
pub const MAX_RESOLV_CONF_LEN: u64 = 10 << 20;

/// The node-wide DNS settings (`--cluster-dns`, `--cluster-domain`,
/// `--resolv-conf`, the node's IPs).
#[derive(Debug, Clone, Default)]
pub struct DnsSettings<'a> {
    /// `--cluster-dns`.
    pub cluster_dns: &'a [String],
    /// `--cluster-domain` (empty: no cluster search domains).
    pub cluster_domain: &'a str,
    /// Whether `--resolv-conf` names a file (`""` disables it: host DNS
    /// then means the node's own resolver on loopback).
    pub resolv_conf_set: bool,
    /// The node's IPs (one loopback nameserver per address family when
    /// `--resolv-conf` is empty).
    pub node_ips: &'a [String],
}

/// A resolver configuration: `nameserver`, `search` and `options` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// Nameserver addresses, in order.
    pub servers: Vec<String>,
    /// Search domains (trailing dots removed).
    pub searches: Vec<String>,
    /// Options (`ndots:5`, `edns0`, ...).
    pub options: Vec<String>,
}

/// Who an Event about a pod's DNS is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The pod.
    Pod,
    /// The node.
    Node,
}

/// A Warning Event upstream records while forming a pod's DNS config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The Event's object.
    pub subject: Subject,
    /// `DNSConfigForming` or `MissingClusterDNS`.
    pub reason: &'static str,
    /// Upstream's message.
    pub message: String,
}

/// Parses resolv.conf as upstream's `parseResolvConf`: `nameserver`
/// lines accumulate, the last `search` and the last `options` line win,
/// `#` comments and anything else are ignored. A `nameserver` line
/// without an address is an error.
pub fn parse_resolv_conf(text: &str) -> Result<ResolvConf, String> {
    let mut conf = ResolvConf::default();
    let mut errors = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.first().copied() {
            Some("nameserver") => match fields.get(1) {
                Some(ip) => conf.servers.push((*ip).to_string()),
                None => errors.push("nameserver list is empty "),
            },
            Some("search") => {
                conf.searches = fields[1..]
                    .iter()
                    .map(|s| s.strip_suffix('.').unwrap_or(s).to_string())
                    .collect();
            }
            Some("options") => conf.options = fields[1..].iter().map(|s| s.to_string()).collect(),
            _ => {}
        }
    }
    match errors.len() {
        0 => Ok(conf),
        1 => Err(errors[0].to_string()),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// The node's resolver config from `--resolv-conf` (`None` when the flag
/// is empty). An unreadable file is an error: upstream then fails the
/// sandbox rather than guess.
pub fn host_resolv_conf(path: &Path) -> Result<Option<ResolvConf>, String> {
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_RESOLV_CONF_LEN).read_to_string(&mut text))
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    parse_resolv_conf(&text).map(Some)
}

/// Upstream's checks of the node's resolv.conf at start
/// (`CheckLimitsForResolvConf`): the message of the Warning Event on the
/// Node when pods' search lines would be cut.
pub fn check_host_limits(path: &Path, host: &ResolvConf, cluster_domain: &str) -> Option<String> {
    let mut limit = MAX_SEARCH_PATHS;
    if !cluster_domain.is_empty() {
        limit -= 3;
    }
    let file = path.display();
    if host.searches.len() > limit {
        return Some(format!(
            "Resolv.conf file '{file}' contains search line consisting of more than {limit} domains!"
        ));
    }
    if host.searches.iter().any(|s| s.len() > MAX_SEARCH_PATH_LEN) {
        return Some(format!(
            "Resolv.conf file {:?} contains a search path which length is more than allowed {MAX_SEARCH_PATH_LEN} chars!",
            file.to_string()
        ));
    }
    if host.searches.join(" ").len() > MAX_SEARCH_LIST_CHARS {
        return Some(format!(
            "Resolv.conf file '{file}' contains search line which length is more than allowed {MAX_SEARCH_LIST_CHARS} chars!"
        ));
    }
    None
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

fn omit_duplicates(list: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    list.into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DnsType {
    Cluster,
    Host,
    None,
}

/// Which base config a pod gets: `ClusterFirst` on the host network
/// falls back to the host's, as upstream's `getPodDNSType`; an unknown
/// policy (the apiserver rejects them) is treated as ClusterFirst.
fn dns_type(pod: &Pod) -> DnsType {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    match policy {
        "None" => DnsType::None,
        "ClusterFirstWithHostNet" => DnsType::Cluster,
        "ClusterFirst" if !host_network(pod) => DnsType::Cluster,
        "ClusterFirst" | "Default" => DnsType::Host,
        other => {
            tracing::error!(policy = %other, "invalid DNSPolicy; falling back to ClusterFirst");
            DnsType::Cluster
        }
    }
}

/// The `<name>_<namespace>(<uid>)` upstream names pods by in messages.
fn pod_label(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// `dnsConfig.options` over `existing`: an option of the same name is
/// replaced in place, a new one appended (`name` or `name:value`).
fn merge_options(existing: Vec<String>, config: &PodDNSConfig) -> Vec<String> {
    let mut out: Vec<(String, String)> = existing
        .into_iter()
        .map(|o| match o.split_once(':') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (o, String::new()),
        })
        .collect();
    // Upstream keys options by name: the last of duplicates wins.
    let mut dedup: Vec<(String, String)> = Vec::with_capacity(out.len());
    for (n, v) in out.drain(..) {
        match dedup.iter_mut().find(|(x, _)| *x == n) {
            Some(e) => e.1 = v,
            None => dedup.push((n, v)),
        }
    }
    for o in config.options.iter().flatten() {
        let name = o.name.clone().unwrap_or_default();
        let value = o.value.clone().unwrap_or_default();
        match dedup.iter_mut().find(|(x, _)| *x == name) {
            Some(e) => e.1 = value,
            None => dedup.push((name, value)),
        }
    }
    dedup
        .into_iter()
        .map(|(n, v)| if v.is_empty() { n } else { format!("{n}:{v}") })
        .collect()
}

/// Cuts the nameservers to [`MAX_NAMESERVERS`], with upstream's Event.
fn fit_nameservers(mut servers: Vec<String>, warnings: &mut Vec<Warning>) -> Vec<String> {
    if servers.len() > MAX_NAMESERVERS {
        servers.truncate(MAX_NAMESERVERS);
        warnings.push(Warning {
            subject: Subject::Pod,
            reason: "DNSConfigForming",
            message: format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                servers.join(" ")
            ),
        });
    }
    servers
}

/// Cuts the search line as upstream's `formDNSSearchFitsLimits`: at most
/// [`MAX_SEARCH_PATHS`] domains, none longer than 253 characters, and the
/// last ones dropped until the line fits [`MAX_SEARCH_LIST_CHARS`].
fn fit_searches(mut searches: Vec<String>, warnings: &mut Vec<Warning>) -> Vec<String> {
    let mut exceeded = false;
    if searches.len() > MAX_SEARCH_PATHS {
        searches.truncate(MAX_SEARCH_PATHS);
        exceeded = true;
    }
    let before = searches.len();
    searches.retain(|s| s.len() <= MAX_SEARCH_PATH_LEN);
    exceeded |= searches.len() != before;
    let mut line = searches.join(" ").len();
    while line > MAX_SEARCH_LIST_CHARS {
        let Some(last) = searches.pop() else { break };
        line = line.saturating_sub(last.len() + 1);
        exceeded = true;
    }
    if exceeded {
        warnings.push(Warning {
            subject: Subject::Pod,
            reason: "DNSConfigForming",
            message: format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                searches.join(" ")
            ),
        });
    }
    searches
}

/// The pod's DNS config, as upstream's `GetPodDNS`, with the Warning
/// Events upstream records on the way. `host` is the node's resolv.conf
/// (`None` when `--resolv-conf` is empty).
pub fn pod_dns(
    pod: &Pod,
    s: &DnsSettings<'_>,
    host: Option<&ResolvConf>,
) -> (cri::DnsConfig, Vec<Warning>) {
    let mut warnings = Vec::new();
    let host = host.cloned().unwrap_or_default();
    let mut kind = dns_type(pod);
    let mut dns = ResolvConf::default();
    if kind == DnsType::Cluster {
        if s.cluster_dns.is_empty() {
            let message = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
            warnings.push(Warning {
                subject: Subject::Node,
                reason: "MissingClusterDNS",
                message: message.to_string(),
            });
            warnings.push(Warning {
                subject: Subject::Pod,
                reason: "MissingClusterDNS",
                message: format!("pod: {:?}. {message}", pod_label(pod)),
            });
            kind = DnsType::Host;
        } else {
            let d = s.cluster_domain;
            let searches = if d.is_empty() {
                host.searches.clone()
            } else {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                let mut list = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.to_string()];
                list.extend(host.searches.iter().cloned());
                omit_duplicates(list)
            };
            dns = ResolvConf {
                servers: s.cluster_dns.to_vec(),
                searches,
                options: DEFAULT_OPTIONS.iter().map(|o| o.to_string()).collect(),
            };
        }
    }
    if kind == DnsType::Host {
        dns = host;
        if !s.resolv_conf_set {
            // No resolv.conf: the node's own resolver, on loopback.
            for ip in s.node_ips {
                dns.servers
                    .push(if ip.contains(':') { "::1" } else { "127.0.0.1" }.into());
            }
            if dns.servers.is_empty() {
                dns.servers.push("127.0.0.1".into());
            }
            dns.searches = vec![".".into()];
        }
    }
    if let Some(c) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        let mut servers = dns.servers;
        servers.extend(c.nameservers.iter().flatten().cloned());
        let mut searches = dns.searches;
        searches.extend(c.searches.iter().flatten().cloned());
        dns = ResolvConf {
            servers: omit_duplicates(servers),
            searches: omit_duplicates(searches),
            options: merge_options(dns.options, c),
        };
    }
    let config = cri::DnsConfig {
        servers: fit_nameservers(dns.servers, &mut warnings),
        searches: fit_searches(dns.searches, &mut warnings),
        options: dns.options,
    };
    (config, warnings)
}

/// `hostname`, else the pod name, cut to 63 characters as upstream's
/// `truncatePodHostnameIfNeeded` (then without trailing `-` or `.`).
fn truncate_hostname(name: &str) -> Result<String, String> {
    if name.len() <= HOSTNAME_MAX_LEN {
        return Ok(name.to_string());
    }
    let mut end = HOSTNAME_MAX_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let cut = name[..end].trim_end_matches(['-', '.']);
    if cut.is_empty() {
        return Err(format!("hostname for pod was invalid: {name:?}"));
    }
    Ok(cut.to_string())
}

/// The pod's host name and domain, as upstream's
/// `GeneratePodHostNameAndDomain`: `spec.hostname` or the pod name (63
/// characters at most), and `<subdomain>.<namespace>.svc.<cluster-domain>`
/// when `spec.subdomain` is set (else empty).
pub fn hostname_and_domain(pod: &Pod, cluster_domain: &str) -> Result<(String, String), String> {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
        .or(pod.metadata.name.as_deref())
        .unwrap_or_default();
    let hostname = truncate_hostname(name)?;
    let domain = match spec.and_then(|s| s.subdomain.as_deref()) {
        Some(sub) if !sub.is_empty() => {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            format!("{sub}.{ns}.svc.{cluster_domain}")
        }
        _ => String::new(),
    };
    Ok((hostname, domain))
}

/// The host name the sandbox's UTS namespace gets: empty on the host
/// network (the node's own; runc refuses to set one there), the FQDN when
/// `setHostnameAsFQDN` and a subdomain ask for it (upstream's
/// `GetNodenameForKernel`: 64 characters at most), else the short name.
pub fn sandbox_hostname(pod: &Pod, cluster_domain: &str) -> Result<String, String> {
    if host_network(pod) {
        return Ok(String::new());
    }
    let (hostname, domain) = hostname_and_domain(pod, cluster_domain)?;
    let fqdn_wanted = pod
        .spec
        .as_ref()
        .and_then(|s| s.set_hostname_as_fqdn)
        .unwrap_or(false);
    if fqdn_wanted && !domain.is_empty() {
        let fqdn = format!("{hostname}.{domain}");
        if fqdn.len() > FQDN_MAX_LEN {
            return Err(format!(
                "failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long ({FQDN_MAX_LEN} characters is the max, {} characters requested)",
                fqdn.len()
            ));
        }
        return Ok(fqdn);
    }
    Ok(hostname)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c"}]);
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn host() -> ResolvConf {
        parse_resolv_conf(
            "# generated\nnameserver 192.0.2.53\nsearch old.example\nsearch corp.example. lab.example\noptions timeout:2 rotate\nnameserver 192.0.2.54\ndomain ignored.example\n",
        )
        .unwrap()
    }

    const CLUSTER: &[String] = &[];

    fn settings(cluster_dns: &[String]) -> DnsSettings<'_> {
        DnsSettings {
            cluster_dns,
            cluster_domain: "cluster.local",
            resolv_conf_set: true,
            node_ips: &[],
        }
    }

    #[test]
    fn resolv_conf_parses_as_upstream() {
        let h = host();
        assert_eq!(h.servers, vec!["192.0.2.53", "192.0.2.54"]);
        assert_eq!(h.searches, vec!["corp.example", "lab.example"]);
        assert_eq!(h.options, vec!["timeout:2", "rotate"]);
        assert_eq!(
            parse_resolv_conf("nameserver\n").unwrap_err(),
            "nameserver list is empty "
        );
    }

    #[test]
    fn cluster_first_uses_cluster_dns_and_searches() {
        let dns = vec!["10.96.0.10".to_string()];
        let (c, w) = pod_dns(&pod(json!({})), &settings(&dns), Some(&host()));
        assert!(w.is_empty());
        assert_eq!(c.servers, vec!["10.96.0.10"]);
        assert_eq!(
            c.searches,
            vec![
                "ns.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "lab.example"
            ]
        );
        assert_eq!(c.options, vec!["ndots:5"]);
    }

    #[test]
    fn host_network_cluster_first_is_default_unless_with_host_net() {
        let dns = vec!["10.96.0.10".to_string()];
        let s = settings(&dns);
        let (c, _) = pod_dns(&pod(json!({"hostNetwork": true})), &s, Some(&host()));
        assert_eq!(c.servers, host().servers);
        assert_eq!(c.options, host().options);
        let p = pod(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        let (c, _) = pod_dns(&p, &s, Some(&host()));
        assert_eq!(c.servers, vec!["10.96.0.10"]);
        assert_eq!(c.searches[0], "ns.svc.cluster.local");
        // ClusterFirstWithHostNet off the host network is ClusterFirst.
        let (c, _) = pod_dns(
            &pod(json!({"dnsPolicy": "ClusterFirstWithHostNet"})),
            &s,
            Some(&host()),
        );
        assert_eq!(c.servers, vec!["10.96.0.10"]);
    }

    #[test]
    fn without_cluster_dns_cluster_first_falls_back_with_events() {
        let (c, w) = pod_dns(&pod(json!({})), &settings(CLUSTER), Some(&host()));
        assert_eq!(c.servers, host().servers);
        assert_eq!(c.searches, host().searches);
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].subject, w[0].reason),
            (Subject::Node, "MissingClusterDNS")
        );
        assert_eq!(
            w[1].message,
            "pod: \"web_ns(u1)\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy."
        );
    }

    #[test]
    fn default_copies_the_host_and_an_empty_resolv_conf_means_loopback() {
        let dns = vec!["10.96.0.10".to_string()];
        let p = pod(json!({"dnsPolicy": "Default"}));
        let (c, w) = pod_dns(&p, &settings(&dns), Some(&host()));
        assert!(w.is_empty());
        assert_eq!(
            (c.servers, c.searches, c.options),
            (host().servers, host().searches, host().options)
        );
        let ips = vec!["192.0.2.1".to_string(), "2001:db8::1".to_string()];
        let s = DnsSettings {
            resolv_conf_set: false,
            node_ips: &ips,
            ..settings(&dns)
        };
        let (c, _) = pod_dns(&p, &s, None);
        assert_eq!(c.servers, vec!["127.0.0.1", "::1"]);
        assert_eq!(c.searches, vec!["."]);
    }

    #[test]
    fn none_takes_only_dns_config_and_dns_config_merges() {
        let dns = vec!["10.96.0.10".to_string()];
        let p = pod(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1", "1.1.1.1"], "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        let (c, _) = pod_dns(&p, &settings(&dns), Some(&host()));
        assert_eq!(c.servers, vec!["1.1.1.1"]);
        assert_eq!(c.searches, vec!["a.example"]);
        assert_eq!(c.options, vec!["ndots:2", "edns0"]);
        // Appended to ClusterFirst: deduplicated, options replaced by name.
        let p = pod(json!({"dnsConfig": {
            "nameservers": ["10.96.0.10", "1.1.1.1"], "searches": ["svc.cluster.local", "x.example"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]}}));
        let (c, _) = pod_dns(&p, &settings(&dns), None);
        assert_eq!(c.servers, vec!["10.96.0.10", "1.1.1.1"]);
        assert_eq!(
            c.searches,
            vec![
                "ns.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "x.example"
            ]
        );
        assert_eq!(c.options, vec!["ndots:1", "single-request"]);
    }

    #[test]
    fn limits_cut_nameservers_and_search_lines_with_events() {
        let dns = vec!["10.96.0.10".to_string()];
        let searches: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        let p = pod(json!({"dnsConfig": {
            "nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3"], "searches": searches}}));
        let (c, w) = pod_dns(&p, &settings(&dns), None);
        assert_eq!(c.servers, vec!["10.96.0.10", "1.1.1.1", "2.2.2.2"]);
        assert_eq!(c.searches.len(), MAX_SEARCH_PATHS);
        assert_eq!(c.searches[31], "d28.example");
        assert_eq!(
            w[0].message,
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.96.0.10 1.1.1.1 2.2.2.2"
        );
        assert!(
            w[1].message.starts_with(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: ns.svc.cluster.local svc"
            ),
            "{}",
            w[1].message
        );
        assert!(w.iter().all(|w| w.reason == "DNSConfigForming"));
        // Long domains: one over 253 characters is dropped, then the line
        // is cut to 2048 characters from the end.
        let long: Vec<String> = (0..10)
            .map(|i| format!("{i}{}", "a".repeat(249)))
            .chain(["b".repeat(254)])
            .collect();
        let p = pod(json!({"dnsPolicy": "None", "dnsConfig": {"searches": long}}));
        let (c, w) = pod_dns(&p, &settings(&dns), None);
        assert_eq!(c.searches.len(), 8);
        assert!(c.searches.join(" ").len() <= MAX_SEARCH_LIST_CHARS);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn host_limits_are_checked_at_start() {
        let path = Path::new("/etc/resolv.conf");
        let many = ResolvConf {
            searches: (0..30).map(|i| format!("d{i}")).collect(),
            ..Default::default()
        };
        assert_eq!(
            check_host_limits(path, &many, "cluster.local").as_deref(),
            Some(
                "Resolv.conf file '/etc/resolv.conf' contains search line consisting of more than 29 domains!"
            )
        );
        assert_eq!(check_host_limits(path, &many, ""), None);
    }

    #[test]
    fn hostnames_and_domains() {
        let p = pod(json!({"hostname": "db-0", "subdomain": "db"}));
        assert_eq!(
            hostname_and_domain(&p, "cluster.local").unwrap(),
            ("db-0".to_string(), "db.ns.svc.cluster.local".to_string())
        );
        assert_eq!(sandbox_hostname(&p, "cluster.local").unwrap(), "db-0");
        let fqdn = pod(json!({"hostname": "db-0", "subdomain": "db", "setHostnameAsFQDN": true}));
        assert_eq!(
            sandbox_hostname(&fqdn, "cluster.local").unwrap(),
            "db-0.db.ns.svc.cluster.local"
        );
        let too_long =
            pod(json!({"hostname": "h".repeat(46), "subdomain": "db", "setHostnameAsFQDN": true}));
        assert!(
            sandbox_hostname(&too_long, "cluster.local")
                .unwrap_err()
                .contains("is too long (64 characters is the max, 70 characters requested)")
        );
        let mut long: Pod = pod(json!({}));
        long.metadata.name = Some(format!("{}-.x", "a".repeat(61)));
        assert_eq!(sandbox_hostname(&long, "").unwrap(), "a".repeat(61));
        assert_eq!(
            sandbox_hostname(&pod(json!({"hostNetwork": true})), "").unwrap(),
            ""
        );
    }
}
