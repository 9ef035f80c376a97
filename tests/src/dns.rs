//! DNS for the tests and the DNS benchmark: queries through a real DNS
//! client (hickory's, over UDP or TCP to a loopback port), a plain HTTP
//! GET for `capstan-dns`'s health port, and [`StaticDns`], a minimal
//! hickory server with one static record that plays the upstream
//! resolver in tests and the "do nothing" limit in the benchmark.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hickory_proto::op::{Header, HeaderCounts, Message, Metadata, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::net::client::{Client, ClientHandle};
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::net::tcp::TcpClientStream;
use hickory_server::net::udp::UdpClientStream;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one query may take before the client gives up.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks `server` for `name`/`rtype` over UDP; the whole response.
pub async fn query(server: SocketAddr, name: &str, rtype: RecordType) -> Result<Message> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(QUERY_TIMEOUT))
        .build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
    let bg = tokio::spawn(bg);
    let r = client
        .query(Name::from_ascii(name)?, DNSClass::IN, rtype)
        .await
        .with_context(|| format!("querying {name} {rtype} at {server}"));
    bg.abort();
    Ok(r?.into_message())
}

/// Like [`query`], over TCP.
pub async fn query_tcp(server: SocketAddr, name: &str, rtype: RecordType) -> Result<Message> {
    let (connect, handle) = TcpClientStream::new(
        server,
        None,
        Some(QUERY_TIMEOUT),
        TokioRuntimeProvider::default(),
    );
    let stream = connect.await?;
    let (mut client, bg) =
        Client::<TokioRuntimeProvider>::with_timeout(stream, handle, QUERY_TIMEOUT);
    let bg = tokio::spawn(bg);
    let r = client
        .query(Name::from_ascii(name)?, DNSClass::IN, rtype)
        .await
        .with_context(|| format!("querying {name} {rtype} at {server} over TCP"));
    bg.abort();
    Ok(r?.into_message())
}

/// The answer section's data, as text (`10.0.0.1`, `0 100 80 a.b.`),
/// sorted, for comparisons.
pub fn rdata(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

/// A plain HTTP GET on loopback; the status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    conn.read_to_string(&mut text).await?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

struct StaticHandler {
    name: String,
    record: Record,
}

#[async_trait::async_trait]
impl RequestHandler for StaticHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let hit =
            request.queries.queries().first().is_some_and(|q| {
                q.name().to_string() == self.name && q.query_type() == RecordType::A
            });
        metadata.authoritative = true;
        if !hit {
            metadata.response_code = ResponseCode::NXDomain;
        }
        let answers: &[Record] = if hit {
            std::slice::from_ref(&self.record)
        } else {
            &[]
        };
        let response = MessageResponseBuilder::new(&request.queries, None).build(
            metadata,
            answers.iter(),
            [].iter(),
            [].iter(),
            [].iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => ResponseInfo::from(Header {
                metadata: Metadata::response_from_request(&request.metadata),
                counts: HeaderCounts::default(),
            }),
        }
    }
}

/// A hickory DNS server on loopback (UDP and TCP, one port) answering one
/// A record and NXDOMAIN for everything else; stopped on drop.
pub struct StaticDns {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl StaticDns {
    /// Serves `name` (an FQDN, lower case, final dot) → `ip` on a free
    /// loopback port, on the current tokio runtime.
    pub async fn start(name: &str, ip: Ipv4Addr) -> Result<Self> {
        if !name.ends_with('.') {
            bail!("{name} is not a fully qualified name");
        }
        let record = Record::from_rdata(Name::from_ascii(name)?, 30, RData::A(A(ip)));
        let handler = StaticHandler {
            name: name.to_string(),
            record,
        };
        let port = crate::fixture::free_port()?;
        let udp = tokio::net::UdpSocket::bind(("127.0.0.1", port)).await?;
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let mut server = hickory_server::Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(10), 64);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        Ok(StaticDns {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            task,
        })
    }
}

impl Drop for StaticDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}
