//! Small accessors for `metadata` and other well-known fields of JSON
//! objects, so the store and strategies read them one way.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// `metadata.<field>` as a string, or "".
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The object's name.
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

/// The object's namespace.
pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

/// The `metadata` map, created if missing (or replaced if not an object).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    let root = ensure_object(obj);
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    ensure_object(meta)
}

/// Turns `v` into an object if it is not one, and returns its map.
pub fn ensure_object(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// Sets `metadata.<field>`.
pub fn set_meta(obj: &mut Value, field: &str, value: Value) {
    metadata_mut(obj).insert(field.to_string(), value);
}

/// Removes `metadata.<field>`.
pub fn remove_meta(obj: &mut Value, field: &str) {
    metadata_mut(obj).remove(field);
}

/// A string map under metadata (labels, annotations).
pub fn string_map(obj: &Value, field: &str) -> BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The object's labels.
pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    string_map(obj, "labels")
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_terminating(obj: &Value) -> bool {
    !meta_str(obj, "deletionTimestamp").is_empty()
}

/// The value at a JSON pointer rendered as a field-selector string
/// (strings as is, numbers and booleans as text, missing as "").
pub fn pointer_string(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The integer at a JSON pointer, 0 when absent (Go's zero value, which
/// is what upstream reads for an unset counter).
pub fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Sets a value at a dotted path of object keys, creating objects on the
/// way, unless a value is already there (upstream defaulting never
/// overwrites).
pub fn default_at(obj: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        let map = ensure_object(cur);
        cur = map
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let map = ensure_object(cur);
    match map.get(*last) {
        Some(Value::Null) | None => {
            map.insert(last.to_string(), value);
        }
        Some(_) => {}
    }
}

/// Removes empty lists at any depth. Kubernetes' Go types mark optional
/// lists `omitempty`, so upstream never stores or shows `env: []`; doing
/// the same keeps objects identical to upstream's (e.g. after a strategic
/// merge patch deletes a list's last element).
pub fn drop_empty_lists(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !matches!(x, Value::Array(a) if a.is_empty()));
            m.values_mut().for_each(drop_empty_lists);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_empty_lists),
        _ => {}
    }
}

/// The current time as upstream's RFC 3339 seconds timestamp.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// An RFC 3339 timestamp `seconds` from now.
pub fn rfc3339_after(seconds: i64) -> String {
    let now = jiff::Timestamp::now();
    let t = now
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(jiff::Timestamp::MAX);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_at_fills_only_missing_fields() {
        let mut obj = json!({"spec": {"replicas": 3}});
        default_at(&mut obj, &["spec", "replicas"], json!(1));
        default_at(&mut obj, &["spec", "revisionHistoryLimit"], json!(10));
        assert_eq!(
            obj,
            json!({"spec": {"replicas": 3, "revisionHistoryLimit": 10}})
        );
    }

    #[test]
    fn empty_lists_disappear_but_empty_objects_stay() {
        let mut obj = json!({"spec": {"containers": [{"name": "a", "env": []}], "volumes": [], "securityContext": {}}});
        drop_empty_lists(&mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"containers": [{"name": "a"}], "securityContext": {}}})
        );
    }

    #[test]
    fn now_is_rfc3339_in_utc_seconds() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20);
        assert!(now.ends_with('Z'));
    }
}
