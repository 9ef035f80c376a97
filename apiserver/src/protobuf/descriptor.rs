//! The descriptor table: for every Kubernetes protobuf message the
//! transcoder knows, its fields (tag, JSON name, type), and which message
//! carries each apiVersion/kind. The Kubernetes protos have no reflection in
//! Rust, so the table is generated from k8s-pb's sources joined with
//! k8s-openapi's schemas (see `generate.rs`) into `descriptors.json`, which
//! is embedded and parsed once.
//!
//! File format: `{"kinds": {"apps/v1/Deployment": "api.apps.v1.Deployment",
//! "*/DeleteOptions": ...}, "messages": {"api.apps.v1.Deployment": [[tag,
//! "jsonName", "type"], ...]}}` where a type is a scalar (`string`, `bool`,
//! `int32`, `int64`, `double`, `float`, `bytes`) or a message name, prefixed
//! `[]` when repeated or `{}` for `map<string, T>`, suffixed `!` when the
//! field is required in the OpenAPI schema (Go emits it even when empty).
//! An empty JSON name marks a struct Go inlines into its parent.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

/// A protobuf scalar type used by the Kubernetes protos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    String,
    Bool,
    Int32,
    Int64,
    Double,
    Float,
    Bytes,
}

impl Scalar {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Scalar::String,
            "bool" => Scalar::Bool,
            "int32" => Scalar::Int32,
            "int64" => Scalar::Int64,
            "double" => Scalar::Double,
            "float" => Scalar::Float,
            "bytes" => Scalar::Bytes,
            _ => return None,
        })
    }
}

/// A message whose JSON form is not an object of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WellKnown {
    /// `meta.v1.Time`: RFC 3339 in seconds.
    Time,
    /// `meta.v1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `meta.v1.Duration`: a Go duration string.
    Duration,
    /// `runtime.RawExtension`, `meta.v1.FieldsV1`, apiextensions `JSON`:
    /// bytes that are JSON themselves.
    RawJson,
    /// `api.resource.Quantity`: a string.
    Quantity,
    /// `util.intstr.IntOrString`: a number or a string.
    IntOrString,
}

/// Messages handled by [`WellKnown`] rather than by their fields, by name.
pub(crate) const WELL_KNOWN: &[(&str, WellKnown)] = &[
    ("apimachinery.pkg.apis.meta.v1.Time", WellKnown::Time),
    (
        "apimachinery.pkg.apis.meta.v1.MicroTime",
        WellKnown::MicroTime,
    ),
    (
        "apimachinery.pkg.apis.meta.v1.Duration",
        WellKnown::Duration,
    ),
    ("apimachinery.pkg.apis.meta.v1.FieldsV1", WellKnown::RawJson),
    ("apimachinery.pkg.runtime.RawExtension", WellKnown::RawJson),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON",
        WellKnown::RawJson,
    ),
    (
        "apimachinery.pkg.api.resource.Quantity",
        WellKnown::Quantity,
    ),
    (
        "apimachinery.pkg.util.intstr.IntOrString",
        WellKnown::IntOrString,
    ),
];

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Scalar(Scalar),
    WellKnown(WellKnown),
    /// Index into [`Table::message`].
    Message(usize),
}

/// Whether a field holds one value, a list, or a `map<string, T>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Singular,
    Repeated,
    Map,
    /// A message Go embeds with `json:",inline"`: its fields sit in the
    /// parent's JSON object (`Volume` holds `VolumeSource`'s). Written with
    /// an empty JSON name in the file.
    Inline,
}

/// One field of a message.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub tag: u32,
    pub name: String,
    pub ty: Type,
    pub label: Label,
    /// Required in the OpenAPI schema: Go's JSON has no `omitempty` for it.
    pub required: bool,
}

/// One message: its name and fields sorted by tag.
#[derive(Debug)]
pub(crate) struct Message {
    pub name: String,
    pub fields: Vec<Field>,
}

impl Message {
    /// The field with protobuf number `tag`.
    pub fn field(&self, tag: u32) -> Option<&Field> {
        self.fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .map(|i| &self.fields[i])
    }
}

/// The parsed table.
#[derive(Debug)]
pub(crate) struct Table {
    messages: Vec<Message>,
    kinds: HashMap<String, usize>,
}

impl Table {
    /// The message at `id` (ids come from this table, so they are valid).
    pub fn message(&self, id: usize) -> &Message {
        &self.messages[id]
    }

    /// The message at `id`, if there is one.
    #[cfg(test)]
    pub fn get(&self, id: usize) -> Option<&Message> {
        self.messages.get(id)
    }

    /// The message carrying objects of `apiVersion`/`kind`; kinds every
    /// group-version registers (DeleteOptions, Status) match any version.
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        self.kinds
            .get(&format!("{api_version}/{kind}"))
            .or_else(|| self.kinds.get(&format!("*/{kind}")))
            .copied()
    }

    /// Parses the JSON form described in the module documentation.
    pub fn parse(text: &str) -> Result<Table, String> {
        #[derive(serde::Deserialize)]
        struct File {
            kinds: BTreeMap<String, String>,
            messages: BTreeMap<String, Vec<(u32, String, String)>>,
        }
        let file: File =
            serde_json::from_str(text).map_err(|e| format!("descriptor table: {e}"))?;
        let ids: HashMap<&str, usize> = file
            .messages
            .keys()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let resolve = |name: &str| -> Result<Type, String> {
            if let Some(s) = Scalar::parse(name) {
                return Ok(Type::Scalar(s));
            }
            if let Some((_, w)) = WELL_KNOWN.iter().find(|(n, _)| *n == name) {
                return Ok(Type::WellKnown(*w));
            }
            ids.get(name)
                .map(|i| Type::Message(*i))
                .ok_or_else(|| format!("descriptor table: unknown type {name}"))
        };
        let mut messages = Vec::with_capacity(file.messages.len());
        for (name, raw_fields) in &file.messages {
            let mut fields = Vec::with_capacity(raw_fields.len());
            for (tag, json_name, ty) in raw_fields {
                let (ty, required) = match ty.strip_suffix('!') {
                    Some(t) => (t, true),
                    None => (ty.as_str(), false),
                };
                let (label, ty) = if json_name.is_empty() {
                    (Label::Inline, ty)
                } else if let Some(t) = ty.strip_prefix("[]") {
                    (Label::Repeated, t)
                } else if let Some(t) = ty.strip_prefix("{}") {
                    (Label::Map, t)
                } else {
                    (Label::Singular, ty)
                };
                let ty = resolve(ty)?;
                if label == Label::Inline && !matches!(ty, Type::Message(_)) {
                    return Err(format!(
                        "descriptor table: {name} inlines a non-message field {tag}"
                    ));
                }
                fields.push(Field {
                    tag: *tag,
                    name: json_name.clone(),
                    ty,
                    label,
                    required,
                });
            }
            fields.sort_by_key(|f| f.tag);
            messages.push(Message {
                name: name.clone(),
                fields,
            });
        }
        let mut kinds = HashMap::new();
        for (gvk, message) in &file.kinds {
            let id = ids.get(message.as_str()).ok_or_else(|| {
                format!("descriptor table: {gvk} names unknown message {message}")
            })?;
            kinds.insert(gvk.clone(), *id);
        }
        Ok(Table { messages, kinds })
    }
}

/// The committed, generated table.
pub(crate) const DESCRIPTORS_JSON: &str = include_str!("descriptors.json");

static TABLE: LazyLock<Result<Table, String>> = LazyLock::new(|| Table::parse(DESCRIPTORS_JSON));

/// The table, parsed on first use.
pub(crate) fn table() -> Result<&'static Table, String> {
    TABLE.as_ref().map_err(Clone::clone)
}
