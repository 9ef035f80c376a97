//! The DNS request handler: each question is answered from the current
//! [`Zone`](crate::zone::Zone) when it is the cluster's, forwarded
//! otherwise, and counted in CoreDNS-named metrics.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_proto::rr::{Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::forward::Forwarder;
use crate::zone::{Answer, Zone, in_domain};

/// The zone being served; `None` until the caches have synced (in-zone
/// questions then get SERVFAIL rather than a cacheable NXDOMAIN).
pub type SharedZone = Arc<RwLock<Option<Arc<Zone>>>>;

/// The query metrics, named as CoreDNS names them so dashboards carry
/// over.
#[derive(Clone)]
pub struct Metrics {
    /// Where they are registered (rendered on `/metrics`).
    pub registry: Registry,
    requests: IntCounterVec,
    responses: IntCounterVec,
    duration: HistogramVec,
}

impl Metrics {
    /// Registers `coredns_dns_requests_total`,
    /// `coredns_dns_responses_total` and
    /// `coredns_dns_request_duration_seconds`.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "coredns_dns_requests_total",
                "Counter of DNS requests made per zone, protocol and family.",
            ),
            &["server", "zone", "proto", "family", "type"],
        )?;
        let responses = IntCounterVec::new(
            Opts::new(
                "coredns_dns_responses_total",
                "Counter of response status codes.",
            ),
            &["server", "zone", "rcode"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "coredns_dns_request_duration_seconds",
                "Histogram of the time (in seconds) each request took per zone.",
            )
            .buckets(prometheus::exponential_buckets(0.00025, 2.0, 16)?),
            &["server", "zone", "type"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(responses.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            responses,
            duration,
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let enc = prometheus::TextEncoder::new();
        if enc.encode_utf8(&self.registry.gather(), &mut out).is_err() {
            out.clear();
        }
        out
    }
}

/// Answers DNS requests from the zone or the upstreams.
pub struct Handler {
    zone: SharedZone,
    forwarder: Forwarder,
    metrics: Metrics,
    server: String,
    domain: String,
}

impl Handler {
    /// A handler for the cluster domain `domain`, served at `listen`.
    pub fn new(
        zone: SharedZone,
        forwarder: Forwarder,
        metrics: Metrics,
        listen: SocketAddr,
        domain: &str,
    ) -> Self {
        Handler {
            zone,
            forwarder,
            metrics,
            server: format!("dns://{listen}"),
            domain: crate::zone::domain_fqdn(domain),
        }
    }

    fn current_zone(&self) -> Option<Arc<Zone>> {
        match self.zone.read() {
            Ok(z) => z.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn type_label(t: RecordType) -> &'static str {
    match t {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::SRV => "SRV",
        RecordType::PTR => "PTR",
        RecordType::CNAME => "CNAME",
        RecordType::TXT => "TXT",
        RecordType::SOA => "SOA",
        RecordType::NS => "NS",
        RecordType::MX => "MX",
        RecordType::ANY => "ANY",
        _ => "other",
    }
}

fn rcode_label(r: ResponseCode) -> String {
    match r {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        other => u16::from(other).to_string(),
    }
}

/// What to send: the header fields and the sections.
struct Reply {
    rcode: ResponseCode,
    authoritative: bool,
    truncated: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    soa: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn error(rcode: ResponseCode) -> Self {
        Reply {
            rcode,
            authoritative: false,
            truncated: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            soa: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn forwarded(m: Message) -> Self {
        Reply {
            rcode: m.metadata.response_code,
            authoritative: m.metadata.authoritative,
            truncated: m.metadata.truncation,
            answers: m.answers,
            authorities: m.authorities,
            soa: Vec::new(),
            additionals: m.additionals,
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let start = Instant::now();
        let proto = match request.protocol() {
            Protocol::Tcp => "tcp",
            _ => "udp",
        };
        let family = if request.src().is_ipv4() { "1" } else { "2" };
        let queries = request.queries.queries();
        let (zone_label, qtype, reply) = if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            (
                ".".to_string(),
                RecordType::Unknown(0),
                Reply::error(ResponseCode::NotImp),
            )
        } else if queries.len() != 1 {
            (
                ".".to_string(),
                RecordType::Unknown(0),
                Reply::error(ResponseCode::FormErr),
            )
        } else {
            let q = &queries[0];
            let qname = q.name().to_string();
            let qtype = q.query_type();
            let zone = self.current_zone();
            let answer = match &zone {
                Some(z) => z.answer(&qname, qtype),
                None => Answer::Forward,
            };
            match answer {
                Answer::Authoritative {
                    rcode,
                    answers,
                    soa,
                    additionals,
                } => (
                    self.domain.clone(),
                    qtype,
                    Reply {
                        rcode,
                        authoritative: true,
                        truncated: false,
                        answers,
                        authorities: Vec::new(),
                        soa: soa.map(|s| *s).into_iter().collect(),
                        additionals,
                    },
                ),
                // Not synced yet: the cluster's names wait (SERVFAIL is
                // retried, a premature NXDOMAIN would be cached).
                Answer::Forward if in_domain(&self.domain, &qname) => (
                    self.domain.clone(),
                    qtype,
                    Reply::error(ResponseCode::ServFail),
                ),
                Answer::Forward => {
                    let tcp = request.protocol() == Protocol::Tcp;
                    let reply = match self
                        .forwarder
                        .forward(request.as_slice(), request.metadata.id, tcp)
                        .await
                    {
                        Some(m) => Reply::forwarded(m),
                        None => Reply::error(ResponseCode::ServFail),
                    };
                    (".".to_string(), qtype, reply)
                }
            }
        };

        let resp_edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e.set_version(0);
            e
        });
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(e) = resp_edns.as_ref() {
            builder.edns(e);
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = reply.rcode;
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = true;
        metadata.truncation = reply.truncated;
        let response = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            reply.soa.iter(),
            reply.additionals.iter(),
        );
        let info = match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "sending a DNS response failed");
                let mut failed = Metadata::response_from_request(&request.metadata);
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: failed,
                    counts: HeaderCounts::default(),
                })
            }
        };
        let t = type_label(qtype);
        self.metrics
            .requests
            .with_label_values(&[self.server.as_str(), &zone_label, proto, family, t])
            .inc();
        self.metrics
            .responses
            .with_label_values(&[self.server.as_str(), &zone_label, &rcode_label(reply.rcode)])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[self.server.as_str(), &zone_label, t])
            .observe(start.elapsed().as_secs_f64());
        info
    }
}
