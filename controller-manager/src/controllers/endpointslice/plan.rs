//! The pure decision of one Service sync: which EndpointSlices to create,
//! update and delete so that the desired endpoints (grouped by the port
//! set each pod resolves to) are published with as few writes as
//! possible, as upstream's reconciler does: existing slices keep the
//! endpoints they already hold (updated in place when an endpoint
//! changes), slices left empty are deleted, new endpoints fill slices that
//! are being written anyway before an untouched slice with room, and only
//! then go to new slices of at most `max` endpoints. A Service without
//! endpoints keeps one empty placeholder slice.

use std::collections::{BTreeMap, VecDeque};

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::controllers::service_pods::ResolvedPort;

/// What every slice of the Service must carry.
#[derive(Clone, Debug, Default)]
pub struct SliceMeta {
    /// The Service's namespace.
    pub namespace: String,
    /// `<service>-`.
    pub generate_name: String,
    /// Inherited labels plus the service-name and managed-by labels.
    pub labels: BTreeMap<String, String>,
    /// The controller reference to the Service.
    pub owner: OwnerReference,
    /// Annotations set on slices this sync writes.
    pub annotations: BTreeMap<String, String>,
}

/// Desired endpoints by the port set their pods resolve to.
pub type Desired = BTreeMap<Vec<ResolvedPort>, Vec<Endpoint>>;

/// The writes one sync makes.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices (named by `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Existing slices with their new content (carrying the
    /// resourceVersion read, so a stale read fails with a conflict).
    pub update: Vec<EndpointSlice>,
    /// Names of slices to delete.
    pub delete: Vec<String>,
}

impl Plan {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The port set key of an existing slice.
pub fn slice_ports(slice: &EndpointSlice) -> Vec<ResolvedPort> {
    let mut ports: Vec<ResolvedPort> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| ResolvedPort {
            name: p.name.clone().unwrap_or_default(),
            port: p.port.unwrap_or(0),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            app_protocol: p.app_protocol.clone(),
        })
        .collect();
    ports.sort();
    ports
}

/// The API form of a port set.
fn api_ports(ports: &[ResolvedPort]) -> Vec<EndpointPort> {
    ports
        .iter()
        .map(|p| EndpointPort {
            name: Some(p.name.clone()),
            port: Some(p.port),
            protocol: Some(p.protocol.clone()),
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

/// What identifies an endpoint across syncs: its pod, else its address.
fn endpoint_key(ep: &Endpoint) -> String {
    ep.target_ref
        .as_ref()
        .and_then(|r| r.uid.clone())
        .unwrap_or_else(|| ep.addresses.first().cloned().unwrap_or_default())
}

/// The slice carries the labels and controller reference it must.
fn meta_current(slice: &EndpointSlice, meta: &SliceMeta) -> bool {
    slice.metadata.labels.clone().unwrap_or_default() == meta.labels
        && slice
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == meta.owner.uid && r.controller == Some(true))
}

/// `slice` rewritten to carry `meta`'s labels, owner and annotations.
fn stamp(mut slice: EndpointSlice, meta: &SliceMeta) -> EndpointSlice {
    slice.metadata.labels = Some(meta.labels.clone());
    let mut owners: Vec<OwnerReference> = slice
        .metadata
        .owner_references
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != meta.owner.uid)
        .collect();
    owners.push(meta.owner.clone());
    slice.metadata.owner_references = Some(owners);
    if !meta.annotations.is_empty() {
        let mut annotations = slice.metadata.annotations.take().unwrap_or_default();
        annotations.extend(meta.annotations.clone());
        slice.metadata.annotations = Some(annotations);
    }
    slice
}

fn new_slice(
    meta: &SliceMeta,
    ports: Option<Vec<EndpointPort>>,
    eps: Vec<Endpoint>,
) -> EndpointSlice {
    stamp(
        EndpointSlice {
            metadata: ObjectMeta {
                generate_name: Some(meta.generate_name.clone()),
                namespace: Some(meta.namespace.clone()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps,
            ports,
        },
        meta,
    )
}

fn name(slice: &EndpointSlice) -> String {
    slice.metadata.name.clone().unwrap_or_default()
}

/// The writes that turn `existing` (the Service's managed slices) into
/// `desired`, with at most `max` endpoints per new or grown slice.
pub fn plan(meta: &SliceMeta, existing: &[EndpointSlice], desired: &Desired, max: usize) -> Plan {
    let max = max.max(1);
    let mut out = Plan::default();
    let mut existing: Vec<&EndpointSlice> = existing.iter().collect();
    existing.sort_by_key(|s| name(s));
    if desired.values().all(Vec::is_empty) {
        placeholder(meta, &existing, &mut out);
        return out;
    }
    let mut by_ports: BTreeMap<Vec<ResolvedPort>, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        by_ports.entry(slice_ports(slice)).or_default().push(slice);
    }
    for (ports, slices) in &by_ports {
        if desired.get(ports).is_none_or(Vec::is_empty) {
            out.delete.extend(slices.iter().map(|s| name(s)));
        }
    }
    for (ports, eps) in desired {
        if eps.is_empty() {
            continue;
        }
        let slices = by_ports.get(ports).cloned().unwrap_or_default();
        one_port_set(meta, ports, &slices, eps, max, &mut out);
    }
    out
}

/// Plans the slices of one port set.
fn one_port_set(
    meta: &SliceMeta,
    ports: &[ResolvedPort],
    slices: &[&EndpointSlice],
    eps: &[Endpoint],
    max: usize,
    out: &mut Plan,
) {
    let mut wanted: BTreeMap<String, &Endpoint> =
        eps.iter().map(|e| (endpoint_key(e), e)).collect();
    let mut changed: Vec<EndpointSlice> = Vec::new();
    let mut untouched: Vec<EndpointSlice> = Vec::new();
    for slice in slices {
        let mut kept = Vec::new();
        let mut differs = false;
        for ep in &slice.endpoints {
            match wanted.remove(&endpoint_key(ep)) {
                Some(want) => {
                    differs |= want != ep;
                    kept.push(want.clone());
                }
                None => differs = true,
            }
        }
        if kept.is_empty() {
            out.delete.push(name(slice));
            continue;
        }
        let mut slice = (*slice).clone();
        slice.endpoints = kept;
        if differs || !meta_current(&slice, meta) {
            changed.push(stamp(slice, meta));
        } else {
            untouched.push(slice);
        }
    }
    let mut rest: VecDeque<Endpoint> = eps
        .iter()
        .filter(|e| wanted.contains_key(&endpoint_key(e)))
        .cloned()
        .collect();
    for slice in &mut changed {
        while slice.endpoints.len() < max {
            let Some(ep) = rest.pop_front() else { break };
            slice.endpoints.push(ep);
        }
    }
    // Rather than a new slice, grow the fullest untouched slice the rest
    // fits into: one update instead of one create.
    if !rest.is_empty() && rest.len() < max {
        let fits = untouched
            .iter()
            .enumerate()
            .filter(|(_, s)| s.endpoints.len() + rest.len() <= max)
            .max_by_key(|(_, s)| s.endpoints.len())
            .map(|(i, _)| i);
        if let Some(i) = fits {
            let mut slice = untouched.swap_remove(i);
            slice.endpoints.extend(rest.drain(..));
            changed.push(stamp(slice, meta));
        }
    }
    while !rest.is_empty() {
        let n = rest.len().min(max);
        let chunk: Vec<Endpoint> = rest.drain(..n).collect();
        out.create
            .push(new_slice(meta, Some(api_ports(ports)), chunk));
    }
    out.update.extend(changed);
}

/// A Service with no endpoints keeps exactly one empty slice.
fn placeholder(meta: &SliceMeta, existing: &[&EndpointSlice], out: &mut Plan) {
    let keep = existing
        .iter()
        .position(|s| s.endpoints.is_empty() && s.ports.as_ref().is_none_or(Vec::is_empty))
        .or(if existing.is_empty() { None } else { Some(0) });
    match keep {
        None => out.create.push(new_slice(meta, None, Vec::new())),
        Some(i) => {
            let slice = existing[i];
            let is_placeholder =
                slice.endpoints.is_empty() && slice.ports.as_ref().is_none_or(Vec::is_empty);
            if !is_placeholder || !meta_current(slice, meta) {
                let mut s = slice.clone();
                s.endpoints = Vec::new();
                s.ports = None;
                out.update.push(stamp(s, meta));
            }
        }
    }
    for (i, slice) in existing.iter().enumerate() {
        if Some(i) != keep {
            out.delete.push(name(slice));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    fn ep(i: usize) -> Endpoint {
        Endpoint {
            addresses: vec![format!("10.0.{}.{}", i / 250, i % 250)],
            target_ref: Some(ObjectReference {
                uid: Some(format!("uid-{i}")),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn meta() -> SliceMeta {
        SliceMeta {
            namespace: "default".into(),
            generate_name: "web-".into(),
            labels: [("kubernetes.io/service-name".to_string(), "web".to_string())].into(),
            owner: OwnerReference {
                uid: "svc".into(),
                controller: Some(true),
                ..Default::default()
            },
            annotations: BTreeMap::new(),
        }
    }

    fn port(p: i32) -> Vec<ResolvedPort> {
        vec![ResolvedPort {
            name: "http".into(),
            port: p,
            protocol: "TCP".into(),
            app_protocol: None,
        }]
    }

    /// Applies a plan as the API would, naming created slices.
    fn apply(existing: Vec<EndpointSlice>, plan: Plan) -> Vec<EndpointSlice> {
        let mut out: Vec<EndpointSlice> = existing
            .into_iter()
            .filter(|s| !plan.delete.contains(&name(s)))
            .filter(|s| !plan.update.iter().any(|u| name(u) == name(s)))
            .collect();
        out.extend(plan.update);
        for (i, mut s) in plan.create.into_iter().enumerate() {
            s.metadata.name = Some(format!("web-{i}-{}", out.len()));
            out.push(s);
        }
        out
    }

    #[test]
    fn endpoints_are_packed_at_most_max_per_slice() {
        let desired: Desired = [(port(8080), (0..150).map(ep).collect())].into();
        let p = plan(&meta(), &[], &desired, 100);
        let sizes: Vec<usize> = p.create.iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, vec![100, 50]);
        assert!(p.create.iter().all(|s| {
            s.address_type == "IPv4"
                && s.metadata.generate_name.as_deref() == Some("web-")
                && s.ports
                    .as_ref()
                    .and_then(|p| p.first())
                    .and_then(|p| p.port)
                    == Some(8080)
        }));
    }

    #[test]
    fn an_unchanged_state_writes_nothing_and_one_change_one_slice() {
        let desired: Desired = [(port(8080), (0..150).map(ep).collect())].into();
        let slices = apply(Vec::new(), plan(&meta(), &[], &desired, 100));
        assert!(plan(&meta(), &slices, &desired, 100).is_empty());
        // One endpoint goes not-ready: only its slice is updated.
        let mut eps: Vec<Endpoint> = (0..150).map(ep).collect();
        eps[120].hostname = Some("changed".into());
        let desired: Desired = [(port(8080), eps)].into();
        let p = plan(&meta(), &slices, &desired, 100);
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.update.len(), 1);
        // Scaling down to 10 keeps one slice and deletes the other.
        let desired: Desired = [(port(8080), (0..10).map(ep).collect())].into();
        let p = plan(&meta(), &slices, &desired, 100);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 1));
        // Two new endpoints go into the slice with room, not a new one.
        let desired: Desired = [(port(8080), (0..152).map(ep).collect())].into();
        let p = plan(&meta(), &slices, &desired, 100);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        assert_eq!(p.update[0].endpoints.len(), 52);
    }

    #[test]
    fn port_sets_get_their_own_slices_and_empty_services_a_placeholder() {
        let desired: Desired = [(port(8080), vec![ep(1), ep(2)]), (port(9090), vec![ep(3)])].into();
        let slices = apply(Vec::new(), plan(&meta(), &[], &desired, 100));
        assert_eq!(slices.len(), 2);
        // The 9090 pod goes away: its slice is deleted.
        let desired: Desired = [(port(8080), vec![ep(1), ep(2)])].into();
        let p = plan(&meta(), &slices, &desired, 100);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 0, 1));
        // No endpoints at all: one slice is reused as the placeholder.
        let p = plan(&meta(), &slices, &Desired::new(), 100);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 1));
        assert!(p.update[0].endpoints.is_empty());
        let placeholder = apply(slices, p);
        assert!(plan(&meta(), &placeholder, &Desired::new(), 100).is_empty());
        assert_eq!(plan(&meta(), &[], &Desired::new(), 100).create.len(), 1);
    }
}
