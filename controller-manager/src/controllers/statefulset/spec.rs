//! What a StatefulSet's spec asks for, with upstream's defaults for what
//! is unset (the apiserver defaults most of it; older objects may lack it).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

use crate::history::DEFAULT_HISTORY_LIMIT;

/// `spec.replicas` (1 when unset).
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

/// `spec.ordinals.start`: the first pod's ordinal (0 when unset).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0)
}

/// The ordinal range `start..start+replicas` holds `ordinal`.
pub fn in_range(set: &StatefulSet, ordinal: i32) -> bool {
    let start = start_ordinal(set);
    ordinal >= start && ordinal < start + replicas(set)
}

/// `podManagementPolicy` is `OrderedReady` (upstream's "monotonic"): one
/// pod at a time, each waiting for its predecessors.
pub fn monotonic(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        != Some("Parallel")
}

/// `updateStrategy` is `OnDelete`: pods change revision only when deleted.
pub fn on_delete(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

/// `updateStrategy.rollingUpdate.partition`: indexes below it keep the
/// current revision (0 when unset).
pub fn partition(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .max(0)
}

/// `spec.minReadySeconds`.
pub fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `spec.revisionHistoryLimit` (10 when unset).
pub fn history_limit(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(DEFAULT_HISTORY_LIMIT)
}

/// `spec.serviceName`, the pods' subdomain.
pub fn service_name(set: &StatefulSet) -> Option<String> {
    set.spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty())
}

/// `spec.volumeClaimTemplates`.
pub fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default()
}

/// What happens to a pod's claims when the set is deleted or scaled down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// `whenDeleted` is `Delete`: claims are owned by the set.
    pub delete_when_deleted: bool,
    /// `whenScaled` is `Delete`: a condemned pod's claims are owned by it.
    pub delete_when_scaled: bool,
}

/// `spec.persistentVolumeClaimRetentionPolicy` (Retain/Retain when unset;
/// an unknown value counts as Retain, as upstream).
pub fn retention(set: &StatefulSet) -> Retention {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    Retention {
        delete_when_deleted: delete(policy.and_then(|p| p.when_deleted.as_ref())),
        delete_when_scaled: delete(policy.and_then(|p| p.when_scaled.as_ref())),
    }
}
