//! VolumeBinding: a pod goes only where its PersistentVolumeClaims can be
//! used, as upstream's plugin (`pkg/scheduler/framework/plugins/volumebinding`):
//! bound claims pin the pod to their volume's node affinity, and unbound
//! claims of `WaitForFirstConsumer` classes need an available volume (or a
//! provisioner) that can serve the node.
//!
//! This plugin only decides. Binding the chosen volumes after scheduling
//! (upstream's Reserve/PreBind) is the scheduler's: it asks
//! [`find_pod_volumes`] for the node it picked.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, Pod, TopologySelectorTerm, Volume,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{Selector, SelectorExt};
use serde::Deserialize;
use serde_json::Value;

use crate::framework::resources::parse_milli;
use crate::framework::{CycleState, NodeInfo, Plugin, PodInfo, Snapshot, Status};
use capstan_component_helpers::scheduling::node_selector_matches;

/// Cycle-state key of the pod's claims.
const STATE_KEY: &str = "VolumeBinding";

/// No available volume (nor provisioner) can serve an unbound claim here.
pub const ERR_REASON_BIND_CONFLICT: &str =
    "node(s) didn't find available persistent volumes to bind";
/// A bound volume's node affinity excludes the node.
pub const ERR_REASON_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// A bound claim names a volume that does not exist.
pub const ERR_REASON_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
/// A claim that the PV controller, not the scheduler, must bind is unbound.
pub const ERR_REASON_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// The node a delayed claim is to be provisioned on; the scheduler sets it
/// when it picks a node for a claim left to dynamic provisioning.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Set by the PV controller once a claim's binding is complete.
const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// The legacy class annotation, which wins over `storageClassName`.
const ANN_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// The provisioner of classes that cannot provision (local volumes).
const NOT_SUPPORTED_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// `VolumeBindingArgs`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Args {
    bind_timeout_seconds: Option<i64>,
    /// Scoring shape, used upstream only behind the alpha
    /// StorageCapacityScoring gate; accepted and ignored.
    #[serde(rename = "shape", default)]
    _shape: Option<Value>,
    #[serde(rename = "kind", default)]
    _kind: Option<Value>,
    #[serde(rename = "apiVersion", default)]
    _api_version: Option<Value>,
}

/// Filters nodes by the pod's volumes.
pub struct VolumeBinding {
    bind_timeout: Duration,
}

impl VolumeBinding {
    /// Builds the plugin from `VolumeBindingArgs` (`bindTimeoutSeconds`
    /// defaults to 600 and may not be negative).
    pub fn new(args: &Value) -> Result<Self, String> {
        let args: Args = if args.is_null() {
            Args::default()
        } else {
            serde_json::from_value(args.clone()).map_err(|e| format!("VolumeBindingArgs: {e}"))?
        };
        let secs = args.bind_timeout_seconds.unwrap_or(600);
        let secs = u64::try_from(secs)
            .map_err(|_| "bindTimeoutSeconds: Invalid value: invalid BindTimeoutSeconds, should not be a negative value".to_string())?;
        Ok(VolumeBinding {
            bind_timeout: Duration::from_secs(secs),
        })
    }

    /// How long whoever binds the volumes should wait for the PV
    /// controller to finish before giving up on the pod's placement.
    pub fn bind_timeout(&self) -> Duration {
        self.bind_timeout
    }
}

/// What binding a pod's unbound (WaitForFirstConsumer) claims would take
/// on one node: the scheduler binds `static_bindings` and writes
/// [`ANN_SELECTED_NODE`] on `dynamic_provisions` once it picks the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodVolumes {
    /// (claim `namespace/name`, PersistentVolume name) pairs.
    pub static_bindings: Vec<(String, String)>,
    /// Claims (`namespace/name`) left to the class's provisioner.
    pub dynamic_provisions: Vec<String>,
}

/// The pod's volumes if it were placed on `node`: `Err` with the Filter's
/// status when the node cannot serve them. The pod's claims are read from
/// `snapshot`, as PreFilter would.
pub fn find_pod_volumes(
    pod: &PodInfo,
    snapshot: &Snapshot,
    node: &NodeInfo,
) -> Result<PodVolumes, Status> {
    let Some(claims) = collect_claims(&pod.pod, snapshot)? else {
        return Ok(PodVolumes::default());
    };
    match claims.find_volumes(node) {
        Err(e) => Err(Status::Error(e)),
        Ok((_, reasons)) if !reasons.is_empty() => Err(unresolvable(&reasons)),
        Ok((volumes, _)) => Ok(volumes),
    }
}

fn unresolvable(reasons: &[&str]) -> Status {
    Status::UnschedulableAndUnresolvable(reasons.iter().map(|r| r.to_string()).collect())
}

/// The pod's claims as PreFilter sorts them (upstream's `PodVolumeClaims`).
#[derive(Debug, Default)]
struct PodClaims {
    /// Fully bound claims with their volume (`None`: it does not exist).
    bound: Vec<(Arc<PersistentVolumeClaim>, Option<Arc<PersistentVolume>>)>,
    /// Unbound claims of WaitForFirstConsumer classes.
    delayed: Vec<Arc<PersistentVolumeClaim>>,
    /// Per class of a delayed claim: the class's volumes, by name.
    volumes_by_class: HashMap<String, Vec<Arc<PersistentVolume>>>,
    /// The classes of the delayed claims.
    classes: HashMap<String, Arc<StorageClass>>,
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// `namespace/name` of a claim.
fn claim_key(pvc: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        pvc.metadata.namespace.as_deref().unwrap_or_default(),
        pvc.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The claim's class: the beta annotation, else `storageClassName`.
fn claim_class(pvc: &PersistentVolumeClaim) -> &str {
    annotation(&pvc.metadata, ANN_STORAGE_CLASS)
        .or_else(|| {
            pvc.spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
        })
        .unwrap_or_default()
}

/// The volume's class: the beta annotation, else `storageClassName`.
fn volume_class(pv: &PersistentVolume) -> &str {
    annotation(&pv.metadata, ANN_STORAGE_CLASS)
        .or_else(|| {
            pv.spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
        })
        .unwrap_or_default()
}

fn claim_volume_name(pvc: &PersistentVolumeClaim) -> &str {
    pvc.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or_default()
}

/// Bound means named volume and the PV controller's bind-completed mark;
/// a claim pre-bound by its author counts as unbound until then.
fn is_fully_bound(pvc: &PersistentVolumeClaim) -> bool {
    !claim_volume_name(pvc).is_empty() && annotation(&pvc.metadata, ANN_BIND_COMPLETED).is_some()
}

/// Upstream's `IsDelayBindingMode`: the claim's class exists and binds on
/// first consumer. A class without a binding mode is an error.
fn is_delay_binding(pvc: &PersistentVolumeClaim, snapshot: &Snapshot) -> Result<bool, String> {
    let class_name = claim_class(pvc);
    if class_name.is_empty() {
        return Ok(false);
    }
    let Some(class) = snapshot.storage_classes.get(class_name) else {
        return Ok(false);
    };
    match class.volume_binding_mode.as_deref() {
        Some(mode) => Ok(mode == "WaitForFirstConsumer"),
        None => Err(format!(
            "VolumeBindingMode not set for StorageClass {class_name:?}"
        )),
    }
}

/// The claim name a volume uses and whether it is a generic ephemeral one
/// (named `<pod>-<volume>`); `None` for volumes without a claim.
fn volume_claim_name(pod: &Pod, volume: &Volume) -> Option<(String, bool)> {
    if let Some(pvc) = &volume.persistent_volume_claim {
        return Some((pvc.claim_name.clone(), false));
    }
    volume.ephemeral.as_ref()?;
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    Some((format!("{pod_name}-{}", volume.name), true))
}

/// Whether the pod is the claim's controller (generic ephemeral volumes
/// must use the claim made for this very pod).
fn controlled_by_pod(pvc: &PersistentVolumeClaim, pod: &Pod) -> bool {
    let controller = pvc
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    controller.is_some_and(|r| Some(&r.uid) == pod.metadata.uid.as_ref())
}

/// Upstream's `podHasPVCs` then `GetPodVolumeClaims`: the pod's claims,
/// `None` when it has none, `Err` with the PreFilter status when one is
/// missing, lost, being deleted, or unbound but not the scheduler's to
/// bind.
fn collect_claims(pod: &Pod, snapshot: &Snapshot) -> Result<Option<PodClaims>, Status> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    let mut found = Vec::new();
    for volume in volumes {
        let Some((name, ephemeral)) = volume_claim_name(pod, volume) else {
            continue;
        };
        let Some(pvc) = snapshot.pvcs.get(&format!("{namespace}/{name}")) else {
            return Err(Status::unresolvable(if ephemeral {
                format!(
                    "waiting for ephemeral volume controller to create the persistentvolumeclaim {name:?}"
                )
            } else {
                format!("persistentvolumeclaim {name:?} not found")
            }));
        };
        if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Lost") {
            return Err(Status::unresolvable(format!(
                "persistentvolumeclaim {name:?} bound to non-existent persistentvolume {:?}",
                claim_volume_name(pvc)
            )));
        }
        if pvc.metadata.deletion_timestamp.is_some() {
            return Err(Status::unresolvable(format!(
                "persistentvolumeclaim {name:?} is being deleted"
            )));
        }
        if ephemeral && !controlled_by_pod(pvc, pod) {
            let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
            return Err(Status::unresolvable(format!(
                "PVC {namespace}/{name} was not created for pod {namespace}/{pod_name} (pod is not owner)"
            )));
        }
        found.push(pvc.clone());
    }
    if found.is_empty() {
        return Ok(None);
    }
    let mut claims = PodClaims::default();
    let mut unbound_immediate = false;
    for pvc in found {
        if is_fully_bound(&pvc) {
            let pv = snapshot.pvs.get(claim_volume_name(&pvc)).cloned();
            claims.bound.push((pvc, pv));
        } else if is_delay_binding(&pvc, snapshot).map_err(Status::Error)?
            && claim_volume_name(&pvc).is_empty()
        {
            claims.delayed.push(pvc);
        } else {
            unbound_immediate = true;
        }
    }
    if unbound_immediate {
        return Err(Status::unresolvable(ERR_REASON_UNBOUND_IMMEDIATE));
    }
    for pvc in &claims.delayed {
        let class_name = claim_class(pvc);
        if claims.volumes_by_class.contains_key(class_name) {
            continue;
        }
        let mut pvs: Vec<Arc<PersistentVolume>> = snapshot
            .pvs
            .values()
            .filter(|pv| volume_class(pv) == class_name)
            .cloned()
            .collect();
        pvs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        claims.volumes_by_class.insert(class_name.to_string(), pvs);
        if let Some(class) = snapshot.storage_classes.get(class_name) {
            claims.classes.insert(class_name.to_string(), class.clone());
        }
    }
    Ok(Some(claims))
}

/// Upstream's `CheckNodeAffinity`: the volume's required node affinity
/// against the node's labels. Upstream matches a node made of the labels
/// alone, so `matchFields` on `metadata.name` never match; so here.
fn volume_fits_node(pv: &PersistentVolume, labels: &BTreeMap<String, String>) -> bool {
    let required = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref());
    required.is_none_or(|sel| node_selector_matches(sel, labels, ""))
}

/// A quantity of storage in thousandths of a byte (0 when absent).
fn storage_of(list: Option<&BTreeMap<String, Quantity>>) -> i128 {
    list.and_then(|l| l.get("storage"))
        .and_then(|q| parse_milli(&q.0))
        .unwrap_or(0)
}

fn requested_storage(pvc: &PersistentVolumeClaim) -> i128 {
    storage_of(
        pvc.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )
}

fn capacity(pv: &PersistentVolume) -> i128 {
    storage_of(pv.spec.as_ref().and_then(|s| s.capacity.as_ref()))
}

/// Whether the volume's claimRef names this claim (and its uid, if set).
fn is_bound_to_claim(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.name == pvc.metadata.name
        && r.namespace == pvc.metadata.namespace
        && (r.uid.as_deref().unwrap_or_default().is_empty() || r.uid == pvc.metadata.uid)
}

/// Whether the volume offers every access mode the claim asks for.
fn has_access_modes(pvc: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    let offered = pv
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default();
    pvc.spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
        .iter()
        .all(|m| offered.contains(m))
}

/// Claim and volume modes agree (both default to Filesystem).
fn volume_modes_match(pvc: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    let claim = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    let volume = pv
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    claim == volume
}

/// Upstream's `FindMatchingVolume` on the scheduler path: a volume
/// pre-bound to the claim if it fits the node, else the smallest Available
/// volume of the claim's class that is big enough, unclaimed, of the same
/// mode and attributes class, selected by the claim's selector, offering
/// its access modes and fitting the node; `excluded` volumes are taken by
/// the pod's other claims.
fn find_matching_volume(
    pvc: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    node: &NodeInfo,
    excluded: &HashSet<String>,
) -> Result<Option<Arc<PersistentVolume>>, String> {
    let requested = requested_storage(pvc);
    let class_name = claim_class(pvc);
    let selector: Option<Selector> = match pvc.spec.as_ref().and_then(|s| s.selector.clone()) {
        Some(ls) => Some(Selector::try_from(ls).map_err(|e| {
            format!(
                "error creating internal label selector for claim: {}: {}",
                claim_key(pvc),
                e.0
            )
        })?),
        None => None,
    };
    let claim_vac = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_attributes_class_name.as_deref())
        .unwrap_or_default();
    let no_labels = BTreeMap::new();
    let mut smallest: Option<(&Arc<PersistentVolume>, i128)> = None;
    for pv in volumes {
        let name = pv.metadata.name.as_deref().unwrap_or_default();
        if excluded.contains(name) {
            continue;
        }
        let claimed = pv.spec.as_ref().is_some_and(|s| s.claim_ref.is_some());
        if claimed && !is_bound_to_claim(pv, pvc) {
            continue;
        }
        let size = capacity(pv);
        if size < requested || !volume_modes_match(pvc, pv) {
            continue;
        }
        let volume_vac = pv
            .spec
            .as_ref()
            .and_then(|s| s.volume_attributes_class_name.as_deref())
            .unwrap_or_default();
        if !claim_vac.is_empty() && claim_vac != volume_vac {
            continue;
        }
        if pv.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let fits_node = volume_fits_node(pv, &node.labels);
        if is_bound_to_claim(pv, pvc) {
            // Pre-bound: this volume or none.
            return Ok(fits_node.then(|| pv.clone()));
        }
        let available = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Available");
        let labels = pv.metadata.labels.as_ref().unwrap_or(&no_labels);
        if !available
            || selector.as_ref().is_some_and(|s| !s.matches(labels))
            || volume_class(pv) != class_name
            || !fits_node
            || !has_access_modes(pvc, pv)
        {
            continue;
        }
        if smallest.is_none_or(|(_, s)| s > size) {
            smallest = Some((pv, size));
        }
    }
    Ok(smallest.map(|(pv, _)| pv.clone()))
}

/// Upstream's `MatchTopologySelectorTerms`: no terms match every node; an
/// empty term matches none.
fn topology_allows(terms: &[TopologySelectorTerm], labels: &BTreeMap<String, String>) -> bool {
    terms.is_empty()
        || terms.iter().any(|t| {
            let reqs = t.match_label_expressions.as_deref().unwrap_or_default();
            !reqs.is_empty()
                && reqs
                    .iter()
                    .all(|r| labels.get(&r.key).is_some_and(|v| r.values.contains(v)))
        })
}

impl PodClaims {
    /// Upstream's `FindPodVolumes`: the bindings the pod's delayed claims
    /// would take on `node` and the reasons it cannot run there (empty when
    /// it can).
    fn find_volumes(&self, node: &NodeInfo) -> Result<(PodVolumes, Vec<&'static str>), String> {
        let (bound_ok, volumes_exist) = self.check_bound(node);
        let (unbound_ok, volumes) = if self.delayed.is_empty() {
            (true, PodVolumes::default())
        } else {
            self.find_unbound(node)?
        };
        let mut reasons = Vec::new();
        if !bound_ok {
            reasons.push(ERR_REASON_NODE_CONFLICT);
        }
        if !unbound_ok {
            reasons.push(ERR_REASON_BIND_CONFLICT);
        }
        if !volumes_exist {
            reasons.push(ERR_REASON_PV_NOT_EXIST);
        }
        Ok((volumes, reasons))
    }

    /// (every bound volume fits the node, every bound volume exists),
    /// stopping at the first failure as upstream's `checkBoundClaims`.
    fn check_bound(&self, node: &NodeInfo) -> (bool, bool) {
        for (_, pv) in &self.bound {
            let Some(pv) = pv else {
                return (true, false);
            };
            if !volume_fits_node(pv, &node.labels) {
                return (false, true);
            }
        }
        (true, true)
    }

    /// Matches the delayed claims to volumes, then checks the rest can be
    /// provisioned on the node.
    fn find_unbound(&self, node: &NodeInfo) -> Result<(bool, PodVolumes), String> {
        let mut volumes = PodVolumes::default();
        let mut to_match = Vec::new();
        let mut to_provision = Vec::new();
        for pvc in &self.delayed {
            match annotation(&pvc.metadata, ANN_SELECTED_NODE) {
                // Already being provisioned for another node.
                Some(selected) if selected != node.name => return Ok((false, volumes)),
                Some(_) => to_provision.push(pvc),
                None => to_match.push(pvc),
            }
        }
        let mut satisfied = true;
        if !to_match.is_empty() {
            // Smallest requests first, so they get the smallest volumes.
            to_match.sort_by_key(|pvc| requested_storage(pvc));
            let mut chosen = HashSet::new();
            for pvc in to_match {
                let volumes_of_class = self
                    .volumes_by_class
                    .get(claim_class(pvc))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                match find_matching_volume(pvc, volumes_of_class, node, &chosen)? {
                    Some(pv) => {
                        let name = pv.metadata.name.clone().unwrap_or_default();
                        chosen.insert(name.clone());
                        volumes.static_bindings.push((claim_key(pvc), name));
                    }
                    None => {
                        satisfied = false;
                        to_provision.push(pvc);
                    }
                }
            }
        }
        if !to_provision.is_empty() {
            let (provisionable, provisions) = self.check_provisions(&to_provision, node)?;
            satisfied = provisionable;
            volumes.dynamic_provisions = provisions;
        }
        Ok((satisfied, volumes))
    }

    /// Upstream's `checkVolumeProvisions` (without storage capacity
    /// tracking, which needs CSIStorageCapacity objects): each claim's class
    /// has a real provisioner whose allowed topologies include the node.
    fn check_provisions(
        &self,
        claims: &[&Arc<PersistentVolumeClaim>],
        node: &NodeInfo,
    ) -> Result<(bool, Vec<String>), String> {
        let mut provisions = Vec::new();
        for pvc in claims {
            let class_name = claim_class(pvc);
            if class_name.is_empty() {
                return Err(format!("no class for claim {:?}", claim_key(pvc)));
            }
            let Some(class) = self.classes.get(class_name) else {
                return Err(format!("failed to find storage class {class_name:?}"));
            };
            if class.provisioner.is_empty() || class.provisioner == NOT_SUPPORTED_PROVISIONER {
                return Ok((false, Vec::new()));
            }
            let allowed = class.allowed_topologies.as_deref().unwrap_or_default();
            if !topology_allows(allowed, &node.labels) {
                return Ok((false, Vec::new()));
            }
            provisions.push(claim_key(pvc));
        }
        Ok((true, provisions))
    }
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        "VolumeBinding"
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        match collect_claims(&pod.pod, snapshot) {
            Err(status) => status,
            Ok(None) => Status::Skip,
            Ok(Some(claims)) => {
                state.write(STATE_KEY, Arc::new(claims));
                Status::Success
            }
        }
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(claims) = state.read::<Arc<PodClaims>>(STATE_KEY) else {
            return Status::Error(format!("reading {STATE_KEY:?} from cycleState: not found"));
        };
        match claims.find_volumes(node) {
            Err(e) => Status::Error(e),
            Ok((_, reasons)) if !reasons.is_empty() => unresolvable(&reasons),
            Ok(_) => Status::Success,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    const LOCAL: &str = "local";

    fn node(name: &str) -> NodeInfo {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "zone": format!("z-{name}")}}
        }))
        .unwrap_or_default();
        NodeInfo::new(Arc::new(n))
    }

    fn pod(claims: &[&str]) -> PodInfo {
        let volumes: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "pod-uid"},
            "spec": {"containers": [{"name": "c"}], "volumes": volumes}
        }))
        .unwrap_or_default();
        PodInfo::new(Arc::new(p))
    }

    fn pvc(name: &str, extra: Value) -> (String, Arc<PersistentVolumeClaim>) {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {"storageClassName": LOCAL, "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "5Gi"}}}
        });
        merge(&mut v, extra);
        let claim: PersistentVolumeClaim = serde_json::from_value(v).unwrap_or_default();
        (format!("default/{name}"), Arc::new(claim))
    }

    fn pv(name: &str, on_node: &str, size: &str, extra: Value) -> (String, Arc<PersistentVolume>) {
        let mut v = json!({
            "metadata": {"name": name},
            "spec": {"storageClassName": LOCAL, "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size},
                "local": {"path": "/mnt/disk"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [on_node]}]}]}}},
            "status": {"phase": "Available"}
        });
        merge(&mut v, extra);
        (
            name.to_string(),
            Arc::new(serde_json::from_value(v).unwrap_or_default()),
        )
    }

    fn class(
        name: &str,
        mode: &str,
        provisioner: &str,
        extra: Value,
    ) -> (String, Arc<StorageClass>) {
        let mut v = json!({"metadata": {"name": name}, "provisioner": provisioner, "volumeBindingMode": mode});
        merge(&mut v, extra);
        (
            name.to_string(),
            Arc::new(serde_json::from_value(v).unwrap_or_default()),
        )
    }

    fn merge(base: &mut Value, extra: Value) {
        match (base, extra) {
            (Value::Object(b), Value::Object(e)) => {
                for (k, v) in e {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, e) => *b = e,
        }
    }

    fn snapshot(nodes: &[&str]) -> Snapshot {
        let mut s = Snapshot::default();
        for n in nodes {
            s.upsert_node(node(n));
        }
        s.storage_classes.extend([
            class(
                LOCAL,
                "WaitForFirstConsumer",
                NOT_SUPPORTED_PROVISIONER,
                json!({}),
            ),
            class("fast", "Immediate", "csi.example.com", json!({})),
        ]);
        s
    }

    fn plugin() -> VolumeBinding {
        VolumeBinding::new(&json!({})).unwrap_or_else(|e| panic!("{e}"))
    }

    fn run(snap: &Snapshot, p: &PodInfo) -> Result<Vec<Status>, Status> {
        let pl = plugin();
        let mut state = CycleState::default();
        match pl.pre_filter(&mut state, p, snap) {
            Status::Success => Ok(snap.nodes.iter().map(|n| pl.filter(&state, p, n)).collect()),
            other => Err(other),
        }
    }

    fn bound(name: &str, volume: &str) -> (String, Arc<PersistentVolumeClaim>) {
        pvc(
            name,
            json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}}, "spec": {"volumeName": volume}}),
        )
    }

    #[test]
    fn pods_without_claims_are_skipped() {
        assert_eq!(run(&snapshot(&["n1"]), &pod(&[])), Err(Status::Skip));
    }

    #[test]
    fn missing_or_deleted_claims_are_unresolvable() {
        let mut snap = snapshot(&["n1"]);
        assert_eq!(
            run(&snap, &pod(&["data"])),
            Err(Status::unresolvable(
                "persistentvolumeclaim \"data\" not found"
            ))
        );
        snap.pvcs.extend([pvc(
            "data",
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        )]);
        assert_eq!(
            run(&snap, &pod(&["data"])),
            Err(Status::unresolvable(
                "persistentvolumeclaim \"data\" is being deleted"
            ))
        );
    }

    #[test]
    fn unbound_immediate_claims_wait_for_the_pv_controller() {
        let mut snap = snapshot(&["n1"]);
        snap.pvcs.extend([
            pvc("fast", json!({"spec": {"storageClassName": "fast"}})),
            pvc("classless", json!({"spec": {"storageClassName": ""}})),
            pvc(
                "unknown-class",
                json!({"spec": {"storageClassName": "nope"}}),
            ),
            // Pre-bound by its author, not yet confirmed by the controller.
            pvc(
                "prebound",
                json!({"spec": {"storageClassName": "fast", "volumeName": "pv-1"}}),
            ),
        ]);
        for claim in ["fast", "classless", "unknown-class", "prebound"] {
            assert_eq!(
                run(&snap, &pod(&[claim])),
                Err(Status::unresolvable(ERR_REASON_UNBOUND_IMMEDIATE)),
                "{claim}"
            );
        }
    }

    #[test]
    fn bound_claims_follow_their_volume_node_affinity() {
        let mut snap = snapshot(&["n1", "n2"]);
        snap.pvcs
            .extend([bound("data", "pv-n1"), bound("ghost", "pv-gone")]);
        snap.pvs.extend([pv(
            "pv-n1",
            "n1",
            "5Gi",
            json!({"status": {"phase": "Bound"}}),
        )]);
        let statuses = run(&snap, &pod(&["data"])).unwrap_or_default();
        assert_eq!(
            statuses,
            vec![
                Status::Success,
                Status::unresolvable(ERR_REASON_NODE_CONFLICT)
            ]
        );
        let statuses = run(&snap, &pod(&["ghost"])).unwrap_or_default();
        assert!(
            statuses
                .iter()
                .all(|s| *s == Status::unresolvable(ERR_REASON_PV_NOT_EXIST))
        );
    }

    #[test]
    fn wait_for_first_consumer_claims_need_a_fitting_local_volume() {
        let mut snap = snapshot(&["n1", "n2", "n3", "n4", "n5"]);
        snap.pvcs.extend([pvc("data", json!({}))]);
        snap.pvs.extend([
            pv("pv-n1", "n1", "10Gi", json!({})),
            pv("pv-n2-small", "n2", "1Gi", json!({})),
            pv(
                "pv-n3-taken",
                "n3",
                "10Gi",
                json!({"spec": {"claimRef": {"name": "other", "namespace": "default"}}}),
            ),
            pv(
                "pv-n4-rox",
                "n4",
                "10Gi",
                json!({"spec": {"accessModes": ["ReadOnlyMany"]}}),
            ),
            pv(
                "pv-n5-released",
                "n5",
                "10Gi",
                json!({"status": {"phase": "Released"}}),
            ),
        ]);
        let statuses = run(&snap, &pod(&["data"])).unwrap_or_default();
        let conflict = Status::unresolvable(ERR_REASON_BIND_CONFLICT);
        assert_eq!(
            statuses,
            vec![
                Status::Success,
                conflict.clone(),
                conflict.clone(),
                conflict.clone(),
                conflict
            ]
        );

        let n1 = &snap.nodes[0];
        assert_eq!(
            find_pod_volumes(&pod(&["data"]), &snap, n1),
            Ok(PodVolumes {
                static_bindings: vec![("default/data".into(), "pv-n1".into())],
                dynamic_provisions: vec![],
            })
        );
    }

    #[test]
    fn each_volume_serves_one_claim_and_the_smallest_fit_wins() {
        let mut snap = snapshot(&["n1"]);
        snap.pvcs.extend([
            pvc(
                "big",
                json!({"spec": {"resources": {"requests": {"storage": "8Gi"}}}}),
            ),
            pvc(
                "small",
                json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}}),
            ),
        ]);
        snap.pvs.extend([pv("pv-10g", "n1", "10Gi", json!({}))]);
        let p = pod(&["big", "small"]);
        assert_eq!(
            run(&snap, &p),
            Ok(vec![Status::unresolvable(ERR_REASON_BIND_CONFLICT)])
        );

        snap.pvs.extend([
            pv("pv-2g", "n1", "2Gi", json!({})),
            pv("pv-20g", "n1", "20Gi", json!({})),
        ]);
        assert_eq!(run(&snap, &p), Ok(vec![Status::Success]));
        assert_eq!(
            find_pod_volumes(&p, &snap, &snap.nodes[0]).map(|v| v.static_bindings),
            Ok(vec![
                ("default/small".to_string(), "pv-2g".to_string()),
                ("default/big".to_string(), "pv-10g".to_string()),
            ])
        );
    }

    #[test]
    fn provisioners_serve_claims_without_volumes_where_topology_allows() {
        let mut snap = snapshot(&["n1", "n2"]);
        snap.storage_classes.extend([class(
            "zonal",
            "WaitForFirstConsumer",
            "csi.example.com",
            json!({"allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": ["z-n1"]}]}]}),
        )]);
        snap.pvcs
            .extend([pvc("data", json!({"spec": {"storageClassName": "zonal"}}))]);
        let statuses = run(&snap, &pod(&["data"])).unwrap_or_default();
        assert_eq!(
            statuses,
            vec![
                Status::Success,
                Status::unresolvable(ERR_REASON_BIND_CONFLICT)
            ]
        );
        assert_eq!(
            find_pod_volumes(&pod(&["data"]), &snap, &snap.nodes[0]).map(|v| v.dynamic_provisions),
            Ok(vec!["default/data".to_string()])
        );

        // A claim already being provisioned for n2 only fits n2.
        snap.pvcs.extend([pvc(
            "data",
            json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "n2"}}, "spec": {"storageClassName": "fast-wffc"}}),
        )]);
        snap.storage_classes.extend([class(
            "fast-wffc",
            "WaitForFirstConsumer",
            "csi.example.com",
            json!({}),
        )]);
        let statuses = run(&snap, &pod(&["data"])).unwrap_or_default();
        assert_eq!(
            statuses,
            vec![
                Status::unresolvable(ERR_REASON_BIND_CONFLICT),
                Status::Success
            ]
        );
    }

    #[test]
    fn args_are_validated() {
        assert_eq!(plugin().bind_timeout(), Duration::from_secs(600));
        assert!(VolumeBinding::new(&json!({"bindTimeoutSeconds": -1})).is_err());
        assert!(VolumeBinding::new(&json!({"bindTimeout": 5})).is_err());
        let pl = VolumeBinding::new(&json!({"bindTimeoutSeconds": 30}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pl.bind_timeout(), Duration::from_secs(30));
    }
}
