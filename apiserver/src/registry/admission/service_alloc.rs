//! Service ClusterIPs and NodePorts, allocated as upstream's apiserver does:
//! from `--service-cluster-ip-range` and `--service-node-port-range`,
//! never twice, also across restarts and concurrent creates.
//!
//! Each allocation is one storage key (`<prefix>/ranges/serviceips/<ip>`,
//! `<prefix>/ranges/servicenodeports/<port>`) created only if absent, whose
//! value names the owning Service's uid; storage's create-if-absent is what
//! makes two concurrent creates never get the same address. A write that
//! allocated and then failed (validation, a lost race, dry run) gives back
//! what it took ([`Reservation::settle`]); a Service leaving storage gives
//! back what it held ([`release_held`]).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use bytes::Bytes;
use rand::Rng;
use serde_json::{Value, json};

use super::super::meta;
use super::super::store::Backend;
use super::{Attributes, Operation};
use crate::error::{ApiError, ApiResult, FieldError, Subject};
use crate::storage::StorageError;

/// Random probes for a free value before listing what is taken.
const PROBES: usize = 32;

/// The ranges Services are given addresses and ports from.
#[derive(Debug, Clone)]
pub struct ServiceRanges {
    network: u32,
    size: u64,
    cidr: String,
    node_ports: (u16, u16),
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges::parse("10.96.0.0/12", "30000-32767").unwrap_or(ServiceRanges {
            network: 0x0a60_0000,
            size: 1 << 20,
            cidr: "10.96.0.0/12".into(),
            node_ports: (30000, 32767),
        })
    }
}

impl ServiceRanges {
    /// Parses an IPv4 CIDR and a `low-high` port range (upstream's flags).
    pub fn parse(cidr: &str, ports: &str) -> Result<Self, String> {
        let (addr, bits) = cidr
            .split_once('/')
            .ok_or_else(|| format!("{cidr:?} is not a CIDR"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{cidr:?}: only IPv4 service ranges are supported"))?;
        let bits: u32 = bits
            .parse()
            .ok()
            .filter(|b| (8..=30).contains(b))
            .ok_or_else(|| format!("{cidr:?}: the prefix length must be 8 to 30"))?;
        let mask = u32::MAX << (32 - bits);
        let (low, high) = ports
            .split_once('-')
            .and_then(|(l, h)| Some((l.trim().parse::<u16>().ok()?, h.trim().parse::<u16>().ok()?)))
            .filter(|(l, h)| l <= h)
            .ok_or_else(|| format!("{ports:?} is not a port range like 30000-32767"))?;
        Ok(ServiceRanges {
            network: u32::from(addr) & mask,
            size: 1u64 << (32 - bits),
            cidr: cidr.to_string(),
            node_ports: (low, high),
        })
    }

    /// The usable addresses: not the network or broadcast address.
    fn ip_at(&self, offset: u64) -> Ipv4Addr {
        Ipv4Addr::from(self.network.wrapping_add(offset as u32))
    }

    fn offset_of(&self, ip: Ipv4Addr) -> Option<u64> {
        let offset = u64::from(u32::from(ip).wrapping_sub(self.network));
        (offset > 0 && offset + 1 < self.size).then_some(offset)
    }

    /// The address upstream reserves for the `kubernetes` Service.
    pub fn first_ip(&self) -> Ipv4Addr {
        self.ip_at(1)
    }
}

/// What one write took and what it will give back once stored.
#[derive(Debug, Default)]
pub struct Reservation {
    /// Keys this write created; released unless the write is stored.
    taken: Vec<String>,
    /// Keys of the old object no longer used; released once stored.
    freed: Vec<String>,
    /// The owner recorded in the keys.
    uid: String,
}

impl Reservation {
    /// Gives back what the write took (`stored` false) or what the old
    /// object held and the new one does not (`stored` true).
    pub async fn settle(self, backend: &Backend, stored: bool) {
        let keys = if stored { &self.freed } else { &self.taken };
        for key in keys {
            release(backend, key, &self.uid).await;
        }
    }
}

fn ip_key(backend: &Backend, ip: &str) -> String {
    format!("{}/ranges/serviceips/{ip}", backend.prefix)
}

fn port_key(backend: &Backend, port: i64) -> String {
    format!("{}/ranges/servicenodeports/{port}", backend.prefix)
}

/// Deletes an allocation key if `uid` still owns it.
async fn release(backend: &Backend, key: &str, uid: &str) {
    let Ok(kv) = backend.storage.get(key).await else {
        return;
    };
    let owner: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
    if owner["uid"] == uid
        && let Err(e) = backend.storage.delete(key, kv.mod_revision).await
        && !matches!(e, StorageError::NotFound)
    {
        tracing::warn!(key, error = %e, "releasing a service allocation");
    }
}

/// Why a specific value could not be claimed.
enum Refused {
    Taken,
    Storage(StorageError),
}

/// Creates `key` for `uid`; a key `uid` already owns counts as claimed.
async fn claim(backend: &Backend, key: &str, uid: &str, svc: &Value) -> Result<bool, Refused> {
    let owner = json!({"uid": uid, "namespace": meta::namespace(svc), "name": meta::name(svc)});
    match backend
        .storage
        .create(key, Bytes::from(owner.to_string()))
        .await
    {
        Ok(_) => Ok(true),
        Err(StorageError::AlreadyExists) => match backend.storage.get(key).await {
            Ok(kv) => {
                let held: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
                if held["uid"] == uid {
                    Ok(false)
                } else {
                    Err(Refused::Taken)
                }
            }
            Err(e) => Err(Refused::Storage(e)),
        },
        Err(e) => Err(Refused::Storage(e)),
    }
}

/// Claims a free value among `count` candidates (`key_of(i)`), probing at
/// random and then scanning what is taken.
async fn allocate(
    backend: &Backend,
    uid: &str,
    svc: &Value,
    count: u64,
    key_of: impl Fn(u64) -> String,
    list_prefix: &str,
) -> ApiResult<Option<u64>> {
    for _ in 0..PROBES {
        let i = rand::rng().random_range(0..count);
        match claim(backend, &key_of(i), uid, svc).await {
            Ok(_) => return Ok(Some(i)),
            Err(Refused::Taken) => continue,
            Err(Refused::Storage(e)) => return Err(ApiError::unavailable(e)),
        }
    }
    let taken: HashSet<String> = backend
        .storage
        .list(list_prefix, "", 0, 0)
        .await
        .map_err(ApiError::unavailable)?
        .items
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    let start = rand::rng().random_range(0..count);
    for step in 0..count {
        let i = (start + step) % count;
        let key = key_of(i);
        if taken.contains(&key) {
            continue;
        }
        match claim(backend, &key, uid, svc).await {
            Ok(_) => return Ok(Some(i)),
            Err(Refused::Taken) => continue,
            Err(Refused::Storage(e)) => return Err(ApiError::unavailable(e)),
        }
    }
    Ok(None)
}

fn invalid(svc: &Value, errs: Vec<FieldError>) -> ApiError {
    ApiError::invalid(
        "Service",
        Subject::new("", "services", meta::name(svc)),
        errs,
    )
}

fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn cluster_ip(svc: &Value) -> Option<String> {
    let spec = svc.get("spec")?;
    spec.get("clusterIP")
        .and_then(Value::as_str)
        .or_else(|| spec.pointer("/clusterIPs/0").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn needs_node_ports(svc: &Value) -> bool {
    matches!(service_type(svc), "NodePort" | "LoadBalancer")
}

fn node_ports(svc: &Value) -> Vec<i64> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .filter(|p| *p != 0)
        .collect()
}

fn set_ip(svc: &mut Value, ip: &str) {
    svc["spec"]["clusterIP"] = json!(ip);
    svc["spec"]["clusterIPs"] = json!([ip]);
    if ip != "None" || svc.pointer("/spec/selector").is_some() {
        meta::default_at(svc, &["spec", "ipFamilies"], json!(["IPv4"]));
        meta::default_at(svc, &["spec", "ipFamilyPolicy"], json!("SingleStack"));
    }
}

/// Gives a Service being created or updated its ClusterIP and NodePorts.
pub async fn admit(attrs: &Attributes<'_>, svc: &mut Value) -> ApiResult<Reservation> {
    let mut r = Reservation {
        uid: meta::meta_str(svc, "uid").to_string(),
        ..Reservation::default()
    };
    if !attrs.is("", "services") {
        return Ok(r);
    }
    let old = attrs.old.filter(|_| attrs.operation == Operation::Update);
    match assign_cluster_ip(attrs.backend, svc, old, &mut r).await {
        Ok(()) => {}
        Err(e) => {
            r.settle(attrs.backend, false).await;
            return Err(e);
        }
    }
    match assign_node_ports(attrs.backend, svc, old, &mut r).await {
        Ok(()) => Ok(r),
        Err(e) => {
            r.settle(attrs.backend, false).await;
            Err(e)
        }
    }
}

async fn assign_cluster_ip(
    backend: &Backend,
    svc: &mut Value,
    old: Option<&Value>,
    r: &mut Reservation,
) -> ApiResult<()> {
    let ranges = &backend.service_ranges;
    let old_ip = old
        .filter(|o| service_type(o) != "ExternalName")
        .and_then(cluster_ip);
    if service_type(svc) == "ExternalName" {
        if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        if let Some(ip) = old_ip.filter(|ip| ip != "None") {
            r.freed.push(ip_key(backend, &ip));
        }
        return Ok(());
    }
    let requested = cluster_ip(svc);
    let field = "spec.clusterIPs[0]";
    match (requested, old_ip) {
        (None, Some(old)) => set_ip(svc, &old),
        (Some(req), Some(old)) if req == old => set_ip(svc, &old),
        (Some(req), Some(_)) => {
            return Err(invalid(
                svc,
                vec![FieldError::invalid(
                    field,
                    &json!(req),
                    "may not change once set",
                )],
            ));
        }
        (Some(req), None) if req == "None" => set_ip(svc, "None"),
        (Some(req), None) => {
            let ip: Ipv4Addr = req.parse().map_err(|_| {
                invalid(
                    svc,
                    vec![FieldError::invalid(
                        field,
                        &json!(req),
                        "must be a valid IP address",
                    )],
                )
            })?;
            if ranges.offset_of(ip).is_none() {
                let why = format!(
                    "failed to allocate IP {req}: the provided IP ({req}) is not in the valid range. The range of valid IPs is {}",
                    ranges.cidr
                );
                return Err(invalid(
                    svc,
                    vec![FieldError::invalid("spec.clusterIPs", &json!([req]), &why)],
                ));
            }
            let key = ip_key(backend, &req);
            match claim(backend, &key, &r.uid, svc).await {
                Ok(true) => r.taken.push(key),
                Ok(false) => {}
                Err(Refused::Taken) => {
                    let why =
                        format!("failed to allocate IP {req}: provided IP is already allocated");
                    return Err(invalid(
                        svc,
                        vec![FieldError::invalid("spec.clusterIPs", &json!([req]), &why)],
                    ));
                }
                Err(Refused::Storage(e)) => return Err(ApiError::unavailable(e)),
            }
            set_ip(svc, &req);
        }
        (None, None) => {
            // Offsets 2.. (1 is the kubernetes Service's), not broadcast.
            let count = ranges.size.saturating_sub(3);
            let prefix = format!("{}/ranges/serviceips/", backend.prefix);
            let found = allocate(
                backend,
                &r.uid.clone(),
                svc,
                count,
                |i| ip_key(backend, &ranges.ip_at(i + 2).to_string()),
                &prefix,
            )
            .await?;
            let Some(i) = found else {
                return Err(ApiError::internal_visible(format!(
                    "failed to allocate a serviceIP: range is full ({})",
                    ranges.cidr
                )));
            };
            let ip = ranges.ip_at(i + 2).to_string();
            r.taken.push(ip_key(backend, &ip));
            set_ip(svc, &ip);
        }
    }
    Ok(())
}

async fn assign_node_ports(
    backend: &Backend,
    svc: &mut Value,
    old: Option<&Value>,
    r: &mut Reservation,
) -> ApiResult<()> {
    let (low, high) = backend.service_ranges.node_ports;
    let held: Vec<i64> = old
        .filter(|o| needs_node_ports(o))
        .map(node_ports)
        .unwrap_or_default();
    let needs = needs_node_ports(svc);
    let old_ports: Vec<Value> = old
        .and_then(|o| o.pointer("/spec/ports"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut kept: HashSet<i64> = HashSet::new();
    let count = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    let mut errs = Vec::new();
    for i in 0..count {
        let port = svc["spec"]["ports"][i].clone();
        let field = format!("spec.ports[{i}].nodePort");
        let given = port
            .get("nodePort")
            .and_then(Value::as_i64)
            .filter(|p| *p != 0);
        if !needs {
            match given {
                // A type change away from NodePort drops the old ports.
                Some(p) if held.contains(&p) || old.is_some_and(|o| node_ports(o).contains(&p)) => {
                    if let Some(m) = svc["spec"]["ports"][i].as_object_mut() {
                        m.remove("nodePort");
                    }
                }
                Some(p) => errs.push(FieldError::forbidden(
                    field,
                    &format!(
                        "may not be used when `type` is '{}' ({p})",
                        service_type(svc)
                    ),
                )),
                None => {}
            }
            continue;
        }
        let chosen = match given {
            Some(p) if held.contains(&p) && !kept.contains(&p) => p,
            Some(p) => {
                if p < i64::from(low) || p > i64::from(high) {
                    errs.push(FieldError::invalid(
                        field,
                        &json!(p),
                        &format!("provided port is not in the valid range. The range of valid ports is {low}-{high}"),
                    ));
                    continue;
                }
                let key = port_key(backend, p);
                match claim(backend, &key, &r.uid, svc).await {
                    Ok(true) => r.taken.push(key),
                    Ok(false) => {}
                    Err(Refused::Taken) => {
                        errs.push(FieldError::invalid(
                            field,
                            &json!(p),
                            "provided port is already allocated",
                        ));
                        continue;
                    }
                    Err(Refused::Storage(e)) => return Err(ApiError::unavailable(e)),
                }
                p
            }
            None => {
                // Keep what the same port had before, as upstream does.
                let same = old_ports.iter().find(|o| {
                    o.get("port") == port.get("port") && o.get("protocol") == port.get("protocol")
                });
                match same
                    .and_then(|o| o.get("nodePort").and_then(Value::as_i64))
                    .filter(|p| held.contains(p) && !kept.contains(p))
                {
                    Some(p) => p,
                    None => {
                        let prefix = format!("{}/ranges/servicenodeports/", backend.prefix);
                        let span = u64::from(high - low) + 1;
                        let found = allocate(
                            backend,
                            &r.uid.clone(),
                            svc,
                            span,
                            |k| port_key(backend, i64::from(low) + k as i64),
                            &prefix,
                        )
                        .await?;
                        let Some(k) = found else {
                            return Err(ApiError::internal_visible(format!(
                                "failed to allocate a nodePort: range is full ({low}-{high})"
                            )));
                        };
                        let p = i64::from(low) + k as i64;
                        r.taken.push(port_key(backend, p));
                        p
                    }
                }
            }
        };
        kept.insert(chosen);
        svc["spec"]["ports"][i]["nodePort"] = json!(chosen);
    }
    if !errs.is_empty() {
        return Err(invalid(svc, errs));
    }
    r.freed.extend(
        held.iter()
            .filter(|p| !kept.contains(p))
            .map(|p| port_key(backend, *p)),
    );
    Ok(())
}

/// Gives back what a Service held once it has left storage.
pub async fn release_held(backend: &Backend, svc: &Value) {
    let uid = meta::meta_str(svc, "uid");
    if let Some(ip) = cluster_ip(svc).filter(|ip| ip != "None") {
        release(backend, &ip_key(backend, &ip), uid).await;
    }
    for p in node_ports(svc) {
        release(backend, &port_key(backend, p), uid).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_exclude_network_and_broadcast() {
        let r = ServiceRanges::parse("10.96.0.0/12", "30000-32767").unwrap_or_default();
        assert_eq!(r.first_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(r.offset_of(Ipv4Addr::new(10, 96, 0, 10)), Some(10));
        assert_eq!(r.offset_of(Ipv4Addr::new(10, 96, 0, 0)), None);
        assert_eq!(r.offset_of(Ipv4Addr::new(10, 111, 255, 255)), None);
        assert_eq!(r.offset_of(Ipv4Addr::new(10, 112, 0, 1)), None);
        assert!(ServiceRanges::parse("fd00::/108", "30000-32767").is_err());
        assert!(ServiceRanges::parse("10.0.0.0/24", "32767-30000").is_err());
    }
}
