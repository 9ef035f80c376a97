//! Server-side apply: merge a manager's configuration into the live object
//! and decide ownership, as structured-merge-diff's `Updater.Apply`.

use serde_json::{Map, Value};

use super::fieldset::FieldSet;
use super::managed::{self, Entry, Operation};
use super::schema::{Shape, TypeSource};
use super::{Options, Scope};
use super::{lastapplied, merge, walk};
use crate::registry::meta;

/// One field another manager owns that the apply would change.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The owner as messages name it (`"kubectl" using apps/v1`).
    pub manager: String,
    /// The field's path elements.
    pub path: Vec<String>,
}

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyError {
    /// The configuration cannot be applied (duplicate or unkeyed items).
    Invalid(String),
    /// Fields owned by other managers would change; `force` takes them.
    Conflicts(Vec<Conflict>),
}

/// Applies `config` by `opts.manager` to `live` (`None`: the object does
/// not exist yet) and returns the object to write, its `managedFields`
/// already decided:
///
/// - the manager's `Apply` entry becomes exactly the configuration's fields;
/// - fields it applied before but no longer does, and nobody else owns,
///   are removed from the object;
/// - fields whose value changes and that other managers own are conflicts,
///   unless `force`, which moves them to this manager.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    opts: &Options,
    scope: Scope,
    api_version: &str,
    types: &TypeSource,
) -> Result<Value, ApplyError> {
    let root = types.root();
    let mut config = config.clone();
    merge::drop_nulls(&mut config);
    let applied = scope.restrict(&walk::field_set(&config, &root).map_err(ApplyError::Invalid)?);
    let empty = Value::Object(Map::new());
    let live_clean = live.map(managed::without).unwrap_or(empty);
    let mut entries = match live.map(managed::decode) {
        Some(Ok(Some(entries))) => entries,
        // An object nobody manages yet (written before tracking, or by the
        // server itself) is owned by `before-first-apply`, so the first
        // applier still meets conflicts on what it would change.
        Some(_) => before_first_apply(&live_clean, scope, api_version, types),
        None => Vec::new(),
    };
    let sub = opts.subresource.as_str();
    let manager = opts.manager.as_deref().unwrap_or_default();
    let mine = |e: &Entry| e.is(manager, Operation::Apply, api_version, sub);

    let mut merged = merge::merge(&live_clean, &config, &root);

    // Prune what this manager stopped applying, unless someone owns it.
    let last = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let owned = entries
        .iter()
        .filter(|e| !mine(e))
        .fold(applied.clone(), |acc, e| acc.union(&e.fields));
    prune(&mut merged, &last.difference(&owned), &owned, &root);

    let cmp = walk::compare(Some(&live_clean), Some(&merged), &root);
    let changed = scope.restrict(&cmp.added.union(&cmp.modified));
    let removed = scope.restrict(&cmp.removed);
    let conflicts = take(entries.iter_mut().filter(|e| !mine(e)), &changed);
    if !conflicts.is_empty() && !opts.force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for e in &mut entries {
        e.fields = e.fields.difference(&removed);
    }
    let object_changed = merged != live_clean;
    let now = meta::now_rfc3339();
    match entries.iter_mut().find(|e| mine(e)) {
        Some(e) => {
            if object_changed || e.fields != applied {
                e.time = Some(now);
            }
            e.fields = applied;
            e.api_version = api_version.to_string();
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: Operation::Apply,
            api_version: api_version.to_string(),
            time: Some(now),
            subresource: sub.to_string(),
            fields: applied,
        }),
    }
    lastapplied::sync(live, &mut merged, &config, manager);
    managed::encode(&mut merged, entries);
    Ok(merged)
}

/// Removes the `dropped` paths from the object, deepest first, except
/// where some manager still owns something at or below them.
fn prune(merged: &mut Value, dropped: &FieldSet, owned: &FieldSet, root: &Shape<'_>) {
    for path in dropped.paths().iter().rev() {
        if owned.subtree(path).is_none_or(FieldSet::is_empty) {
            merge::remove_path(merged, path, root);
        }
    }
}

/// Takes the `changed` fields out of `others`' entries, returning each
/// one taken as a conflict.
fn take<'e>(others: impl Iterator<Item = &'e mut Entry>, changed: &FieldSet) -> Vec<Conflict> {
    let mut conflicts = Vec::new();
    for e in others {
        let taken = e.fields.intersection(changed);
        if taken.is_empty() {
            continue;
        }
        conflicts.extend(taken.paths().into_iter().map(|path| Conflict {
            manager: e.describe(),
            path,
        }));
        e.fields = e.fields.difference(&taken);
    }
    conflicts
}

/// The manager upstream credits with an unmanaged object's fields.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

fn before_first_apply(
    live: &Value,
    scope: Scope,
    api_version: &str,
    types: &TypeSource,
) -> Vec<Entry> {
    let fields = scope.restrict(&walk::compare(None, Some(live), &types.root()).added);
    vec![Entry {
        manager: BEFORE_FIRST_APPLY.to_string(),
        operation: Operation::Update,
        api_version: api_version.to_string(),
        time: Some(meta::now_rfc3339()),
        subresource: String::new(),
        fields,
    }]
}

/// The fields a configuration would own under `scope` (for tests and
/// diagnostics).
pub fn owned_by(config: &Value, scope: Scope, types: &TypeSource) -> Result<FieldSet, String> {
    walk::field_set(config, &types.root()).map(|s| scope.restrict(&s))
}
