//! Ownership after a write: what changed between the stored object and
//! the one about to be stored goes to the writing manager (an `Update`
//! entry) and leaves every other manager; removed fields leave everyone.

use std::collections::BTreeMap;

use serde_json::Value;

use super::managed::{self, Entry, Operation};
use super::schema::TypeSource;
use super::walk;
use super::{Options, Scope};
use crate::registry::meta;

/// Sets `new`'s `managedFields` for a write of `old` (`None`: a create)
/// into `new` by `opts.manager` through `api_version`.
///
/// The entries to start from are the stored ones, unless the request sent
/// its own: `[]` or `[{}]` clears them, a valid non-empty list replaces
/// them (subresource writes cannot), anything else is ignored — upstream's
/// rules, so clients that drop the field do not wipe ownership.
pub fn track(
    old: Option<&Value>,
    new: &mut Value,
    opts: &Options,
    scope: Scope,
    api_version: &str,
    types: &TypeSource,
) {
    let stored = || {
        old.and_then(|o| managed::decode(o).ok().flatten())
            .unwrap_or_default()
    };
    let mut entries = if opts.applied {
        managed::decode(new).ok().flatten().unwrap_or_default()
    } else if !opts.subresource.is_empty() {
        stored()
    } else if managed::is_reset(new) {
        Vec::new()
    } else {
        match managed::decode(new) {
            Ok(Some(sent)) => sent,
            _ => stored(),
        }
    };
    let cmp = walk::compare(old, Some(new), &types.root());
    let removed = scope.restrict(&cmp.removed);
    for e in &mut entries {
        e.fields = e.fields.difference(&removed);
    }
    if opts.applied {
        // What the applier configured but the object does not hold (a
        // field the kind does not have, dropped by decoding) is not owned.
        let held = walk::compare(None, Some(new), &types.root()).added;
        for e in &mut entries {
            e.fields = e.fields.intersection(&held);
        }
    }
    if let Some(manager) = opts.manager.as_deref().filter(|_| !opts.applied) {
        let changed = scope.restrict(&cmp.added.union(&cmp.modified));
        if !changed.is_empty() {
            let sub = opts.subresource.as_str();
            let mine = |e: &Entry| e.is(manager, Operation::Update, api_version, sub);
            for e in entries.iter_mut().filter(|e| !mine(e)) {
                e.fields = e.fields.difference(&changed);
            }
            let now = Some(meta::now_rfc3339());
            match entries.iter_mut().find(|e| mine(e)) {
                Some(e) => {
                    e.fields = e.fields.union(&changed);
                    e.time = now;
                }
                None => entries.push(Entry {
                    manager: manager.to_string(),
                    operation: Operation::Update,
                    api_version: api_version.to_string(),
                    time: now,
                    subresource: sub.to_string(),
                    fields: changed,
                }),
            }
        }
    }
    cap_updaters(&mut entries);
    managed::encode(new, entries);
}

/// Most `Update` entries an object keeps, as upstream's default.
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// The entry older updates are merged into once there are too many.
pub const ANCIENT_CHANGES: &str = "ancient-changes";

/// Keeps at most [`MAX_UPDATE_MANAGERS`] `Update` entries: the oldest are
/// merged, per apiVersion, into an `ancient-changes` entry (upstream's
/// `capManagersManager`), so many one-off writers cannot grow the object
/// without bound.
pub fn cap_updaters(entries: &mut Vec<Entry>) {
    let is_update = |e: &Entry| e.operation == Operation::Update;
    let mut length = entries.iter().filter(|e| is_update(e)).count();
    if length <= MAX_UPDATE_MANAGERS {
        return;
    }
    let (mut updaters, appliers): (Vec<Entry>, Vec<Entry>) =
        std::mem::take(entries).into_iter().partition(is_update);
    updaters.sort_by(|a, b| (&a.time, &a.manager).cmp(&(&b.time, &b.manager)));
    let mut buckets: BTreeMap<String, Entry> = BTreeMap::new();
    let mut kept: Vec<Entry> = Vec::new();
    for e in updaters {
        if e.manager == ANCIENT_CHANGES && e.subresource.is_empty() {
            buckets.insert(e.api_version.clone(), e);
        } else {
            kept.push(e);
        }
    }
    let mut first_of_version: BTreeMap<String, usize> = BTreeMap::new();
    let mut merged: Vec<bool> = vec![false; kept.len()];
    for i in 0..kept.len() {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let version = kept[i].api_version.clone();
        if !buckets.contains_key(&version) {
            let Some(&first) = first_of_version.get(&version) else {
                first_of_version.insert(version, i);
                continue;
            };
            merged[first] = true;
            let mut bucket = kept[first].clone();
            bucket.manager = ANCIENT_CHANGES.to_string();
            bucket.subresource = String::new();
            buckets.insert(version.clone(), bucket);
        }
        if let Some(bucket) = buckets.get_mut(&version) {
            bucket.fields = bucket.fields.union(&kept[i].fields);
            bucket.time = kept[i].time.clone();
            merged[i] = true;
            length -= 1;
        }
    }
    *entries = appliers;
    entries.extend(
        kept.into_iter()
            .zip(merged)
            .filter(|(_, m)| !m)
            .map(|(e, _)| e),
    );
    entries.extend(buckets.into_values());
}
