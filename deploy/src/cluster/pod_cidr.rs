//! Choosing a cluster's pod CIDR: a `/24` of [`POOL`] that no other
//! cluster under the same `$CAPSTAN_HOME` has and that no route of the
//! host overlaps (another home's cluster whose bridge is up, a test node, a
//! VPN), so two clusters' bridges never claim the same addresses. The
//! search starts at an index derived from the cluster's directory, so
//! clusters of different homes created at once rarely try the same one.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use anyhow::bail;

use super::layout::{self, ClusterDir};
use super::state::ClusterState;
use crate::runtime::containerd::dir_token;

/// The first two octets of every cluster's pod CIDR (`10.150.N.0/24`);
/// away from kind's 10.244/16, containerd's 10.88/16 and the test nodes'
/// 10.200-249.
pub const POOL: [u8; 2] = [10, 150];

/// The `/24` for cluster `dir`: see the module docs.
pub fn pick(dir: &ClusterDir) -> anyhow::Result<String> {
    let taken = taken_by_other_clusters(dir);
    let routes = std::fs::read_to_string("/proc/net/route")
        .map(|t| parse_routes(&t))
        .unwrap_or_default();
    let start = u32::from_str_radix(&dir_token(&dir.root), 16).unwrap_or(0) % 256;
    for i in 0..256 {
        let n = ((start + i) % 256) as u8;
        let net = Ipv4Addr::new(POOL[0], POOL[1], n, 0);
        let cidr = format!("{net}/24");
        if taken.contains(&cidr) || routes.iter().any(|r| overlaps(*r, (net, 24))) {
            continue;
        }
        return Ok(cidr);
    }
    bail!(
        "no free pod CIDR left in {}.{}.0.0/16 (every /24 is used by a cluster or a route); delete a cluster",
        POOL[0],
        POOL[1]
    )
}

/// The pod CIDRs recorded by the other clusters of the same home.
fn taken_by_other_clusters(dir: &ClusterDir) -> HashSet<String> {
    let Some(home) = dir.root.parent().and_then(|clusters| clusters.parent()) else {
        return HashSet::new();
    };
    layout::list_clusters(home)
        .unwrap_or_default()
        .into_iter()
        .filter(|name| *name != dir.name)
        .filter_map(|name| ClusterDir::new(home, &name).ok())
        .filter_map(|other| ClusterState::load(&other).ok().flatten())
        .filter_map(|state| state.node.map(|n| n.pod_cidr))
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
    fn skips_cidrs_of_other_clusters() {
        let home = tempfile::tempdir().unwrap();
        let a = ClusterDir::new(home.path(), "a").unwrap();
        let first = pick(&a).unwrap();
        let b = ClusterDir::new(home.path(), "b").unwrap();
        std::fs::create_dir_all(&b.root).unwrap();
        ClusterState {
            name: "b".into(),
            ports: crate::cluster::state::Ports::pick().unwrap(),
            kubeconfigs: vec![],
            node: Some(crate::cluster::state::NodeState {
                pod_cidr: first.clone(),
                kubelet_port: 1,
            }),
        }
        .save(&b)
        .unwrap();
        let second = pick(&a).unwrap();
        assert_ne!(first, second);
        assert!(second.starts_with("10.150.") && second.ends_with(".0/24"));
    }
}
