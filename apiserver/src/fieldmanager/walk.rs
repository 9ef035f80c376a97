//! Reading objects along their [`Shape`]: the field set of an applied
//! configuration and the difference between two versions of an object.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldset::{self, FieldSet};
use super::schema::{ListType, Shape};

/// Deepest nesting walked; deeper objects are refused.
const MAX_DEPTH: usize = 200;

/// The path element of one list item, `None` when the list cannot be
/// tracked per item (a key field missing, or not an object).
pub(super) fn item_element(item: &Value, list: &ListType, shape: &Shape<'_>) -> Option<String> {
    match list {
        ListType::Atomic => None,
        ListType::Set => Some(fieldset::value(item)),
        ListType::Map(keys) if keys.is_empty() => None,
        ListType::Map(keys) => {
            let obj = item.as_object()?;
            let defaults: Vec<Option<Value>> = keys
                .iter()
                .map(|k| match obj.get(k) {
                    Some(_) => None,
                    None => shape.key_default(k),
                })
                .collect();
            let mut fields = Vec::with_capacity(keys.len());
            for (k, default) in keys.iter().zip(&defaults) {
                match (obj.get(k), default) {
                    (Some(v), _) => fields.push((k.as_str(), v)),
                    (None, Some(d)) => fields.push((k.as_str(), d)),
                    (None, None) => return None,
                }
            }
            Some(fieldset::key(&fields))
        }
    }
}

/// A list's items by path element, or `None` when the list is atomic or
/// some item cannot be keyed (then the list is treated as atomic).
fn index_items<'v>(items: &'v [Value], shape: &Shape<'_>) -> Option<BTreeMap<String, &'v Value>> {
    let list = shape.list_type();
    if list == ListType::Atomic {
        return None;
    }
    let mut out = BTreeMap::new();
    for item in items {
        out.insert(item_element(item, &list, shape)?, item);
    }
    Some(out)
}

/// The fields a configuration sets: every leaf, plus every list item
/// itself. Duplicate items are refused, as upstream does.
pub fn field_set(config: &Value, shape: &Shape<'_>) -> Result<FieldSet, String> {
    collect(config, shape, 0)
}

fn collect(v: &Value, shape: &Shape<'_>, depth: usize) -> Result<FieldSet, String> {
    if depth > MAX_DEPTH {
        return Err("the object is nested too deeply".into());
    }
    let mut set = FieldSet::new();
    match v {
        Value::Object(m) if !shape.is_atomic_map() => {
            for (k, child) in m {
                let mut sub = collect(child, &shape.field(k), depth + 1)?;
                if sub.is_empty() {
                    sub.set_member(true);
                }
                set.put_child(fieldset::field(k), sub);
            }
        }
        Value::Array(items) => {
            let list = shape.list_type();
            if list == ListType::Atomic {
                return Ok(set);
            }
            let item_shape = shape.items();
            for item in items {
                let Some(pe) = item_element(item, &list, shape) else {
                    return Err(missing_key(&list));
                };
                if set.child(&pe).is_some() {
                    return Err(format!(
                        "duplicate entries for key {}",
                        fieldset::path_string(&[pe])
                    ));
                }
                let mut sub = match list {
                    ListType::Set => FieldSet::new(),
                    _ => collect(item, &item_shape, depth + 1)?,
                };
                sub.set_member(true);
                set.put_child(pe, sub);
            }
        }
        _ => {}
    }
    Ok(set)
}

fn missing_key(list: &ListType) -> String {
    match list {
        ListType::Map(keys) => format!(
            "associative list with keys has an element that omits key field(s) {}",
            keys.iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "list item cannot be tracked".into(),
    }
}

/// What changed between two versions of an object.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Comparison {
    /// Paths only the new version has.
    pub added: FieldSet,
    /// Leaves whose value changed.
    pub modified: FieldSet,
    /// Paths only the old version has.
    pub removed: FieldSet,
}

/// Whether `key` under `path` is `metadata.managedFields`, which says who
/// owns the object's fields and is no field of its own.
fn is_managed_fields(path: &[String], key: &str) -> bool {
    key == "managedFields" && path.len() == 1 && path[0] == "f:metadata"
}

/// Compares two versions of an object (`None`: it did not exist),
/// ignoring their `metadata.managedFields`.
pub fn compare(old: Option<&Value>, new: Option<&Value>, shape: &Shape<'_>) -> Comparison {
    let mut out = Comparison::default();
    let mut path = Vec::new();
    diff(old, new, shape, &mut path, true, &mut out);
    out
}

/// Compares one node. `in_zero` says whether the kind's zero value already
/// has it (upstream compares a create against that zero value, so a node
/// there is never itself added, only its fields).
fn diff(
    old: Option<&Value>,
    new: Option<&Value>,
    shape: &Shape<'_>,
    path: &mut Vec<String>,
    in_zero: bool,
    out: &mut Comparison,
) {
    if path.len() > MAX_DEPTH {
        return;
    }
    let granular = match (old, new) {
        (Some(Value::Object(_)) | None, Some(Value::Object(_)) | None)
            if !shape.is_atomic_map() =>
        {
            let empty = Map::new();
            let a = old.and_then(Value::as_object).unwrap_or(&empty);
            let b = new.and_then(Value::as_object).unwrap_or(&empty);
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                if is_managed_fields(path, k) {
                    continue;
                }
                let child = shape.field(k);
                let child_in_zero = in_zero && shape.in_zero_value(k, &child);
                path.push(fieldset::field(k));
                diff(a.get(k), b.get(k), &child, path, child_in_zero, out);
                path.pop();
            }
            Some(old.is_none_or(|_| a.is_empty()) && new.is_none_or(|_| b.is_empty()))
        }
        (Some(Value::Array(_)) | None, Some(Value::Array(_)) | None) => {
            let empty = Vec::new();
            let a = old.and_then(Value::as_array).unwrap_or(&empty);
            let b = new.and_then(Value::as_array).unwrap_or(&empty);
            match (index_items(a, shape), index_items(b, shape)) {
                (Some(ia), Some(ib)) => {
                    let item_shape = shape.items();
                    let keys: std::collections::BTreeSet<&String> =
                        ia.keys().chain(ib.keys()).collect();
                    for k in keys {
                        path.push(k.clone());
                        let (x, y) = (ia.get(k).copied(), ib.get(k).copied());
                        diff(x, y, &item_shape, path, false, out);
                        path.pop();
                    }
                    Some(old.is_none_or(|_| a.is_empty()) && new.is_none_or(|_| b.is_empty()))
                }
                _ => None,
            }
        }
        _ => None,
    };
    if path.is_empty() {
        return;
    }
    match granular {
        // Only the fields of what the zero value has are tracked (unless
        // it is empty, when its presence is all there is).
        Some(empty) if in_zero && !empty => {}
        Some(_) => {
            if old.is_none() && new.is_some() {
                out.added.insert(path);
            } else if new.is_none() && old.is_some() {
                out.removed.insert(path);
            }
        }
        None => match (old, new) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            (Some(a), Some(b)) if a != b => out.modified.insert(path),
            _ => {}
        },
    }
}
