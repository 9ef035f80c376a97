//! Changing objects along their [`Shape`]: merging an applied
//! configuration into a live object, and removing one path from it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::schema::{ListType, Shape};
use super::walk::item_element;

/// Merges an applied configuration into a live object: maps and structs
/// field by field, associative lists and sets item by item, everything
/// else replaced by the configuration's value.
pub fn merge(live: &Value, config: &Value, shape: &Shape<'_>) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !shape.is_atomic_map() => {
            let mut out = l.clone();
            for (k, cv) in c {
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, cv, &shape.field(k)),
                    None => cv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => {
            merge_items(l, c, shape).unwrap_or_else(|| config.clone())
        }
        _ => config.clone(),
    }
}

/// Merges two granular lists item by item (`None` when either cannot be
/// keyed). Items keep the configuration's order; live-only items stay
/// where they were relative to it (structured-merge-diff's interleaving).
fn merge_items(live: &[Value], config: &[Value], shape: &Shape<'_>) -> Option<Value> {
    let list = shape.list_type();
    if list == ListType::Atomic {
        return None;
    }
    let keyed = |items: &[Value]| -> Option<Vec<String>> {
        items
            .iter()
            .map(|i| item_element(i, &list, shape))
            .collect()
    };
    let (lpe, rpe) = (keyed(live)?, keyed(config)?);
    let lmap: BTreeMap<&String, &Value> = lpe.iter().zip(live).collect();
    let rmap: BTreeMap<&String, &Value> = rpe.iter().zip(config).collect();
    let mut shared = rpe.iter().filter(|pe| lmap.contains_key(pe));
    let mut next_shared = shared.next();
    let item_shape = shape.items();
    let mut merged = BTreeSet::new();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lpe.len() || ri < rpe.len() {
        if li < lpe.len() && ri < rpe.len() {
            if lpe[li] == rpe[ri] {
                merged.insert(&lpe[li]);
                out.push(merge(&live[li], &config[ri], &item_shape));
                if next_shared == Some(&lpe[li]) {
                    next_shared = shared.next();
                }
                li += 1;
                ri += 1;
                continue;
            }
            // A shared item out of the configuration's order waits for it.
            if rmap.contains_key(&lpe[li]) && next_shared.is_some_and(|n| *n != lpe[li]) {
                li += 1;
                continue;
            }
        }
        if li < lpe.len() {
            if !rmap.contains_key(&lpe[li]) {
                out.push(live[li].clone());
                li += 1;
                continue;
            }
            if merged.contains(&lpe[li]) {
                li += 1;
                continue;
            }
        }
        if ri < rpe.len() {
            let pe = &rpe[ri];
            merged.insert(pe);
            out.push(match lmap.get(pe) {
                Some(lv) => merge(lv, &config[ri], &item_shape),
                None => config[ri].clone(),
            });
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
            ri += 1;
        }
    }
    Some(Value::Array(out))
}

/// Removes the value at `path` from `obj`; false when nothing is there.
pub fn remove_path(obj: &mut Value, path: &[String], shape: &Shape<'_>) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match (obj, first.split_once(':')) {
        (Value::Object(m), Some(("f", name))) => {
            if rest.is_empty() {
                m.remove(name).is_some()
            } else {
                let child_shape = shape.field(name);
                m.get_mut(name)
                    .is_some_and(|c| remove_path(c, rest, &child_shape))
            }
        }
        (Value::Array(items), Some((_, _))) => {
            let list = shape.list_type();
            let position = items.iter().position(|item| {
                item_element(item, &list, shape).as_deref() == Some(first.as_str())
            });
            let Some(i) = position else {
                return false;
            };
            if rest.is_empty() {
                items.remove(i);
                true
            } else {
                remove_path(&mut items[i], rest, &shape.items())
            }
        }
        _ => false,
    }
}

/// Drops `null` members of objects: in an applied configuration they mean
/// "not set".
pub fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
