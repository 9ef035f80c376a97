//! `spec.podFailurePolicy` (upstream's `pod_failure_policy.go`): the first
//! rule matching a failed pod's container exit codes or pod conditions
//! decides whether the failure fails the Job at once, is ignored (not
//! counted toward `backoffLimit`), or counts as usual.

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement};
use k8s_openapi::api::core::v1::Pod;

/// What a failed pod does to its Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fail the Job now; the message names the rule (upstream's wording).
    FailJob(String),
    /// Do not count the failure.
    Ignore,
    /// Count it toward `backoffLimit` (also when no rule matches).
    Count,
}

/// The action of the first rule matching `pod`.
pub fn action(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Action {
    let Some(policy) = policy else {
        return Action::Count;
    };
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    for (i, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(req) = &rule.on_exit_codes {
            exit_code_matches(req, pod).map(|(container, code)| {
                format!(
                    "Container {container} for pod {}/{name} failed with exit code {code} matching {} rule at index {i}",
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    rule.action
                )
            })
        } else {
            rule.on_pod_conditions.as_ref().and_then(|reqs| {
                reqs.iter()
                    .find(|req| has_condition(pod, &req.type_, &req.status))
                    .map(|req| {
                        format!(
                            "Pod {}/{name} has condition {} matching {} rule at index {i}",
                            pod.metadata.namespace.as_deref().unwrap_or_default(),
                            req.type_,
                            rule.action
                        )
                    })
            })
        };
        if let Some(message) = matched {
            return match rule.action.as_str() {
                "FailJob" => Action::FailJob(message),
                "Ignore" => Action::Ignore,
                _ => Action::Count,
            };
        }
    }
    Action::Count
}

/// The first terminated container (of those the rule names) whose exit
/// code the operator accepts; exit code 0 never matches, as upstream.
fn exit_code_matches(
    req: &PodFailurePolicyOnExitCodesRequirement,
    pod: &Pod,
) -> Option<(String, i32)> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .filter(|c| req.container_name.as_ref().is_none_or(|n| *n == c.name))
        .filter_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            Some((c.name.clone(), t.exit_code))
        })
        .find(|(_, code)| {
            *code != 0
                && match req.operator.as_str() {
                    "In" => req.values.contains(code),
                    "NotIn" => !req.values.contains(code),
                    _ => false,
                }
        })
}

/// Whether `pod` has condition `type_` with status `want` (`True` when
/// empty, the apiserver's default).
fn has_condition(pod: &Pod, type_: &str, want: &str) -> bool {
    let want = if want.is_empty() { "True" } else { want };
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == want))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failed(code: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": conditions, "containerStatuses": [{
                "name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code}},
            }]},
        }))
        .unwrap()
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let policy: PodFailurePolicy = serde_json::from_value(json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
        ]}))
        .unwrap();
        let p = Some(&policy);
        assert!(
            matches!(action(p, &failed(42, json!([]))), Action::FailJob(m) if m.contains("exit code 42"))
        );
        assert_eq!(
            action(
                p,
                &failed(42, json!([{"type": "DisruptionTarget", "status": "True"}]))
            ),
            Action::Ignore
        );
        assert_eq!(action(p, &failed(1, json!([]))), Action::Count);
        assert_eq!(action(None, &failed(42, json!([]))), Action::Count);
    }
}
