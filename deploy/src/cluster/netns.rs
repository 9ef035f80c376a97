//! The machine side of a multi-node cluster, with iproute2: a bridge on
//! the host holding the host's address of the node network, one network
//! namespace per node joined to it by a veth pair (`eth0` inside, with the
//! node's IP and a default route through the host), and host-gw routes: a
//! route to every node's pod CIDR through that node's IP, on the host and
//! in every other node. No overlay.
//!
//! Names derive from the cluster directory's token, so `delete` finds
//! everything even without the state file: bridge `cb<token>`, namespace
//! `capstan-<token>-<i>`, host-side veth `cv<token><i>` (at most 15
//! characters, as link names must be).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use super::layout::ClusterDir;
use super::network::ClusterNetwork;
use crate::runtime::containerd::dir_token;

/// Where `ip netns add` puts its namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The host bridge of cluster `dir`.
pub fn bridge(dir: &ClusterDir) -> String {
    format!("cb{}", dir_token(&dir.root))
}

/// The network namespace name of node `i`.
pub fn namespace(dir: &ClusterDir, i: usize) -> String {
    format!("{}{i}", namespace_prefix(dir))
}

/// The file of node `i`'s namespace, which processes enter.
pub fn namespace_path(dir: &ClusterDir, i: usize) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(namespace(dir, i))
}

fn namespace_prefix(dir: &ClusterDir) -> String {
    format!("capstan-{}-", dir_token(&dir.root))
}

/// The host end of node `i`'s veth pair.
pub fn host_veth(dir: &ClusterDir, i: usize) -> String {
    format!("cv{}{i:x}", dir_token(&dir.root))
}

/// Runs `ip` with `args`; fails with its stderr.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// True when link `name` exists in the host's namespace.
fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Makes the host bridge with the host's address; idempotent.
pub fn ensure_bridge(dir: &ClusterDir, net: &ClusterNetwork) -> anyhow::Result<()> {
    let br = bridge(dir);
    if !link_exists(&br) {
        ip(&["link", "add", &br, "type", "bridge"])?;
    }
    let (_, prefix) = net.node_subnet();
    let addr = format!("{}/{prefix}", net.host_ip());
    ip(&["addr", "replace", &addr, "dev", &br])?;
    ip(&["link", "set", &br, "up"])
}

/// Makes node `i`'s namespace, veth and addresses; idempotent. Inside:
/// forwarding on (pods are routed through it) and bridged pod traffic
/// through the IP hooks, so Service rules see pod-to-pod replies on the
/// same node.
pub fn ensure_node(dir: &ClusterDir, net: &ClusterNetwork, i: usize) -> anyhow::Result<()> {
    let ns = namespace(dir, i);
    if !namespace_path(dir, i).exists() {
        ip(&["netns", "add", &ns])?;
    }
    let veth = host_veth(dir, i);
    if !link_exists(&veth) {
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
    }
    ip(&["link", "set", &veth, "master", &bridge(dir), "up"])?;
    let (_, prefix) = net.node_subnet();
    let addr = format!("{}/{prefix}", net.node_ip(i));
    ip(&["-n", &ns, "addr", "replace", &addr, "dev", "eth0"])?;
    ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    let gateway = net.host_ip().to_string();
    ip(&["-n", &ns, "route", "replace", "default", "via", &gateway])?;
    for (key, value) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.bridge.bridge-nf-call-iptables", "1"),
    ] {
        sysctl_in(&ns, key, value)?;
    }
    Ok(())
}

/// Sets a sysctl inside namespace `ns`.
fn sysctl_in(ns: &str, key: &str, value: &str) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-q", "-w"])
        .arg(format!("{key}={value}"))
        .stdin(Stdio::null())
        .output()
        .context("running sysctl in the node's namespace")?;
    if !out.status.success() {
        bail!(
            "setting {key} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Routes every node's pod CIDR through that node's IP, on the host and
/// in every other node (`nodes` as (index, pod CIDR)); idempotent.
pub fn ensure_routes(
    dir: &ClusterDir,
    net: &ClusterNetwork,
    nodes: &[(usize, String)],
) -> anyhow::Result<()> {
    for (i, cidr) in nodes {
        let via = net.node_ip(*i).to_string();
        ip(&["route", "replace", cidr, "via", &via, "dev", &bridge(dir)])?;
        for (j, _) in nodes {
            if j != i {
                ip(&[
                    "-n",
                    &namespace(dir, *j),
                    "route",
                    "replace",
                    cidr,
                    "via",
                    &via,
                ])?;
            }
        }
    }
    Ok(())
}

/// The namespaces of cluster `dir` that exist, by name.
pub fn existing_namespaces(dir: &ClusterDir) -> Vec<String> {
    let prefix = namespace_prefix(dir);
    let mut found: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with(&prefix))
        .collect();
    found.sort();
    found
}

/// Removes every namespace of the cluster (their veths go with them) and
/// the bridge (its routes go with it). Best effort: reports what it could
/// not remove.
pub fn teardown(dir: &ClusterDir) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for ns in existing_namespaces(dir) {
        if let Err(e) = ip(&["netns", "delete", &ns]) {
            failures.push(format!("{e:#}"));
        }
    }
    let br = bridge(dir);
    if link_exists(&br)
        && let Err(e) = ip(&["link", "delete", &br])
    {
        failures.push(format!("{e:#}"));
    }
    if !failures.is_empty() {
        bail!("removing the cluster's network: {}", failures.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limits_and_are_per_cluster() {
        let home = tempfile::tempdir().unwrap();
        let a = ClusterDir::new(home.path(), "a").unwrap();
        let b = ClusterDir::new(home.path(), "b").unwrap();
        assert!(bridge(&a).len() <= 15);
        assert!(host_veth(&a, 15).len() <= 15);
        assert_ne!(bridge(&a), bridge(&b));
        assert_ne!(namespace(&a, 0), namespace(&a, 1));
        assert!(namespace(&a, 3).starts_with(&namespace_prefix(&a)));
        assert!(!namespace(&b, 0).starts_with(&namespace_prefix(&a)));
    }
}
