//! A cluster's addresses, chosen once at creation and kept in its state:
//! the node network `10.151.N.0/24` on a bridge of the host (the host is
//! `.1`, where the apiserver listens; node `i` is `.(i+2)`) and the
//! cluster CIDR `10.(160+N/16).(16·(N%16)).0/20` that node IPAM carves into
//! one `/24` per node. `N` is the cluster's network index: one that no
//! other cluster under the same `$CAPSTAN_HOME` has and whose networks no
//! route of the host overlaps (another home's cluster, a test node, a
//! VPN). The search starts at an index derived from the cluster's
//! directory, so clusters of different homes created at once rarely try
//! the same one.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::layout::{self, ClusterDir};
use super::state::ClusterState;
use crate::runtime::containerd::dir_token;

/// The first two octets of every cluster's node network.
const NODE_POOL: [u8; 2] = [10, 151];
/// The second octet where cluster CIDRs start (`10.160.0.0/12` in all).
const CLUSTER_CIDR_BASE: u8 = 160;
/// Prefix length of a cluster CIDR: 16 node `/24`s.
const CLUSTER_CIDR_PREFIX: u8 = 20;
/// Prefix length of each node's pod CIDR (`--node-cidr-mask-size`).
pub const NODE_CIDR_MASK: u8 = 24;
/// Most nodes a cluster may have: the `/24`s of its cluster CIDR.
pub const MAX_NODES: usize = 1 << (NODE_CIDR_MASK - CLUSTER_CIDR_PREFIX);
/// The Service range of every cluster (the apiserver's default); it only
/// exists inside the nodes' network namespaces, so clusters never clash.
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// The `kubernetes` Service's address: the Service range's first.
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";
/// The cluster DNS Service's address (`--cluster-dns`), kubeadm's choice.
pub const CLUSTER_DNS: &str = "10.96.0.10";
/// The cluster's DNS domain (`--cluster-domain`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// One cluster's networks; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNetwork {
    /// The cluster's network index `N`.
    pub index: u8,
}

impl ClusterNetwork {
    /// The node network as (address, prefix).
    pub fn node_subnet(&self) -> (Ipv4Addr, u8) {
        (Ipv4Addr::new(NODE_POOL[0], NODE_POOL[1], self.index, 0), 24)
    }

    /// The host's address on the cluster bridge: the node's default
    /// gateway and where the control plane listens.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(NODE_POOL[0], NODE_POOL[1], self.index, 1)
    }

    /// The InternalIP of node `i` (0 is the control-plane node).
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        // `i` < MAX_NODES, checked where nodes are counted.
        Ipv4Addr::new(NODE_POOL[0], NODE_POOL[1], self.index, (i as u8) + 2)
    }

    /// The cluster CIDR (`--cluster-cidr`) as (address, prefix).
    pub fn cluster_cidr(&self) -> (Ipv4Addr, u8) {
        let second = CLUSTER_CIDR_BASE + self.index / 16;
        let third = (self.index % 16) * 16;
        (Ipv4Addr::new(10, second, third, 0), CLUSTER_CIDR_PREFIX)
    }

    /// [`ClusterNetwork::cluster_cidr`] as text.
    pub fn cluster_cidr_text(&self) -> String {
        let (net, prefix) = self.cluster_cidr();
        format!("{net}/{prefix}")
    }
}

/// Checks a requested node count before anything is created.
pub fn check_node_count(nodes: usize) -> anyhow::Result<()> {
    if nodes == 0 || nodes > MAX_NODES {
        bail!("--nodes must be between 1 and {MAX_NODES}, not {nodes}");
    }
    Ok(())
}

/// The network for cluster `dir`: see the module docs.
pub fn pick(dir: &ClusterDir) -> anyhow::Result<ClusterNetwork> {
    let taken = taken_by_other_clusters(dir);
    let routes = std::fs::read_to_string("/proc/net/route")
        .map(|t| parse_routes(&t))
        .unwrap_or_default();
    let start = u32::from_str_radix(&dir_token(&dir.root), 16).unwrap_or(0) % 256;
    for i in 0..256 {
        let index = ((start + i) % 256) as u8;
        let net = ClusterNetwork { index };
        if taken.contains(&index) {
            continue;
        }
        let used = routes
            .iter()
            .any(|r| overlaps(*r, net.node_subnet()) || overlaps(*r, net.cluster_cidr()));
        if !used {
            return Ok(net);
        }
    }
    bail!(
        "no free cluster network left (every 10.{}.N.0/24 is used by a cluster or a route); delete a cluster",
        NODE_POOL[1]
    )
}

/// The network indexes recorded by the other clusters of the same home.
fn taken_by_other_clusters(dir: &ClusterDir) -> HashSet<u8> {
    let Some(home) = dir.root.parent().and_then(|clusters| clusters.parent()) else {
        return HashSet::new();
    };
    layout::list_clusters(home)
        .unwrap_or_default()
        .into_iter()
        .filter(|name| *name != dir.name)
        .filter_map(|name| ClusterDir::new(home, &name).ok())
        .filter_map(|other| ClusterState::load(&other).ok().flatten())
        .filter_map(|state| state.network.map(|n| n.index))
        .collect()
}

/// The destinations of `/proc/net/route` (network and prefix length),
/// without default routes, which overlap everything.
fn parse_routes(text: &str) -> Vec<(Ipv4Addr, u8)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(fields.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?;
            // The kernel prints the network-order bytes as a native u32.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let prefix = mask.count_ones() as u8;
            (prefix > 0).then_some((dest, prefix))
        })
        .collect()
}

/// True when two networks share an address.
fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let prefix = a.1.min(b.1);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    u32::from(a.0) & mask == u32::from(b.0) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel_route_table() {
        let table = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
cni0\t0096960A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0";
        assert_eq!(
            parse_routes(table),
            vec![
                (Ipv4Addr::new(10, 150, 150, 0), 24),
                (Ipv4Addr::new(10, 0, 0, 0), 16)
            ]
        );
    }

    #[test]
    fn overlap_uses_the_shorter_prefix() {
        let net = |c: u8| (Ipv4Addr::new(10, 150, c, 0), 24);
        assert!(overlaps(net(3), net(3)));
        assert!(!overlaps(net(3), net(4)));
        assert!(overlaps((Ipv4Addr::new(10, 150, 0, 0), 16), net(9)));
        assert!(!overlaps((Ipv4Addr::new(10, 151, 0, 0), 16), net(9)));
    }

    #[test]
    fn networks_of_different_indexes_never_overlap() {
        let a = ClusterNetwork { index: 15 };
        let b = ClusterNetwork { index: 16 };
        assert_eq!(a.cluster_cidr_text(), "10.160.240.0/20");
        assert_eq!(b.cluster_cidr_text(), "10.161.0.0/20");
        assert!(!overlaps(a.cluster_cidr(), b.cluster_cidr()));
        assert!(!overlaps(a.node_subnet(), b.node_subnet()));
        assert!(!overlaps(a.node_subnet(), a.cluster_cidr()));
        assert_eq!(a.host_ip(), Ipv4Addr::new(10, 151, 15, 1));
        assert_eq!(a.node_ip(2), Ipv4Addr::new(10, 151, 15, 4));
        assert_eq!(MAX_NODES, 16);
        assert!(check_node_count(0).is_err());
        assert!(check_node_count(17).is_err());
        check_node_count(3).unwrap();
    }

    #[test]
    fn skips_networks_of_other_clusters() {
        let home = tempfile::tempdir().unwrap();
        let a = ClusterDir::new(home.path(), "a").unwrap();
        let first = pick(&a).unwrap();
        let b = ClusterDir::new(home.path(), "b").unwrap();
        std::fs::create_dir_all(&b.root).unwrap();
        ClusterState {
            name: "b".into(),
            ports: crate::cluster::state::Ports::pick().unwrap(),
            kubeconfigs: vec![],
            network: Some(first),
            nodes: vec![],
        }
        .save(&b)
        .unwrap();
        let second = pick(&a).unwrap();
        assert_ne!(first, second);
    }
}
