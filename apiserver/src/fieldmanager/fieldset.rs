//! Sets of field paths, the unit of ownership in `managedFields`, and
//! their FieldsV1 JSON form.
//!
//! A path is a list of path elements, each kept in its FieldsV1 spelling:
//! `f:<field>` for a field of a struct or map, `k:<json object>` for an item
//! of an associative list (its key fields), `v:<json>` for an item of a set
//! and `i:<n>` for a position. A set is a tree of such elements where a
//! node is a *member* when the path ending there is owned itself; FieldsV1
//! writes a member with children as `".": {}` among them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A set of field paths, as a tree rooted at the object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// Whether the path ending at this node is in the set.
    member: bool,
    /// Children by path element (`f:spec`, `k:{"name":"a"}`, ...).
    children: BTreeMap<String, FieldSet>,
}

/// The path element of a struct or map field.
pub fn field(name: &str) -> String {
    format!("f:{name}")
}

/// The path element of an associative-list item with these key fields.
pub fn key(fields: &[(&str, &Value)]) -> String {
    let mut sorted: Vec<&(&str, &Value)> = fields.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let body: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(*k), v))
        .collect();
    format!("k:{{{}}}", body.join(","))
}

/// The path element of a set item.
pub fn value(v: &Value) -> String {
    format!("v:{v}")
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Marks the root of this (sub)set as a member.
    pub(crate) fn set_member(&mut self, member: bool) {
        self.member = member;
    }

    /// The subset under one path element.
    pub fn child(&self, pe: &str) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    /// The subset under `pe`, created empty if missing.
    pub(crate) fn child_mut(&mut self, pe: &str) -> &mut FieldSet {
        self.children.entry(pe.to_string()).or_default()
    }

    /// Puts a child subset in place (empty ones are not kept).
    pub(crate) fn put_child(&mut self, pe: String, child: FieldSet) {
        if child.is_empty() {
            self.children.remove(&pe);
        } else {
            self.children.insert(pe, child);
        }
    }

    /// Adds one path. The empty path is the root, which is never a member.
    pub fn insert(&mut self, path: &[String]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for pe in parents {
            node = node.child_mut(pe);
        }
        node.child_mut(last).member = true;
    }

    /// Whether `path` is a member.
    pub fn has(&self, path: &[String]) -> bool {
        self.subtree(path)
            .is_some_and(|s| s.member && !path.is_empty())
    }

    /// The subset rooted at `path`, if any path goes through it.
    pub fn subtree(&self, path: &[String]) -> Option<&FieldSet> {
        let mut node = self;
        for pe in path {
            node = node.children.get(pe)?;
        }
        Some(node)
    }

    /// Removes `path` and everything under it.
    pub fn remove_subtree(&mut self, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            *self = FieldSet::new();
            return;
        };
        if let Some(child) = self.children.get_mut(first) {
            child.remove_subtree(rest);
            if child.is_empty() || rest.is_empty() {
                self.children.remove(first);
            }
        }
    }

    /// Removes `path` itself, keeping what lies under it.
    pub fn remove(&mut self, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        if let Some(child) = self.children.get_mut(first) {
            if rest.is_empty() {
                child.member = false;
            } else {
                child.remove(rest);
            }
            if child.is_empty() {
                self.children.remove(first);
            }
        }
    }

    /// Only the paths at or under `path`.
    pub fn only(&self, path: &[String]) -> FieldSet {
        let mut out = FieldSet::new();
        if let Some(sub) = self.subtree(path) {
            let mut node = &mut out;
            for pe in path {
                node = node.child_mut(pe);
            }
            *node = sub.clone();
        }
        out.prune();
        out
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// Paths of this set that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            out.put_child(pe.clone(), rest);
        }
        out
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                out.put_child(pe.clone(), child.intersection(theirs));
            }
        }
        out
    }

    /// Every member path, parents before children, in element order.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// Drops subtrees that hold no member.
    fn prune(&mut self) {
        for child in self.children.values_mut() {
            child.prune();
        }
        self.children.retain(|_, c| !c.is_empty());
    }

    /// The FieldsV1 JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        for (pe, child) in &self.children {
            let mut inner = match child.to_fields_v1() {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            if child.member && !child.children.is_empty() {
                inner.insert(".".into(), Value::Object(Map::new()));
            }
            map.insert(pe.clone(), Value::Object(inner));
        }
        Value::Object(map)
    }

    /// Reads a FieldsV1 JSON document.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        let mut set = FieldSet::new();
        set.read_children(v, 0)?;
        Ok(set)
    }

    fn read_children(&mut self, v: &Value, depth: usize) -> Result<(), String> {
        if depth > 100 {
            return Err("FieldsV1 is nested too deeply".into());
        }
        let Value::Object(map) = v else {
            return Err(format!("FieldsV1 expects an object, got {v}"));
        };
        for (pe, inner) in map {
            if pe == "." {
                self.member = true;
                continue;
            }
            check_element(pe)?;
            let mut child = FieldSet::new();
            child.read_children(inner, depth + 1)?;
            if child.children.is_empty() {
                child.member = true;
            }
            self.children.insert(pe.clone(), child);
        }
        Ok(())
    }
}

fn check_element(pe: &str) -> Result<(), String> {
    let ok = match pe.split_once(':') {
        Some(("f", _)) => true,
        Some(("k", json)) => matches!(serde_json::from_str::<Value>(json), Ok(Value::Object(_))),
        Some(("v", json)) => serde_json::from_str::<Value>(json).is_ok(),
        Some(("i", n)) => n.parse::<usize>().is_ok(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid path element {pe:?}"))
    }
}

/// A path as upstream prints it in conflicts: `.spec.replicas`,
/// `.spec.containers[name="nginx"].image`, `.metadata.finalizers[="a"]`.
pub fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for pe in path {
        match pe.split_once(':') {
            Some(("f", name)) => {
                out.push('.');
                out.push_str(name);
            }
            Some(("k", json)) => {
                let fields: Vec<String> = match serde_json::from_str::<Value>(json) {
                    Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    _ => vec![json.to_string()],
                };
                out.push_str(&format!("[{}]", fields.join(",")));
            }
            Some(("v", json)) => out.push_str(&format!("[={json}]")),
            Some(("i", n)) => out.push_str(&format!("[{n}]")),
            _ => out.push_str(pe),
        }
    }
    out
}
