//! A pod's CRI sandbox config, as upstream's `generatePodSandboxConfig`:
//! identity metadata and labels, hostname, log directory, DNS from the
//! pod's `dnsPolicy` and `dnsConfig` ([`super::dns`]), host port mappings,
//! and the Linux namespaces (host network leaves the hostname empty, as
//! runc needs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Pod;

use super::dns;
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
    /// `--resolv-conf`: the node's resolver config, the base of pods'
    /// (empty: none, pods with host DNS use the node's loopback).
    pub host_resolv_conf: PathBuf,
    /// The node's IPs (loopback nameservers when `--resolv-conf` is empty).
    pub node_ips: Vec<String>,
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

/// DNS for the pod ([`super::dns::pod_dns`]) with the node's resolv.conf
/// read from `--resolv-conf`, and the Warning Events upstream records.
pub fn dns_config(
    pod: &Pod,
    s: &SandboxSettings,
) -> Result<(cri::DnsConfig, Vec<dns::Warning>), String> {
    let host = dns::host_resolv_conf(&s.host_resolv_conf)?;
    let settings = dns::DnsSettings {
        cluster_dns: &s.cluster_dns,
        cluster_domain: &s.cluster_domain,
        resolv_conf_set: !s.host_resolv_conf.as_os_str().is_empty(),
        node_ips: &s.node_ips,
    };
    Ok(dns::pod_dns(pod, &settings, host.as_ref()))
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

/// The sandbox config of `pod`, attempt `attempt`, and the Warning
/// Events forming its DNS config gave; an error (unreadable
/// `--resolv-conf`, an FQDN host name too long) keeps the sandbox from
/// being created, as upstream's `generatePodSandboxConfig`.
pub fn config(
    pod: &Pod,
    attempt: u32,
    s: &SandboxSettings,
) -> Result<(cri::PodSandboxConfig, Vec<dns::Warning>), String> {
    let hostname = dns::sandbox_hostname(pod, &s.cluster_domain)?;
    let (dns_config, warnings) = dns_config(pod, s)?;
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
    let config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.clone(),
            uid: uid.clone(),
            namespace: namespace.clone(),
            attempt,
        }),
        hostname,
        log_directory: log_directory(&s.pod_log_dir, pod)
            .to_string_lossy()
            .into_owned(),
        dns_config: Some(dns_config),
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
    };
    Ok((config, warnings))
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
            host_resolv_conf: "".into(),
            node_ips: vec!["10.0.0.1".into()],
        }
    }

    #[test]
    fn cluster_first_dns_and_identity() {
        let p = pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
        );
        let (c, _) = config(&p, 0, &settings()).unwrap();
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
        let (c, _) = config(&p, 1, &settings()).unwrap();
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
        // ClusterFirst on the host network falls back to the host's DNS
        // (with no --resolv-conf, the node's loopback).
        assert_eq!(c.dns_config.unwrap().servers, vec!["127.0.0.1"]);
    }

    #[test]
    fn an_unreadable_resolv_conf_fails_the_sandbox_config() {
        let s = SandboxSettings {
            host_resolv_conf: "/nonexistent/resolv.conf".into(),
            ..settings()
        };
        let p = pod(json!({"containers": [{"name": "c"}]}));
        let err = config(&p, 0, &s).unwrap_err();
        assert!(err.starts_with("open /nonexistent/resolv.conf"), "{err}");
    }
}
