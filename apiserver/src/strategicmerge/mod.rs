//! Strategic merge patch (`application/strategic-merge-patch+json`), as
//! upstream's `k8s.io/apimachinery/pkg/util/strategicpatch` applies it on
//! the server (`MergeParallelList` and `IgnoreUnmatchedNulls` both set).
//!
//! Maps merge recursively and `null` deletes a key. Lists whose field is
//! tagged `patchStrategy:"merge"` (see [`metadata`]) merge element-wise by
//! their merge key, or as a set for primitives; other lists are replaced.
//! The directives `$patch`, `$retainKeys`, `$setElementOrder/<field>` and
//! `$deleteFromPrimitiveList/<field>` are honoured and never kept.
//!
//! A field's tags are found by walking the kind's OpenAPI schema (built once
//! per kind from its schemars schema) along the JSON path to the definition
//! owning each property.

pub mod metadata;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Map, Value};

use crate::registry::ResourceInfo;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Deepest nesting a patch may have; deeper patches are refused rather than
/// risking the stack.
const MAX_DEPTH: usize = 200;

/// A kind's schema: the root (usually a `$ref`) and every definition.
pub(crate) struct KindSchema {
    pub(crate) root: Value,
    pub(crate) defs: Map<String, Value>,
}

static SCHEMAS: LazyLock<Mutex<HashMap<String, Arc<KindSchema>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

pub(crate) fn kind_schema(info: &ResourceInfo) -> Arc<KindSchema> {
    let key = format!("{}/{}", info.api_version(), info.kind);
    let mut cache = SCHEMAS.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(key)
        .or_insert_with(|| {
            let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
            let root = (info.schema)(&mut generator).to_value();
            let defs = generator.take_definitions(true);
            Arc::new(KindSchema { root, defs })
        })
        .clone()
}

/// Applies a strategic merge patch to `original`, an object of the kind
/// `info`. Malformed patches are `Err` with a message for a 400/422.
pub fn apply(info: &ResourceInfo, original: &Value, patch: &Value) -> Result<Value, String> {
    let schema = kind_schema(info);
    let root = Node::new(&schema.defs, Some(&schema.root));
    apply_with(root, original, patch)
}

fn apply_with(root: Node<'_>, original: &Value, patch: &Value) -> Result<Value, String> {
    let Value::Object(patch) = patch else {
        return Err("strategic merge patch must be a JSON object".into());
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err("the object to patch is not a JSON object".into()),
    };
    match merge_map(original, patch, root, 0)? {
        Merged::Keep(m) => Ok(Value::Object(m)),
        Merged::Delete => Ok(Value::Object(Map::new())),
    }
}

// ---------------------------------------------------------------------------
// Schema walking

/// Patch metadata of one field.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct FieldMeta {
    pub(crate) strategy: &'static str,
    pub(crate) merge_key: &'static str,
}

impl FieldMeta {
    pub(crate) fn has(&self, strategy: &str) -> bool {
        self.strategy.split(',').any(|s| s.trim() == strategy)
    }
}

/// A position in a kind's schema: the resolved schema (if known) and the
/// name of the definition it came from.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    defs: &'a Map<String, Value>,
    pub(crate) schema: Option<&'a Value>,
    pub(crate) name: Option<&'a str>,
}

fn ref_name(r: &str) -> &str {
    for prefix in ["#/components/schemas/", "#/definitions/", "#/$defs/"] {
        if let Some(n) = r.strip_prefix(prefix) {
            return n;
        }
    }
    r
}

impl<'a> Node<'a> {
    pub(crate) fn new(defs: &'a Map<String, Value>, schema: Option<&'a Value>) -> Self {
        let mut node = Node {
            defs,
            schema: None,
            name: None,
        };
        let mut current = schema;
        // Follow `$ref`, `allOf: [{$ref}]` and `anyOf`/`oneOf` wrappers, with
        // a bound against reference cycles.
        for _ in 0..32 {
            let Some(s) = current else { break };
            if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                let name = ref_name(r);
                match defs.get_key_value(name) {
                    Some((k, v)) => {
                        node.name = Some(k.as_str());
                        current = Some(v);
                        continue;
                    }
                    None => {
                        current = None;
                        break;
                    }
                }
            }
            if s.get("properties").is_none() && s.get("items").is_none() {
                let wrapped = ["allOf", "anyOf", "oneOf"].iter().find_map(|k| {
                    s.get(*k).and_then(Value::as_array).and_then(|alts| {
                        alts.iter().find(|a| {
                            a.get("$ref").is_some()
                                || a.get("properties").is_some()
                                || a.get("items").is_some()
                                || a.get("allOf").is_some()
                        })
                    })
                });
                if let Some(w) = wrapped {
                    current = Some(w);
                    continue;
                }
            }
            break;
        }
        node.schema = current;
        node
    }

    fn unknown(&self) -> Node<'a> {
        Node {
            defs: self.defs,
            schema: None,
            name: None,
        }
    }

    /// The schema and tags of property `key` of this (object) schema.
    pub(crate) fn field(&self, key: &str) -> (Node<'a>, FieldMeta) {
        let Some(schema) = self.schema else {
            return (self.unknown(), FieldMeta::default());
        };
        if let Some(prop) = schema.get("properties").and_then(|p| p.get(key)) {
            let meta = self
                .name
                .and_then(|n| metadata::lookup(n, key))
                .map(|(strategy, merge_key)| FieldMeta {
                    strategy,
                    merge_key,
                })
                .unwrap_or_default();
            return (Node::new(self.defs, Some(prop)), meta);
        }
        match schema.get("additionalProperties") {
            Some(ap @ Value::Object(_)) => (Node::new(self.defs, Some(ap)), FieldMeta::default()),
            _ => (self.unknown(), FieldMeta::default()),
        }
    }

    /// The schema of this (array) schema's elements.
    pub(crate) fn items(&self) -> Node<'a> {
        match self.schema.and_then(|s| s.get("items")) {
            Some(items) => Node::new(self.defs, Some(items)),
            None => self.unknown(),
        }
    }
}

// ---------------------------------------------------------------------------
// Merging

enum Merged {
    Keep(Map<String, Value>),
    Delete,
}

fn depth_check(depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        Err("strategic merge patch is nested too deeply".into())
    } else {
        Ok(())
    }
}

/// JSON equality where numbers compare by value (`80` equals `80.0`), as
/// Go's decoded `float64`s do.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        _ => a == b,
    }
}

fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    node: Node<'_>,
    depth: usize,
) -> Result<Merged, String> {
    depth_check(depth)?;
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                let mut rest = patch.clone();
                rest.remove(DIRECTIVE);
                // The replacement is the patch itself, cleaned of directives
                // and nulls.
                merge_map(Map::new(), &rest, node, depth + 1)
            }
            Some("delete") => Ok(Merged::Delete),
            _ => Err(format!(
                "unknown patch type: {} in map: {}",
                describe(directive),
                describe(&Value::Object(patch.clone()))
            )),
        };
    }

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Value::Array(keys) = retain else {
            return Err(format!(
                "invalid patch: {RETAIN_KEYS} must be a list of strings, got {}",
                describe(retain)
            ));
        };
        let mut keep = Vec::with_capacity(keys.len());
        for k in keys {
            match k.as_str() {
                Some(s) => keep.push(s),
                None => {
                    return Err(format!(
                        "invalid patch: {RETAIN_KEYS} must be a list of strings, got {}",
                        describe(retain)
                    ));
                }
            }
        }
        original.retain(|k, _| keep.contains(&k.as_str()));
    }

    // `$setElementOrder/<field>`: merge the field's list and order it.
    let mut handled: Vec<&str> = Vec::new();
    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(format!(
                "invalid patch: {key} must be a list, got {}",
                describe(order)
            ));
        };
        handled.push(field);
        let (child, meta) = node.field(field);
        let original_list = match original.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => {
                return Err(format!(
                    "invalid patch: {key} given but {field} is not a list: {}",
                    describe(other)
                ));
            }
        };
        let patch_list = match patch.get(field) {
            None => None,
            Some(Value::Array(l)) => Some(l),
            Some(other) => {
                return Err(format!(
                    "invalid patch: {key} given but the patch's {field} is not a list: {}",
                    describe(other)
                ));
            }
        };
        if let Some(p) = patch_list {
            validate_patch_with_set_order(p, order, meta.merge_key)?;
        }
        let merged = match (original_list.as_ref(), patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => merge_list(Vec::new(), p, meta, child, depth + 1)?,
            (Some(o), Some(p)) => merge_list(o.clone(), p, meta, child, depth + 1)?,
            (None, None) => continue,
        };
        let server_order = original_list.unwrap_or_default();
        let (in_order, server_only) = partition(merged, order, meta.merge_key)?;
        let result =
            normalize_element_order(in_order, server_only, order, &server_order, meta.merge_key)?;
        original.insert(field.to_string(), Value::Array(result));
    }

    let mut deletions: Vec<(&str, &Value)> = Vec::new();
    for (key, value) in patch {
        if key == RETAIN_KEYS
            || key.starts_with(SET_ELEMENT_ORDER)
            || handled.contains(&key.as_str())
        {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            deletions.push((field, value));
            continue;
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let (child, meta) = node.field(key);
        let existing = original.remove(key);
        let merged = match (existing, value) {
            (Some(Value::Object(o)), Value::Object(p)) => if meta.has("replace") {
                merge_map(Map::new(), p, child, depth + 1)?
            } else {
                merge_map(o, p, child, depth + 1)?
            }
            .into_value(),
            (Some(Value::Array(o)), Value::Array(p)) => {
                Some(Value::Array(merge_list(o, p, meta, child, depth + 1)?))
            }
            (_, Value::Object(p)) => merge_map(Map::new(), p, child, depth + 1)?.into_value(),
            (_, Value::Array(p)) => Some(Value::Array(merge_list(
                Vec::new(),
                p,
                meta,
                child,
                depth + 1,
            )?)),
            (_, scalar) => Some(scalar.clone()),
        };
        if let Some(v) = merged {
            original.insert(key.clone(), v);
        }
    }

    for (field, values) in deletions {
        let Value::Array(values) = values else {
            return Err(format!(
                "invalid patch: {DELETE_FROM_PRIMITIVE_LIST}{field} must be a list, got {}",
                describe(values)
            ));
        };
        if let Some(Value::Array(list)) = original.get_mut(field) {
            list.retain(|v| !values.iter().any(|d| json_eq(d, v)));
        }
    }
    Ok(Merged::Keep(original))
}

impl Merged {
    fn into_value(self) -> Option<Value> {
        match self {
            Merged::Keep(m) => Some(Value::Object(m)),
            Merged::Delete => None,
        }
    }
}

/// Cleans a value taken from the patch as is: directives and nulls go.
fn clean(value: &Value, node: Node<'_>, depth: usize) -> Result<Option<Value>, String> {
    depth_check(depth)?;
    Ok(match value {
        Value::Object(m) => merge_map(Map::new(), m, node, depth + 1)?.into_value(),
        Value::Array(items) => {
            let child = node.items();
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if item.get(DIRECTIVE).is_some() {
                    continue;
                }
                if let Some(v) = clean(item, child, depth + 1)? {
                    out.push(v);
                }
            }
            Some(Value::Array(out))
        }
        other => Some(other.clone()),
    })
}

fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    meta: FieldMeta,
    node: Node<'_>,
    depth: usize,
) -> Result<Vec<Value>, String> {
    depth_check(depth)?;
    let items = node.items();
    if !meta.has("merge") {
        // Replaced wholesale, like JSON merge patch.
        let mut out = Vec::with_capacity(patch.len());
        for item in patch {
            if item.get(DIRECTIVE).is_some() {
                continue;
            }
            if let Some(v) = clean(item, items, depth + 1)? {
                out.push(v);
            }
        }
        return Ok(out);
    }
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let maps = original
        .iter()
        .chain(patch)
        .filter(|v| v.is_object())
        .count();
    let lists = original
        .iter()
        .chain(patch)
        .filter(|v| v.is_array())
        .count();
    let total = original.len() + patch.len();
    if lists > 0 {
        return Err("strategic merge patch cannot merge lists of lists".into());
    }
    if maps != 0 && maps != total {
        return Err("lists do not have the same type: cannot merge maps with primitives".into());
    }

    let (server_order, patch_items, merged) = if maps == 0 {
        let mut merged: Vec<Value> = Vec::with_capacity(total);
        for v in original.iter().chain(patch) {
            if !merged.iter().any(|m| json_eq(m, v)) {
                merged.push(v.clone());
            }
        }
        (original, patch.to_vec(), merged)
    } else {
        let key = meta.merge_key;
        if key.is_empty() {
            return Err("cannot merge lists of maps without a merge key".into());
        }
        let (original, patch_items) = apply_special_elements(original, patch, key, items, depth)?;
        let mut merged = original.clone();
        for item in &patch_items {
            let Value::Object(p) = item else { continue };
            let Some(value) = p.get(key) else {
                return Err(no_merge_key(item, key));
            };
            let found = merged
                .iter()
                .position(|m| m.get(key).is_some_and(|v| json_eq(v, value)));
            match found {
                Some(i) => {
                    let current = match std::mem::take(&mut merged[i]) {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    match merge_map(current, p, items, depth + 1)? {
                        Merged::Keep(m) => merged[i] = Value::Object(m),
                        Merged::Delete => {
                            merged.remove(i);
                        }
                    }
                }
                None => {
                    if let Merged::Keep(m) = merge_map(Map::new(), p, items, depth + 1)? {
                        merged.push(Value::Object(m));
                    }
                }
            }
        }
        (original, patch_items, merged)
    };

    // Patch items keep the patch's order, the others the live order.
    let (in_patch, server_only) = partition(merged, &patch_items, meta.merge_key)?;
    normalize_element_order(
        in_patch,
        server_only,
        &patch_items,
        &server_order,
        meta.merge_key,
    )
}

fn no_merge_key(item: &Value, key: &str) -> String {
    format!(
        "map: {} does not contain declared merge key: {key}",
        describe(item)
    )
}

/// Handles list elements carrying `$patch` (`delete` by merge key, or
/// `replace` for the whole list). Returns the updated original and the
/// patch without those elements.
fn apply_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    items: Node<'_>,
    depth: usize,
) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            rest.push(item.clone());
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(value) = item.get(key) else {
                    return Err(no_merge_key(item, key));
                };
                original.retain(|o| !o.get(key).is_some_and(|v| json_eq(v, value)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err("merging lists cannot yet be specified in the patch".into());
            }
            _ => {
                return Err(format!(
                    "unknown patch type: {} in map: {}",
                    describe(directive),
                    describe(item)
                ));
            }
        }
    }
    if replace {
        let mut replacement = Vec::with_capacity(rest.len());
        for item in &rest {
            let Value::Object(m) = item else { continue };
            if let Merged::Keep(m) = merge_map(Map::new(), m, items, depth + 1)? {
                replacement.push(Value::Object(m));
            }
        }
        return Ok((replacement, Vec::new()));
    }
    Ok((original, rest))
}

/// Position of `item` in `list`: by merge key for maps, by value otherwise.
fn index_of(list: &[Value], item: &Value, key: &str) -> Option<usize> {
    if key.is_empty() {
        list.iter().position(|v| json_eq(v, item))
    } else {
        let value = item.get(key)?;
        list.iter()
            .position(|v| v.get(key).is_some_and(|k| json_eq(k, value)))
    }
}

/// Splits `items` into those named in `by` and the rest.
fn partition(
    items: Vec<Value>,
    by: &[Value],
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for item in items {
        if !key.is_empty() && item.is_object() && item.get(key).is_none() {
            return Err(no_merge_key(&item, key));
        }
        if index_of(by, &item, key).is_some() {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Stable sort of `items` by their position in `order`; items not in it
/// keep their relative order after those that are.
fn sort_by_order(items: &mut [Value], order: &[Value], key: &str) {
    items.sort_by_key(|item| index_of(order, item, key).unwrap_or(usize::MAX));
}

/// Upstream's `normalizeElementOrder`: patch items sorted by `patch_order`,
/// server-only items by `server_order`, then interleaved: a server-only item
/// goes before a patch item only when both are in the live list and it came
/// first there.
fn normalize_element_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: &str,
) -> Result<Vec<Value>, String> {
    if !key.is_empty() {
        for item in patch_order {
            if item.is_object() && item.get(key).is_none() {
                return Err(no_merge_key(item, key));
            }
        }
    }
    sort_by_order(&mut patch_items, patch_order, key);
    sort_by_order(&mut server_only, server_order, key);
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                let li = index_of(server_order, l, key);
                let ri = index_of(server_order, r, key);
                let take_left = matches!((li, ri), (Some(a), Some(b)) if a < b);
                let next = if take_left { left.next() } else { right.next() };
                out.extend(next);
            }
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (None, None) => break,
        }
    }
    Ok(out)
}

/// Upstream's `validatePatchWithSetOrderList`: the patch list's items must
/// appear in the `$setElementOrder` list, in the same relative order.
fn validate_patch_with_set_order(
    patch: &[Value],
    order: &[Value],
    key: &str,
) -> Result<(), String> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = patch
        .iter()
        .filter(|v| v.get(DIRECTIVE).is_none())
        .collect();
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        let equal = if key.is_empty() {
            json_eq(items[p], &order[o])
        } else {
            let a = items[p]
                .get(key)
                .ok_or_else(|| no_merge_key(items[p], key))?;
            let b = order[o]
                .get(key)
                .ok_or_else(|| no_merge_key(&order[o], key))?;
            json_eq(a, b)
        };
        if equal {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() {
        return Err(format!(
            "invalid patch: the order in the patch list {} doesn't match the {SET_ELEMENT_ORDER} list {}",
            describe(&Value::Array(patch.to_vec())),
            describe(&Value::Array(order.to_vec()))
        ));
    }
    Ok(())
}
