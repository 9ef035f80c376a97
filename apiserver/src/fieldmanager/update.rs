//! Ownership after a write: what changed between the stored object and
//! the one about to be stored goes to the writing manager (an `Update`
//! entry) and leaves every other manager; removed fields leave everyone.

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
    let before = old.map(managed::without);
    let after = managed::without(new);
    let root = types.root();
    let cmp = walk::compare(before.as_ref(), Some(&after), &root);
    let removed = scope.restrict(&cmp.removed);
    for e in &mut entries {
        e.fields = e.fields.difference(&removed);
    }
    if !opts.applied && !opts.manager.is_empty() {
        let changed = scope.restrict(&cmp.added.union(&cmp.modified));
        if !changed.is_empty() {
            let sub = opts.subresource.as_str();
            let mine = |e: &Entry| e.is(&opts.manager, Operation::Update, api_version, sub);
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
                    manager: opts.manager.clone(),
                    operation: Operation::Update,
                    api_version: api_version.to_string(),
                    time: now,
                    subresource: sub.to_string(),
                    fields: changed,
                }),
            }
        }
    }
    managed::encode(new, entries);
}
