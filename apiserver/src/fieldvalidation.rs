//! `fieldValidation` (Strict, Warn, Ignore): finding the fields of a
//! request that the kind's type does not know, as upstream's strict
//! decoding does. kubectl ≥ 1.27 asks for Strict by default, so a typo in
//! a manifest is refused instead of silently dropped.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// What to do with unknown fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and say so in `Warning` headers (upstream's default).
    #[default]
    Warn,
    /// Refuse the request with 400.
    Strict,
}

impl FieldValidation {
    /// Parses the `fieldValidation` query parameter.
    pub fn parse(value: Option<&str>) -> ApiResult<Self> {
        match value {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// Paths (`spec.containers[0].imagee`) present in `sent` but missing from
/// `decoded`, the same object after a round trip through its type.
pub fn unknown_fields(sent: &Value, decoded: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(sent, decoded, String::new(), &mut out);
    out
}

fn walk(sent: &Value, decoded: &Value, path: String, out: &mut Vec<String>) {
    match (sent, decoded) {
        (Value::Object(s), Value::Object(d)) => {
            for (k, v) in s {
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match d.get(k) {
                    None if !v.is_null() => out.push(at),
                    Some(dv) => walk(v, dv, at, out),
                    None => {}
                }
            }
        }
        (Value::Array(s), Value::Array(d)) => {
            for (i, (sv, dv)) in s.iter().zip(d).enumerate() {
                walk(sv, dv, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_misspelt_fields_at_any_depth() {
        let sent = json!({"spec": {"containers": [{"name": "a", "imagee": "x"}], "replicaz": 2}, "metadata": {"name": "n", "labelz": {}}});
        let decoded = json!({"spec": {"containers": [{"name": "a"}]}, "metadata": {"name": "n"}});
        assert_eq!(
            unknown_fields(&sent, &decoded),
            [
                "metadata.labelz",
                "spec.containers[0].imagee",
                "spec.replicaz"
            ]
        );
    }

    #[test]
    fn nulls_and_known_fields_are_fine() {
        let sent = json!({"spec": {"replicas": 1, "paused": null}});
        assert!(unknown_fields(&sent, &json!({"spec": {"replicas": 1}})).is_empty());
    }
}
