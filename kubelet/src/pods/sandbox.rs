//! A pod's CRI sandbox config, as upstream's `generatePodSandboxConfig`:
//! identity metadata and labels, hostname, log directory, DNS from the
//! pod's `dnsPolicy` and `dnsConfig`, host port mappings, and the Linux
//! namespaces (host network leaves the hostname empty, as runc needs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Pod;

use crate::cri::labels;

/// The node-wide settings sandboxes are made with.
#[derive(Debug, Clone, Default)]
pub struct SandboxSettings {
    /// Root of pod log directories (`/var/log/pods`).
    pub pod_log_dir: PathBuf,
    /// `--cluster-dns`.
    pub cluster_dns: Vec<String>,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// `--cgroup-root`.
    pub cgroup_parent: Option<String>,
    /// The host's resolver config (for dnsPolicy Default).
    pub host_resolv_conf: PathBuf,
}

/// `<root>/<namespace>_<name>_<uid>`, upstream's pod log directory.
pub fn log_directory(root: &Path, pod: &Pod) -> PathBuf {
    let m = &pod.metadata;
    root.join(format!(
        "{}_{}_{}",
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    ))
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The namespaces of the pod's sandbox and containers: network and IPC
/// per pod unless shared with the host, processes per container unless
/// `shareProcessNamespace` or `hostPID`.
pub fn namespace_options(pod: &Pod) -> cri::NamespaceOption {
    let spec = pod.spec.as_ref();
    let flag = |f: Option<bool>| f.unwrap_or(false);
    let node = cri::NamespaceMode::Node as i32;
    let pod_ns = cri::NamespaceMode::Pod as i32;
    cri::NamespaceOption {
        network: if host_network(pod) { node } else { pod_ns },
        ipc: if flag(spec.and_then(|s| s.host_ipc)) {
            node
        } else {
            pod_ns
        },
        pid: if flag(spec.and_then(|s| s.host_pid)) {
            node
        } else if flag(spec.and_then(|s| s.share_process_namespace)) {
            pod_ns
        } else {
            cri::NamespaceMode::Container as i32
        },
        ..Default::default()
    }
}

fn parse_resolv_conf(text: &str) -> cri::DnsConfig {
    let mut dns = cri::DnsConfig::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => {
                dns.searches = words.map(str::to_string).collect();
            }
            Some("options") => dns.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    dns
}

/// DNS for the pod, as upstream's `GetPodDNS`: ClusterFirst (when
/// `--cluster-dns` is set and the pod is not on the host network, unless
/// ClusterFirstWithHostNet) searches `<ns>.svc.<domain>`, `svc.<domain>`,
/// `<domain>` with `ndots:5`; Default copies the host; None uses only
/// `dnsConfig`, which is appended in every case.
pub fn dns_config(pod: &Pod, s: &SandboxSettings) -> cri::DnsConfig {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host =
        || parse_resolv_conf(&std::fs::read_to_string(&s.host_resolv_conf).unwrap_or_default());
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network(pod),
        _ => false,
    };
    let mut dns = match policy {
        "None" => cri::DnsConfig::default(),
        _ if cluster_first && !s.cluster_dns.is_empty() => {
            let d = &s.cluster_domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            searches.extend(host().searches);
            cri::DnsConfig {
                servers: s.cluster_dns.clone(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => host(),
    };
    if let Some(c) = spec.and_then(|s| s.dns_config.as_ref()) {
        dns.servers.extend(c.nameservers.iter().flatten().cloned());
        dns.searches.extend(c.searches.iter().flatten().cloned());
        for o in c.options.iter().flatten() {
            let opt = match &o.value {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            dns.options
                .retain(|x| x.split(':').next() != opt.split(':').next());
            dns.options.push(opt);
        }
    }
    dns
}

/// The hostPort mappings of every container port that asks for one.
pub fn port_mappings(pod: &Pod) -> Vec<cri::PortMapping> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) != 0)
        .map(|p| cri::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => cri::Protocol::Udp as i32,
                Some("SCTP") => cri::Protocol::Sctp as i32,
                _ => cri::Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect()
}

/// The pod's hostname: `spec.hostname` or the pod name (63 characters at
/// most), empty on the host network.
pub fn hostname(pod: &Pod) -> String {
    if host_network(pod) {
        return String::new();
    }
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// The sandbox config of `pod`, attempt `attempt`.
pub fn config(pod: &Pod, attempt: u32, s: &SandboxSettings) -> cri::PodSandboxConfig {
    let m = &pod.metadata;
    let name = m.name.clone().unwrap_or_default();
    let namespace = m.namespace.clone().unwrap_or_else(|| "default".into());
    let uid = m.uid.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let sc = spec.and_then(|s| s.security_context.as_ref());
    let mut annotations: HashMap<String, String> = m
        .annotations
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert("kubernetes.io/config.source".into(), "api".into());
    let sysctls = sc
        .and_then(|c| c.sysctls.as_ref())
        .map(|l| {
            l.iter()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.clone(),
            uid: uid.clone(),
            namespace: namespace.clone(),
            attempt,
        }),
        hostname: hostname(pod),
        log_directory: log_directory(&s.pod_log_dir, pod)
            .to_string_lossy()
            .into_owned(),
        dns_config: Some(dns_config(pod, s)),
        port_mappings: port_mappings(pod),
        labels: labels::sandbox(
            &m.labels.clone().unwrap_or_default(),
            &name,
            &namespace,
            &uid,
        ),
        annotations,
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: s.cgroup_parent.clone().unwrap_or_default(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: sc
                    .and_then(|c| c.run_as_user)
                    .map(|value| cri::Int64Value { value }),
                run_as_group: sc
                    .and_then(|c| c.run_as_group)
                    .map(|value| cri::Int64Value { value }),
                supplemental_groups: sc
                    .and_then(|c| c.supplemental_groups.clone())
                    .unwrap_or_default(),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "w"}},
            "spec": spec,
        }))
        .unwrap()
    }

    fn settings() -> SandboxSettings {
        SandboxSettings {
            pod_log_dir: "/var/log/pods".into(),
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
            cgroup_parent: None,
            host_resolv_conf: "/nonexistent".into(),
        }
    }

    #[test]
    fn cluster_first_dns_and_identity() {
        let p = pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
        );
        let c = config(&p, 0, &settings());
        assert_eq!(c.log_directory, "/var/log/pods/ns_web_u1");
        assert_eq!(c.hostname, "web");
        assert_eq!(c.labels[labels::POD_UID], "u1");
        assert_eq!(c.labels["app"], "w");
        let dns = c.dns_config.unwrap();
        assert_eq!(dns.servers, vec!["10.96.0.10"]);
        assert_eq!(dns.searches[0], "ns.svc.cluster.local");
        assert_eq!(dns.options, vec!["ndots:5"]);
        assert_eq!(c.port_mappings[0].host_port, 8080);
    }

    #[test]
    fn host_network_has_no_hostname_and_node_namespace() {
        let p = pod(json!({"hostNetwork": true, "containers": [{"name": "c"}]}));
        let c = config(&p, 1, &settings());
        assert_eq!(c.hostname, "");
        let ns = c
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
        assert_eq!(ns.pid, cri::NamespaceMode::Container as i32);
        // ClusterFirst on the host network falls back to the host's DNS.
        assert!(c.dns_config.unwrap().servers.is_empty());
    }
}
