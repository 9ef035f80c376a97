//! The kubelet-managed `/etc/hosts` of a pod's containers, as upstream's
//! `makeHostsMount`: containerd only copies the node's `/etc/hosts` into
//! a sandbox, so the kubelet writes `<root-dir>/pods/<uid>/etc-hosts` and
//! bind-mounts it over `/etc/hosts` of every container (unless the
//! container mounts something there itself). A pod on the pod network
//! gets localhost entries, its IPs with its host name (and FQDN when it
//! has a subdomain) and `hostAliases`; a host-network pod the node's file
//! plus `hostAliases`.

use std::path::Path;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, HostAlias, Pod};

/// Where containers see the file.
pub const ETC_HOSTS: &str = "/etc/hosts";
/// The file's name in the pod directory.
pub const FILE_NAME: &str = "etc-hosts";
/// First line of a pod-network pod's file.
pub const MANAGED_HEADER: &str = "# Kubernetes-managed hosts file.\n";
/// First line of a host-network pod's file.
pub const MANAGED_HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";

fn aliases(host_aliases: &[HostAlias]) -> String {
    if host_aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for a in host_aliases {
        let names = a.hostnames.clone().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{names}\n", a.ip));
    }
    out
}

/// A pod-network pod's file (upstream's `managedHostsFileContent`).
pub fn managed_content(
    pod_ips: &[String],
    hostname: &str,
    domain: &str,
    host_aliases: &[HostAlias],
) -> String {
    let mut out = String::from(MANAGED_HEADER);
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in pod_ips {
        if domain.is_empty() {
            out.push_str(&format!("{ip}\t{hostname}\n"));
        } else {
            out.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n"));
        }
    }
    out.push_str(&aliases(host_aliases));
    out
}

/// A host-network pod's file: the node's, then `hostAliases`.
pub fn node_content(node_hosts: &str, host_aliases: &[HostAlias]) -> String {
    format!(
        "{MANAGED_HEADER_HOST_NETWORK}{node_hosts}{}",
        aliases(host_aliases)
    )
}

/// Whether container `c` gets the managed file: the pod has IPs (or uses
/// the node's network) and the container mounts nothing at `/etc/hosts`.
pub fn should_mount(pod: &Pod, c: &Container, pod_ips: &[String]) -> bool {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    (host_network || !pod_ips.is_empty())
        && !c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == ETC_HOSTS)
}

/// Writes the pod's file into `pod_dir` (rewritten at every container
/// start, as upstream) and returns its bind mount. `node_hosts` is the
/// node's `/etc/hosts` (read only for host-network pods).
pub fn ensure(
    pod_dir: &Path,
    pod: &Pod,
    pod_ips: &[String],
    hostname: &str,
    domain: &str,
    node_hosts: &Path,
) -> Result<cri::Mount, String> {
    let spec = pod.spec.as_ref();
    let host_aliases = spec
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    let content = if spec.and_then(|s| s.host_network).unwrap_or(false) {
        let node = std::fs::read_to_string(node_hosts)
            .map_err(|e| format!("open {}: {e}", node_hosts.display()))?;
        node_content(&node, &host_aliases)
    } else {
        managed_content(pod_ips, hostname, domain, &host_aliases)
    };
    std::fs::create_dir_all(pod_dir).map_err(|e| format!("mkdir {}: {e}", pod_dir.display()))?;
    let path = pod_dir.join(FILE_NAME);
    write_file(&path, &content)?;
    Ok(cri::Mount {
        container_path: ETC_HOSTS.into(),
        host_path: path.to_string_lossy().into_owned(),
        readonly: false,
        ..Default::default()
    })
}

/// Replaces the file's content in place (running containers have it
/// bind-mounted, so a rename would leave them the old inode), mode 0644.
fn write_file(path: &Path, content: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, content).map_err(|e| format!("write {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn managed_file_names_the_pod_and_its_aliases() {
        let aliases: Vec<HostAlias> = serde_json::from_value(json!([
            {"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]},
            {"ip": "10.1.2.4", "hostnames": ["baz"]}
        ]))
        .unwrap();
        let text = managed_content(
            &["10.244.0.5".into()],
            "db-0",
            "db.ns.svc.cluster.local",
            &aliases,
        );
        assert_eq!(
            text,
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.244.0.5\tdb-0.db.ns.svc.cluster.local\tdb-0\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n10.1.2.4\tbaz\n"
        );
        let plain = managed_content(&["10.244.0.5".into()], "web", "", &[]);
        assert!(plain.ends_with("fe00::2\tip6-allrouters\n10.244.0.5\tweb\n"));
    }

    #[test]
    fn host_network_pods_get_the_nodes_file_and_mounts_are_skipped_when_taken() {
        let dir = tempfile::tempdir().unwrap();
        let node_hosts = dir.path().join("hosts");
        std::fs::write(&node_hosts, "127.0.0.1\tnode\n").unwrap();
        let p = pod(
            json!({"hostNetwork": true, "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["x"]}],
            "containers": [{"name": "c"}]}),
        );
        let m = ensure(dir.path(), &p, &[], "", "", &node_hosts).unwrap();
        assert_eq!(m.container_path, "/etc/hosts");
        let text = std::fs::read_to_string(&m.host_path).unwrap();
        assert_eq!(
            text,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1\tnode\n\n# Entries added by HostAliases.\n1.2.3.4\tx\n"
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert!(should_mount(&p, c, &[]));
        let own: Container = serde_json::from_value(
            json!({"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/etc/hosts"}]}),
        )
        .unwrap();
        assert!(!should_mount(&p, &own, &[]));
        let no_ip = pod(json!({"containers": [{"name": "c"}]}));
        assert!(!should_mount(&no_ip, c, &[]));
    }
}
