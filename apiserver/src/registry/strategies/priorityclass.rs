//! PriorityClasses (scheduling.k8s.io/v1): the default preemption policy,
//! the reserved `system-` names, the user value ceiling, the immutable
//! value and policy, and the system classes that may not be deleted.
//! The single global default is the Priority admission plugin's check.

use serde_json::{Value, json};

use crate::error::FieldError;
use crate::registry::admission::priority::{
    HIGHEST_USER_DEFINABLE_PRIORITY, PREEMPT_LOWER_PRIORITY, SYSTEM_PRIORITY_CLASS_PREFIX,
    SystemPriorityClass,
};
use crate::registry::meta::{self, default_at};
use crate::registry::strategy::{Cells, Column, Strategy};
use crate::table::age;

/// PriorityClasses.
pub struct PriorityClassStrategy;

/// Why a `system-` name is refused: it must be a built-in class with the
/// built-in value and `globalDefault: false`.
fn system_class_error(name: &str, value: i64, global_default: bool) -> Option<String> {
    let Some(system) = SystemPriorityClass::named(name) else {
        return Some(format!("{name} is not a known system priority class"));
    };
    if system.value != value {
        return Some(format!(
            "value of {name} PriorityClass must be {}",
            system.value
        ));
    }
    global_default.then(|| format!("globalDefault of {name} PriorityClass must be false"))
}

impl Strategy for PriorityClassStrategy {
    fn apply_defaults(&self, obj: &mut Value) {
        default_at(obj, &["preemptionPolicy"], json!(PREEMPT_LOWER_PRIORITY));
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let name = meta::name(obj);
        let value = meta::int_at(obj, "/value");
        if name.starts_with(SYSTEM_PRIORITY_CLASS_PREFIX) {
            let global_default = obj.get("globalDefault") == Some(&Value::Bool(true));
            if let Some(why) = system_class_error(name, value, global_default) {
                errs.push(FieldError::forbidden(
                    "metadata.name",
                    &format!(
                        "priority class names with '{SYSTEM_PRIORITY_CLASS_PREFIX}' prefix are reserved for system use only. error: {why}"
                    ),
                ));
            }
        } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
            errs.push(FieldError::forbidden(
                "value",
                &format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
                ),
            ));
        }
        match obj.get("preemptionPolicy").and_then(Value::as_str) {
            None | Some("PreemptLowerPriority") | Some("Never") => {}
            Some("") => errs.push(FieldError::required("preemptionPolicy", "")),
            Some(other) => errs.push(FieldError::not_supported(
                "preemptionPolicy",
                &json!(other),
                &["Never", "PreemptLowerPriority"],
            )),
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if new.get("value") != old.get("value") {
            errs.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        let policy = new.get("preemptionPolicy").unwrap_or(&Value::Null);
        if policy != old.get("preemptionPolicy").unwrap_or(&Value::Null) {
            errs.push(FieldError::immutable("preemptionPolicy", policy));
        }
        errs
    }

    fn forbid_delete(&self, obj: &Value) -> Option<&'static str> {
        SystemPriorityClass::named(meta::name(obj))
            .map(|_| "this is a system priority class and cannot be deleted")
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Value", "integer", 0, "The value of this priority class."),
            Column::new(
                "Global-Default",
                "boolean",
                0,
                "Whether this priority class is the default for pods without a class.",
            ),
            Column::AGE,
            Column::new(
                "PreemptionPolicy",
                "string",
                0,
                "The policy for preempting pods with lower priority.",
            ),
        ]
    }

    fn cells(&self, obj: &Value) -> Cells {
        vec![
            json!(meta::name(obj)),
            json!(meta::int_at(obj, "/value")),
            json!(
                obj.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            json!(age(obj)),
            json!(meta::pointer_string(obj, "/preemptionPolicy")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_names_are_reserved_and_user_values_capped() {
        let pc = |name: &str, value: i64| json!({"metadata": {"name": name}, "value": value});
        let s = PriorityClassStrategy;
        assert!(
            s.validate(&pc("system-node-critical", 2_000_001_000))
                .is_empty()
        );
        assert!(
            s.validate(&pc("system-node-critical", 5))[0]
                .message
                .contains("value of system-node-critical PriorityClass must be 2000001000")
        );
        assert!(
            s.validate(&pc("system-mine", 5))[0]
                .message
                .contains("system-mine is not a known system priority class")
        );
        assert!(s.validate(&pc("high", 1_000_000_000)).is_empty());
        assert_eq!(s.validate(&pc("higher", 1_000_000_001))[0].field, "value");
    }

    #[test]
    fn value_and_policy_are_immutable() {
        let old = json!({"value": 1, "preemptionPolicy": "Never"});
        let s = PriorityClassStrategy;
        assert!(s.validate_update(&old, &old).is_empty());
        let changed = json!({"value": 2, "preemptionPolicy": "PreemptLowerPriority"});
        let fields: Vec<String> = s
            .validate_update(&changed, &old)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["value", "preemptionPolicy"]);
    }
}
