//! Where a kind's list and map semantics come from. Ownership is tracked
//! per list item only where upstream's structured-merge-diff does: lists
//! are atomic (owned whole), sets (items by value) or associative (items
//! by key fields); maps and structs are granular unless marked atomic.
//!
//! Built-in kinds learn this from their schemars schema plus upstream's
//! patch tags (the strategic merge table); custom resources from their
//! `openAPIV3Schema` extensions (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`).

use std::sync::Arc;

use serde_json::Value;

use crate::registry::ResourceInfo;
use crate::strategicmerge::{FieldMeta, KindSchema, Node};

/// How a list's items are owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// The list is one value.
    Atomic,
    /// Items are scalars owned one by one, by value.
    Set,
    /// Items are objects owned one by one, by these key fields.
    Map(Vec<String>),
}

/// The source of list and map semantics for one kind: a trait-like
/// choice between built-in tags and OpenAPI extensions, so custom
/// resources can bring their own schema.
#[derive(Clone)]
pub struct TypeSource(Source);

#[derive(Clone)]
enum Source {
    /// A built-in kind: its schema and upstream's patch tags.
    Builtin(Arc<KindSchema>),
    /// A structural OpenAPI v3 schema with `x-kubernetes-*` extensions.
    OpenApi(Arc<Value>),
    /// Nothing known: maps granular, lists atomic.
    Deduced,
}

impl TypeSource {
    /// The semantics of a served kind: a custom resource's from its
    /// structural schema, a built-in kind's from its type and patch tags.
    pub fn of(info: &ResourceInfo) -> Self {
        match info.strategy.structural_schema() {
            Some(schema) => TypeSource(Source::OpenApi(schema)),
            None => TypeSource(Source::Builtin(crate::strategicmerge::kind_schema(info))),
        }
    }

    /// The semantics a structural OpenAPI v3 schema declares (a
    /// CustomResourceDefinition's `openAPIV3Schema`).
    pub fn openapi(schema: Value) -> Self {
        TypeSource(Source::OpenApi(Arc::new(schema)))
    }

    /// No schema: maps granular, lists atomic.
    pub fn deduced() -> Self {
        TypeSource(Source::Deduced)
    }

    /// The root of the object.
    pub fn root(&self) -> Shape<'_> {
        Shape(match &self.0 {
            Source::Builtin(k) => Pos::Builtin {
                node: Node::new(&k.defs, Some(&k.root)),
                list: ListType::Atomic,
            },
            Source::OpenApi(v) => Pos::OpenApi(Some(v)),
            Source::Deduced => Pos::Deduced,
        })
    }
}

/// A position in a kind's type, reached by field names and list items.
#[derive(Clone)]
pub struct Shape<'a>(Pos<'a>);

#[derive(Clone)]
enum Pos<'a> {
    /// Within a built-in kind; `list` is how the field holding this value
    /// (if a list) owns its items, decided by the parent's tags.
    Builtin {
        /// The schema position.
        node: Node<'a>,
        /// The list semantics of this position.
        list: ListType,
    },
    /// Within an OpenAPI v3 schema (`None`: below what it describes).
    OpenApi(Option<&'a Value>),
    /// Nothing known.
    Deduced,
}

/// Definitions upstream marks `+structType=atomic` (owned as one value).
const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
];

/// Associative lists whose keys upstream widened beyond the patch merge
/// key (`+listMapKey` pairs).
const MAP_KEYS: &[(&str, &str, &[&str])] = &[
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        &["containerPort", "protocol"],
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        &["containerPort", "protocol"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        &["port", "protocol"],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        &["topologyKey", "whenUnsatisfiable"],
    ),
];

/// Defaults of key fields, used when an item omits them (as upstream's
/// schemas carry `default` for these keys).
const KEY_DEFAULTS: &[(&str, &str)] = &[("protocol", "TCP")];

fn builtin_list(parent: Option<&str>, field: &str, meta: FieldMeta) -> ListType {
    if let Some(parent) = parent
        && let Some((_, _, keys)) = MAP_KEYS
            .iter()
            .find(|(d, f, _)| *d == parent && *f == field)
    {
        return ListType::Map(keys.iter().map(|k| k.to_string()).collect());
    }
    if !meta.has("merge") {
        ListType::Atomic
    } else if meta.merge_key.is_empty() {
        ListType::Set
    } else {
        ListType::Map(vec![meta.merge_key.to_string()])
    }
}

impl<'a> Shape<'a> {
    /// The shape of field `name` of this struct or map.
    pub fn field(&self, name: &str) -> Shape<'a> {
        Shape(match &self.0 {
            Pos::Builtin { node, .. } => {
                let (child, meta) = node.field(name);
                Pos::Builtin {
                    node: child,
                    list: builtin_list(node.name, name, meta),
                }
            }
            Pos::OpenApi(Some(s)) => {
                let prop = s
                    .get("properties")
                    .and_then(|p| p.get(name))
                    .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()));
                Pos::OpenApi(prop)
            }
            Pos::OpenApi(None) => Pos::OpenApi(None),
            Pos::Deduced => Pos::Deduced,
        })
    }

    /// The shape of this list's items.
    pub fn items(&self) -> Shape<'a> {
        Shape(match &self.0 {
            Pos::Builtin { node, .. } => Pos::Builtin {
                node: node.items(),
                list: ListType::Atomic,
            },
            Pos::OpenApi(Some(s)) => Pos::OpenApi(s.get("items")),
            Pos::OpenApi(None) => Pos::OpenApi(None),
            Pos::Deduced => Pos::Deduced,
        })
    }

    /// How this list owns its items.
    pub fn list_type(&self) -> ListType {
        match &self.0 {
            Pos::Builtin { list, .. } => list.clone(),
            Pos::OpenApi(Some(s)) => {
                match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("set") => ListType::Set,
                    Some("map") => ListType::Map(
                        s.get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|keys| {
                                keys.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_string)
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    _ => ListType::Atomic,
                }
            }
            Pos::OpenApi(None) | Pos::Deduced => ListType::Atomic,
        }
    }

    /// Whether this struct or map is owned as one value.
    pub fn is_atomic_map(&self) -> bool {
        match &self.0 {
            Pos::Builtin { node, .. } => node.name.is_some_and(|n| ATOMIC_STRUCTS.contains(&n)),
            Pos::OpenApi(Some(s)) => {
                s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
            }
            Pos::OpenApi(None) | Pos::Deduced => false,
        }
    }

    /// Whether the kind's zero value has field `name` (of shape `child`)
    /// of this struct, given that it has this struct: for built-ins, Go
    /// always serialises structs and fields without `omitempty` (required
    /// ones); a custom resource's zero value is an empty object.
    pub fn in_zero_value(&self, name: &str, child: &Shape<'_>) -> bool {
        let Pos::Builtin { node, .. } = &self.0 else {
            return false;
        };
        let required = node
            .schema
            .and_then(|s| s.get("required"))
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|f| f == name));
        let is_struct = match &child.0 {
            Pos::Builtin { node, .. } => node.schema.is_some_and(|s| s.get("properties").is_some()),
            _ => false,
        };
        required || is_struct
    }

    /// The default of key field `key` of this list's items, if the schema
    /// gives one.
    pub fn key_default(&self, key: &str) -> Option<Value> {
        match &self.0 {
            Pos::Builtin { .. } => KEY_DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| Value::from(*v)),
            Pos::OpenApi(Some(s)) => s
                .get("items")
                .and_then(|i| i.get("properties"))
                .and_then(|p| p.get(key))
                .and_then(|k| k.get("default"))
                .cloned(),
            Pos::OpenApi(None) | Pos::Deduced => None,
        }
    }
}
