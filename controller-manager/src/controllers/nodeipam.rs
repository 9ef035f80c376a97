//! The node IPAM controller (upstream's `nodeipam` with the range
//! allocator): with `--allocate-node-cidrs`, every Node without
//! `spec.podCIDR` gets the next free `--node-cidr-mask-size` block of
//! `--cluster-cidr` (the kubelet hands it to the runtime for pod IPs).
//! Blocks already held by Nodes are learned from the cache before any is
//! handed out, so a restarted controller never gives one out twice; a
//! deleted Node's block is free again. Nodes whose block lies outside the
//! range keep it. When the range is full the Node gets upstream's
//! `CIDRNotAvailable` event and is retried.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde_json::json;

use crate::informer;
use crate::metrics::Metrics;
use crate::recorder::EventSink;
use crate::runner::{Outcome, Runner};

/// The controller's name, as upstream's `--controllers` spells it.
pub const NAME: &str = "nodeipam";

/// How soon a Node is looked at again when the range is full.
const FULL_RETRY: Duration = Duration::from_secs(30);

/// The blocks of one IPv4 range, which of them are taken.
#[derive(Debug, Clone)]
pub struct CidrSet {
    network: u32,
    prefix: u8,
    mask: u8,
    used: BTreeSet<u32>,
}

fn parse_cidr(cidr: &str) -> Result<(u32, u8)> {
    let (addr, bits) = cidr
        .split_once('/')
        .with_context(|| format!("{cidr:?} is not a CIDR"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .with_context(|| format!("{cidr:?}: only IPv4 cluster CIDRs are supported"))?;
    let bits: u8 = bits
        .parse()
        .ok()
        .filter(|b| *b <= 32)
        .with_context(|| format!("{cidr:?}: bad prefix length"))?;
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Ok((u32::from(addr) & mask, bits))
}

impl CidrSet {
    /// The `/mask` blocks of `cluster_cidr`; the mask must be at least
    /// as long as the range's prefix (and at most 16 bits longer, as
    /// upstream limits the set's size).
    pub fn new(cluster_cidr: &str, mask: u8) -> Result<Self> {
        let (network, prefix) = parse_cidr(cluster_cidr)?;
        if mask < prefix || mask > 32 {
            bail!(
                "--node-cidr-mask-size {mask} must be between the cluster CIDR's prefix ({prefix}) and 32"
            );
        }
        if mask - prefix > 16 {
            bail!(
                "--node-cidr-mask-size {mask} is more than 16 bits longer than the cluster CIDR's prefix ({prefix})"
            );
        }
        Ok(CidrSet {
            network,
            prefix,
            mask,
            used: BTreeSet::new(),
        })
    }

    fn blocks(&self) -> u32 {
        1u32 << (self.mask - self.prefix)
    }

    fn block(&self, index: u32) -> String {
        let shift = 32 - u32::from(self.mask);
        let addr = self.network | index.checked_shl(shift).unwrap_or(0);
        format!("{}/{}", Ipv4Addr::from(addr), self.mask)
    }

    /// The index of `cidr` if it is one of this set's blocks.
    fn index(&self, cidr: &str) -> Option<u32> {
        let (addr, bits) = parse_cidr(cidr).ok()?;
        if bits != self.mask {
            return None;
        }
        let range_mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        };
        if addr & range_mask != self.network {
            return None;
        }
        let shift = 32 - u32::from(self.mask);
        Some((addr - self.network).checked_shr(shift).unwrap_or(0))
    }

    /// Marks `cidr` taken; false if it is not one of this set's blocks.
    pub fn occupy(&mut self, cidr: &str) -> bool {
        match self.index(cidr) {
            Some(i) => {
                self.used.insert(i);
                true
            }
            None => false,
        }
    }

    /// Frees `cidr` (nothing if it is not one of this set's blocks).
    pub fn release(&mut self, cidr: &str) {
        if let Some(i) = self.index(cidr) {
            self.used.remove(&i);
        }
    }

    /// Takes the lowest free block.
    pub fn allocate(&mut self) -> Option<String> {
        let free = (0..self.blocks()).find(|i| !self.used.contains(i))?;
        self.used.insert(free);
        Some(self.block(free))
    }
}

/// The controller's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--cluster-cidr`.
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size`.
    pub node_cidr_mask_size: u8,
}

struct State {
    set: CidrSet,
    /// Blocks handed out by this process, by node, until the cache shows
    /// them (a re-sync of a node the cache still shows without one
    /// writes the same block again instead of taking a second).
    assigned: HashMap<String, String>,
}

struct Shared {
    client: kube::Client,
    nodes: Store<Node>,
    state: Arc<Mutex<State>>,
    events: EventSink,
}

fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|c| !c.is_empty())
}

/// Runs the controller until the process stops.
pub async fn run(
    client: kube::Client,
    metrics: Metrics,
    settings: Settings,
    identity: &str,
) -> Result<()> {
    let set = CidrSet::new(&settings.cluster_cidr, settings.node_cidr_mask_size)?;
    let state = Arc::new(Mutex::new(State {
        set,
        assigned: HashMap::new(),
    }));
    let runner = Runner::new(NAME, &metrics);
    let nodes = {
        let queue = runner.queue();
        let state = state.clone();
        informer::spawn(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            move |event| {
                let Some(node) = informer::object(event) else {
                    return;
                };
                let name = node.metadata.name.clone().unwrap_or_default();
                if let watcher::Event::Delete(_) = event {
                    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(cidr) = pod_cidr(node) {
                        s.set.release(cidr);
                    }
                    if let Some(cidr) = s.assigned.remove(&name) {
                        s.set.release(&cidr);
                    }
                    return;
                }
                queue.add(name);
            },
        )
    };
    nodes.wait_until_ready().await?;
    {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        for node in nodes.state() {
            if let Some(cidr) = pod_cidr(&node) {
                s.set.occupy(cidr);
            }
        }
    }
    let shared = Arc::new(Shared {
        events: EventSink::new(client.clone(), "cidrAllocator", identity),
        client,
        nodes,
        state,
    });
    runner
        .run(1, move |key| reconcile(shared.clone(), key))
        .await;
    Err(anyhow!("the workers stopped"))
}

/// Gives the Node `name` a block if it has none.
async fn reconcile(shared: Arc<Shared>, name: String) -> Outcome {
    let Some(node) = shared.nodes.get(&ObjectRef::new(&name)) else {
        return Ok(None);
    };
    let cidr = {
        let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cidr) = pod_cidr(&node) {
            // Known (or outside the range, and left as it is).
            s.set.occupy(cidr);
            s.assigned.remove(&name);
            return Ok(None);
        }
        match s.assigned.get(&name).cloned() {
            Some(c) => Some(c),
            None => {
                let c = s.set.allocate();
                if let Some(c) = &c {
                    s.assigned.insert(name.clone(), c.clone());
                }
                c
            }
        }
    };
    let Some(cidr) = cidr else {
        shared.events.normal(
            ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(name.clone()),
                uid: node.metadata.uid.clone(),
                ..Default::default()
            },
            "CIDRNotAvailable",
            "AllocateCIDR",
            format!("Node {name} status is now: CIDRNotAvailable"),
        );
        return Ok(Some(FULL_RETRY));
    };
    let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    let api: Api<Node> = Api::all(shared.client.clone());
    match api
        .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Ok(_) => {
            tracing::info!(node = name, cidr, "allocated pod CIDR");
            Ok(None)
        }
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            s.assigned.remove(&name);
            s.set.release(&cidr);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_handed_out_in_order_never_twice_and_freed() {
        let mut set = CidrSet::new("10.244.0.0/16", 24).unwrap_or_else(|e| panic!("{e}"));
        assert!(set.occupy("10.244.1.0/24"));
        assert_eq!(set.allocate().as_deref(), Some("10.244.0.0/24"));
        assert_eq!(set.allocate().as_deref(), Some("10.244.2.0/24"));
        set.release("10.244.0.0/24");
        assert_eq!(set.allocate().as_deref(), Some("10.244.0.0/24"));
        // Outside the range, or another size: not ours.
        assert!(!set.occupy("10.245.0.0/24"));
        assert!(!set.occupy("10.244.3.0/25"));
    }

    #[test]
    fn a_full_range_allocates_nothing() {
        let mut set = CidrSet::new("10.0.0.0/23", 24).unwrap_or_else(|e| panic!("{e}"));
        assert!(set.allocate().is_some() && set.allocate().is_some());
        assert_eq!(set.allocate(), None);
        assert!(CidrSet::new("10.0.0.0/16", 8).is_err());
        assert!(CidrSet::new("10.0.0.0/8", 28).is_err());
        assert!(CidrSet::new("fd00::/64", 80).is_err());
    }
}
