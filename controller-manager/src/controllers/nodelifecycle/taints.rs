//! Taints and tolerations as node lifecycle uses them: upstream's
//! matching rules, and when a pod on a node with NoExecute taints must go
//! (at once for a taint it does not tolerate, else after the shortest
//! `tolerationSeconds` of the tolerations it relies on).

use capstan_component_helpers::scheduling::tolerates;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Taint, Toleration};

/// The NoExecute taint of a node that stopped reporting.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The NoExecute taint of a node that reports it is not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// When a pod with `tolerations` must be evicted from a node with
/// NoExecute `taints`: `Some(None)` now, `Some(Some(t))` at `t`, `None`
/// never.
pub fn eviction_time(tolerations: &[Toleration], taints: &[Taint]) -> Option<Option<Timestamp>> {
    let mut due: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(None);
        }
        // Tolerated for the shortest time any matching toleration gives;
        // forever if one has no limit.
        if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            continue;
        }
        let seconds = matching
            .iter()
            .filter_map(|t| t.toleration_seconds)
            .min()
            .unwrap_or(0)
            .max(0);
        let added = taint
            .time_added
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now);
        let at = added
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .unwrap_or(Timestamp::MAX);
        due = Some(due.map_or(at, |d| d.min(at)));
    }
    due.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taint(key: &str) -> Taint {
        serde_json::from_value(
            json!({"key": key, "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}),
        )
        .unwrap_or_default()
    }

    fn toleration(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn untolerated_taints_evict_at_once_tolerated_ones_after_their_seconds() {
        let taints = [taint(UNREACHABLE)];
        assert_eq!(eviction_time(&[], &taints), Some(None));
        let five_minutes = toleration(
            json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
        );
        let at = eviction_time(std::slice::from_ref(&five_minutes), &taints);
        assert_eq!(
            at,
            Some(Some(
                "2026-01-01T00:05:00Z".parse().unwrap_or(Timestamp::MAX)
            ))
        );
        let forever = toleration(json!({"operator": "Exists"}));
        assert_eq!(eviction_time(&[forever, five_minutes], &taints), None);
        let other = toleration(json!({"key": NOT_READY, "operator": "Exists"}));
        assert_eq!(eviction_time(&[other], &taints), Some(None));
    }
}
