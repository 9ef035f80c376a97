//! Forwarding what the cluster zone does not answer to the nameservers
//! of a `resolv.conf` (CoreDNS's `forward . /etc/resolv.conf`): the
//! client's query bytes go unchanged to each upstream in turn, over the
//! transport the client used, and the first answer comes back.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream gets before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The nameservers of a resolv.conf text. Besides the standard
/// `nameserver <ip>` (port 53), `nameserver <ip>:<port>` and
/// `nameserver [<ipv6>]:<port>` are accepted, so tests and local setups
/// can point at an unprivileged port.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next()?.trim();
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            let addr = words.next()?;
            if let Ok(sa) = addr.parse::<SocketAddr>() {
                return Some(sa);
            }
            // A scoped IPv6 address (`fe80::1%eth0`) keeps its address part.
            let ip = addr.split('%').next()?.parse::<IpAddr>().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Reads the nameservers of the resolv.conf at `path`; having none is an
/// error (nothing outside the cluster could be answered).
pub fn read_resolv_conf(path: &Path) -> Result<Vec<SocketAddr>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading resolv.conf {}", path.display()))?;
    let servers = parse_resolv_conf(&text);
    if servers.is_empty() {
        bail!("{} names no nameserver", path.display());
    }
    Ok(servers)
}

/// Sends queries to a fixed list of upstream nameservers.
#[derive(Clone, Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
}

impl Forwarder {
    /// A forwarder to `upstreams`, tried in order.
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Forwarder { upstreams }
    }

    /// The upstreams, for logs.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The first upstream's answer to `query` (the client's raw message
    /// with id `id`), over TCP when `tcp` else UDP; `None` when none
    /// answered in time.
    pub async fn forward(&self, query: &[u8], id: u16, tcp: bool) -> Option<Message> {
        for upstream in &self.upstreams {
            let exchange = async {
                if tcp {
                    exchange_tcp(*upstream, query).await
                } else {
                    exchange_udp(*upstream, query, id).await
                }
            };
            match tokio::time::timeout(UPSTREAM_TIMEOUT, exchange).await {
                Ok(Ok(bytes)) => match Message::from_vec(&bytes) {
                    Ok(m) if m.metadata.id == id => return Some(m),
                    Ok(_) => tracing::debug!(%upstream, "upstream answered another id"),
                    Err(e) => tracing::debug!(%upstream, error = %e, "bad upstream answer"),
                },
                Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "upstream failed"),
                Err(_) => tracing::debug!(%upstream, "upstream timed out"),
            }
        }
        None
    }
}

async fn exchange_udp(upstream: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().map_err(std::io::Error::other)?
    } else {
        "[::]:0".parse().map_err(std::io::Error::other)?
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(upstream).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // Ignore stray datagrams that are not the answer to this query.
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn exchange_tcp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
    let mut conn = TcpStream::connect(upstream).await?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    conn.write_all(&framed).await?;
    let n = conn.read_u16().await?;
    let mut buf = vec![0u8; usize::from(n)];
    conn.read_exact(&mut buf).await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_with_and_without_ports() {
        let text = "# generated\nsearch default.svc.cluster.local svc.cluster.local\nnameserver 10.0.0.2\nnameserver 127.0.0.1:5353 # test\nnameserver [::1]:5300\nnameserver fe80::1%eth0\noptions ndots:5\nnameserver bogus\n";
        let got: Vec<String> = parse_resolv_conf(text)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "10.0.0.2:53",
                "127.0.0.1:5353",
                "[::1]:5300",
                "[fe80::1]:53"
            ]
        );
    }
}
