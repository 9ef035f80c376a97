//! Ports: picking free loopback ones for a new cluster, and refusing to
//! start a component on one something else already holds, with an error
//! that says which.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use anyhow::{Context as _, bail};

/// `n` distinct ports nothing listens on right now (all listeners are held
/// until every port is picked, so they differ).
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .context("finding a free port on 127.0.0.1")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Fails with a clear message when `addr` (a port on the address a
/// component binds) is taken, naming the component that needs it and the
/// cluster.
pub fn ensure_free(addr: SocketAddr, component: &str, cluster: &str) -> anyhow::Result<()> {
    let (ip, port) = (addr.ip(), addr.port());
    match TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "port {port} on {ip}, which {component} of cluster {cluster:?} uses, is in use by another process; stop that process, or delete the cluster (`capstan delete cluster --name {cluster}`) and create it again to get new ports"
        ),
        Err(e) => Err(e).with_context(|| format!("checking port {port} on {ip} for {component}")),
    }
}

/// `port` on the host's loopback address.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_distinct_ports_and_spots_taken_ones() {
        let ports = free_ports(4).unwrap();
        let mut sorted = ports.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
        ensure_free(loopback(ports[0]), "etcd", "c").unwrap();
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let err = ensure_free(loopback(port), "etcd", "c")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("port {port}")), "{err}");
        assert!(err.contains("in use"), "{err}");
    }
}
