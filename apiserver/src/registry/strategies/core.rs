//! ConfigMap and Secret: key syntax, and Secret's `stringData` folding.

use base64::Engine;
use serde_json::{Value, json};

use crate::error::FieldError;
use crate::registry::meta::{self, default_at, ensure_object};
use crate::registry::strategy::{Column, Strategy};
use crate::table::age;

/// Keys of ConfigMap and Secret data: `[-._a-zA-Z0-9]+`, not `.` or `..`.
fn is_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && !k.starts_with("..")
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn validate_keys(obj: &Value, fields: &[&str]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for field in fields {
        if let Some(map) = obj.get(*field).and_then(Value::as_object) {
            for k in map.keys() {
                if !is_config_key(k) {
                    errs.push(FieldError::invalid(
                        *field,
                        &Value::String(k.clone()),
                        KEY_MSG,
                    ));
                }
                if !seen.insert(k.clone()) {
                    errs.push(FieldError::invalid(
                        *field,
                        &Value::String(k.clone()),
                        "duplicate of key present in another data field",
                    ));
                }
            }
        }
    }
    errs
}

fn count_keys(obj: &Value, fields: &[&str]) -> usize {
    fields
        .iter()
        .filter_map(|f| obj.get(*f).and_then(Value::as_object))
        .map(|m| m.len())
        .sum()
}

/// ConfigMaps.
pub struct ConfigMapStrategy;

impl Strategy for ConfigMapStrategy {
    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_keys(obj, &["data", "binaryData"])
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        if old.get("immutable") == Some(&Value::Bool(true)) {
            for f in ["data", "binaryData", "immutable"] {
                if new.get(f) != old.get(f) {
                    errs.push(FieldError::forbidden(
                        f,
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Data", "string", 0, "Number of data keys"),
            Column::AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![
            json!(meta::name(obj)),
            json!(count_keys(obj, &["data", "binaryData"])),
            json!(age(obj)),
        ]
    }
}

/// Secrets.
pub struct SecretStrategy;

impl Strategy for SecretStrategy {
    fn apply_defaults(&self, obj: &mut Value) {
        default_at(obj, &["type"], json!("Opaque"));
        // stringData is write-only: fold it into data, base64-encoded.
        let string_data = obj.as_object_mut().and_then(|m| m.remove("stringData"));
        if let Some(Value::Object(string_data)) = string_data {
            let engine = base64::engine::general_purpose::STANDARD;
            let root = ensure_object(obj);
            let data = ensure_object(root.entry("data").or_insert_with(|| json!({})));
            for (k, v) in string_data {
                data.insert(
                    k,
                    Value::String(engine.encode(v.as_str().unwrap_or_default())),
                );
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate_keys(obj, &["data"])
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        if new.get("type") != old.get("type") {
            errs.push(FieldError::immutable(
                "type",
                new.get("type").unwrap_or(&Value::Null),
            ));
        }
        if old.get("immutable") == Some(&Value::Bool(true)) && new.get("data") != old.get("data") {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
        errs
    }

    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[("type", "/type")]
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Type", "string", 0, "The type of the secret"),
            Column::new("Data", "string", 0, "Number of data keys"),
            Column::AGE,
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![
            json!(meta::name(obj)),
            obj.get("type").cloned().unwrap_or(json!("")),
            json!(count_keys(obj, &["data"])),
            json!(age(obj)),
        ]
    }
}
