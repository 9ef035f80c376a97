//! The ownership graph: every object the collector watches, by uid, with
//! its owner references and the reverse index from owners to dependents.
//! Changes to it say which uids need a look (upstream's `GraphBuilder`).

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::discovery::ApiResource;

/// The finalizer a foreground deletion holds its object with.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer an orphaning deletion holds its object with.
pub const ORPHAN: &str = "orphan";

/// What the collector knows of one object.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its resource.
    pub resource: ApiResource,
    /// Namespace (`None`: cluster-scoped).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// The version observed, for preconditions on writes.
    pub resource_version: String,
    /// Owner references.
    pub owners: Vec<OwnerReference>,
    /// Whether it has a deletion timestamp.
    pub deleting: bool,
    /// Its finalizers.
    pub finalizers: Vec<String>,
}

impl Node {
    /// The node of an object's metadata; `None` without a uid or name.
    pub fn from_meta(resource: &ApiResource, meta: &ObjectMeta) -> Option<(String, Node)> {
        let uid = meta.uid.clone()?;
        Some((
            uid,
            Node {
                resource: resource.clone(),
                namespace: meta.namespace.clone(),
                name: meta.name.clone()?,
                resource_version: meta.resource_version.clone().unwrap_or_default(),
                owners: meta.owner_references.clone().unwrap_or_default(),
                deleting: meta.deletion_timestamp.is_some(),
                finalizers: meta.finalizers.clone().unwrap_or_default(),
            },
        ))
    }

    /// Whether it is being deleted and holds `finalizer`.
    pub fn deleting_with(&self, finalizer: &str) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == finalizer)
    }
}

/// The graph of watched objects.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// One object.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The uids whose owner references name `owner`.
    pub fn dependents(&self, owner: &str) -> Vec<String> {
        self.dependents
            .get(owner)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Records an added or changed object; returns the uids to look at:
    /// the object itself, plus its dependents when it starts a deletion
    /// that concerns them.
    pub fn upsert(&mut self, uid: String, node: Node) -> Vec<String> {
        let mut look = vec![uid.clone()];
        let before = self.nodes.get(&uid);
        let newly = |f: &str| node.deleting_with(f) && !before.is_some_and(|b| b.deleting_with(f));
        if newly(FOREGROUND) || newly(ORPHAN) {
            look.extend(self.dependents(&uid));
        }
        if let Some(before) = before {
            for old in &before.owners {
                if let Some(set) = self.dependents.get_mut(&old.uid) {
                    set.remove(&uid);
                }
            }
        }
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
        self.nodes.insert(uid, node);
        look
    }

    /// Forgets a deleted object; returns the uids to look at: its
    /// dependents (their owner is gone) and its owners (one deleting in
    /// the foreground may now finish).
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let mut look = self.dependents(uid);
        if let Some(node) = self.nodes.remove(uid) {
            for owner in &node.owners {
                if let Some(set) = self.dependents.get_mut(&owner.uid) {
                    set.remove(uid);
                    if set.is_empty() && !self.nodes.contains_key(&owner.uid) {
                        self.dependents.remove(&owner.uid);
                    }
                }
                look.push(owner.uid.clone());
            }
        }
        look
    }

    /// Forgets every object of `resource` that is not in `present`, after
    /// a re-list of it; returns the uids to look at.
    pub fn retain_resource(
        &mut self,
        resource: &ApiResource,
        present: &HashSet<String>,
    ) -> Vec<String> {
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(uid, n)| n.resource == *resource && !present.contains(*uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        gone.iter().flat_map(|uid| self.remove(uid)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs() -> ApiResource {
        ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            plural: "replicasets".into(),
        }
    }

    fn node(owners: &[&str], deleting: bool, finalizers: &[&str]) -> Node {
        Node {
            resource: rs(),
            namespace: Some("default".into()),
            name: "x".into(),
            resource_version: "1".into(),
            owners: owners
                .iter()
                .map(|u| OwnerReference {
                    uid: u.to_string(),
                    ..Default::default()
                })
                .collect(),
            deleting,
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn dependents_follow_owner_references_and_deletions() {
        let mut g = Graph::default();
        g.upsert("owner".into(), node(&[], false, &[]));
        g.upsert("a".into(), node(&["owner"], false, &[]));
        g.upsert("b".into(), node(&["owner"], false, &[]));
        let mut deps = g.dependents("owner");
        deps.sort();
        assert_eq!(deps, ["a", "b"]);
        // The owner starting a foreground deletion makes its dependents due.
        let mut due = g.upsert("owner".into(), node(&[], true, &[FOREGROUND]));
        due.sort();
        assert_eq!(due, ["a", "b", "owner"]);
        // A dependent that drops its reference leaves the index.
        g.upsert("b".into(), node(&[], false, &[]));
        assert_eq!(g.dependents("owner"), ["a"]);
        // A removed dependent makes its owner due; a removed owner its dependents.
        assert_eq!(g.remove("a"), ["owner"]);
        g.upsert("c".into(), node(&["owner"], false, &[]));
        assert_eq!(g.remove("owner"), ["c"]);
    }
}
