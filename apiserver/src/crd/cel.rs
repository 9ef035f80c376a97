//! `x-kubernetes-validations`: CEL rules in custom resource schemas, as
//! upstream evaluates them. `self` is the value at the rule's schema node;
//! `oldSelf` is the stored value at the same place on an update (a rule
//! that uses it is a transition rule and is skipped on create). A rule
//! that does not hold yields upstream's error: `<path>: Invalid value:
//! "<type>": <message>` (or `failed rule: <rule>` without a message).
//!
//! Rules run on the `cel` crate's standard library plus its strings,
//! lists and math extensions; Kubernetes' own CEL libraries (quantities,
//! URLs, IPs) are not available, so rules using them fail to compile and
//! the CRD is refused rather than its rules silently ignored.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::Value;

use crate::error::FieldError;

/// The environment every rule compiles and runs in.
static ENV: LazyLock<Arc<cel::Env>> = LazyLock::new(|| {
    let mut env = cel::Env::stdlib();
    for extension in [
        cel::extensions::strings as fn(&mut cel::Env) -> Result<(), _>,
        cel::extensions::lists,
        cel::extensions::math,
    ] {
        if let Err(e) = env.add_extension(extension) {
            tracing::warn!(error = ?e, "CEL extension not available");
        }
    }
    Arc::new(env)
});

/// Compiled rules by their text, so each rule is parsed once.
static PROGRAMS: LazyLock<Mutex<HashMap<String, Arc<cel::Program>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Most distinct rules kept compiled; past it the cache starts over
/// (rules come from CRDs, so this bounds memory under CRD churn).
const MAX_PROGRAMS: usize = 4096;

/// Compiles a rule, or says why it does not compile.
pub fn compile(rule: &str) -> Result<Arc<cel::Program>, String> {
    let mut cache = PROGRAMS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = cache.get(rule) {
        return Ok(p.clone());
    }
    let program = Arc::new(ENV.compile(rule).map_err(|e| e.to_string())?);
    if cache.len() >= MAX_PROGRAMS {
        cache.clear();
    }
    cache.insert(rule.to_string(), program.clone());
    Ok(program)
}

/// A JSON value as CEL sees it: integers stay integers (signed where they
/// fit, as upstream's int64), objects become maps with string keys.
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let entries: HashMap<String, cel::Value> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::from(entries)
        }
    }
}

/// The OpenAPI type name upstream shows as the "value" of a failed rule.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

/// Evaluates the rules of one schema node against `value` (and `old`, the
/// stored value at the same place, on updates).
pub fn check(
    rules: &[Value],
    value: &Value,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    for rule in rules {
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
        let program = match compile(text) {
            Ok(p) => p,
            Err(e) => {
                errs.push(FieldError::invalid(
                    path,
                    &Value::String(type_name(value).into()),
                    &format!("rule compile error: {e}"),
                ));
                continue;
            }
        };
        let transition = program.references().has_variable("oldSelf");
        if transition && old.is_none() {
            continue;
        }
        let mut context = cel::Context::with_env(ENV.clone());
        context.add_variable_from_value("self", to_cel(value));
        if let Some(old) = old {
            context.add_variable_from_value("oldSelf", to_cel(old));
        }
        let failed = match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => None,
            Ok(cel::Value::Bool(false)) => Some(
                rule.get("message")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("failed rule: {text}")),
            ),
            Ok(other) => Some(format!("rule did not evaluate to a bool: {other:?}")),
            Err(e) => Some(format!("rule evaluation error: {e}")),
        };
        if let Some(message) = failed {
            let at = match rule.get("fieldPath").and_then(Value::as_str) {
                Some(p) if !p.is_empty() => format!("{path}{p}"),
                _ => path.to_string(),
            };
            errs.push(FieldError::invalid(
                at,
                &Value::String(type_name(value).into()),
                &message,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(rules: Value, value: Value, old: Option<Value>) -> Vec<String> {
        let mut errs = Vec::new();
        let rules = rules.as_array().cloned().unwrap_or_default();
        check(&rules, &value, old.as_ref(), "spec", &mut errs);
        errs.into_iter().map(|e| e.message).collect()
    }

    #[test]
    fn rules_see_self_and_report_upstreams_message() {
        let rules = json!([{"rule": "self.replicas <= self.maxReplicas", "message": "replicas should be smaller than or equal to maxReplicas."}]);
        assert!(
            errors(
                rules.clone(),
                json!({"replicas": 2, "maxReplicas": 3}),
                None
            )
            .is_empty()
        );
        assert_eq!(
            errors(rules, json!({"replicas": 5, "maxReplicas": 3}), None),
            [
                "spec: Invalid value: \"object\": replicas should be smaller than or equal to maxReplicas."
            ]
        );
        let unnamed = json!([{"rule": "self.name.startsWith('a')"}]);
        assert_eq!(
            errors(unnamed, json!({"name": "b"}), None),
            ["spec: Invalid value: \"object\": failed rule: self.name.startsWith('a')"]
        );
    }

    #[test]
    fn transition_rules_need_an_old_value() {
        let rules = json!([{"rule": "self == oldSelf", "message": "Value is immutable"}]);
        assert!(
            errors(rules.clone(), json!("x"), None).is_empty(),
            "skipped on create"
        );
        assert!(errors(rules.clone(), json!("x"), Some(json!("x"))).is_empty());
        assert_eq!(
            errors(rules, json!("y"), Some(json!("x"))),
            ["spec: Invalid value: \"string\": Value is immutable"]
        );
    }

    #[test]
    fn has_size_and_macros_work() {
        let rules = json!([{"rule": "!has(self.a) || self.items.all(i, i.size() < 4)"}]);
        assert!(errors(rules.clone(), json!({"items": ["abcd"]}), None).is_empty());
        assert_eq!(
            errors(rules, json!({"a": 1, "items": ["abcd"]}), None).len(),
            1
        );
        assert!(compile("self.").is_err());
    }
}
