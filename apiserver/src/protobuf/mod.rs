//! Kubernetes protobuf (`application/vnd.kubernetes.protobuf`) for a server
//! that stores and handles JSON: request bodies are transcoded to the JSON
//! a client would have sent, and JSON objects can be encoded for clients
//! that prefer protobuf. kubectl ≥ 1.32 sends typed commands (`create
//! namespace`, `create deployment`, ...) as protobuf and does not retry
//! with JSON.
//!
//! There are no per-kind types: a generated descriptor table
//! ([`descriptor`], `descriptors.json`) says for every message its fields'
//! numbers, JSON names and types, and one generic transcoder walks it.
//! Regenerate the table after bumping k8s-pb or k8s-openapi, or adding a
//! served kind:
//! `cargo test -p capstan-apiserver protobuf::generate -- --ignored`.

mod decode;
mod descriptor;
mod encode;
mod envelope;
#[cfg(test)]
mod generate;
#[cfg(test)]
mod tests;
mod well_known;
mod wire;

pub use envelope::{MAGIC, decode_envelope, encode_envelope};

/// The media type of Kubernetes protobuf, as clients send it in
/// Content-Type and Accept.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Whether kinds of `group` have protobuf messages here. CRDs do not: the
/// proto shape of their schemas (`JSONSchemaPropsOrArray`, raw JSON) is
/// not mapped, so they answer in JSON, which every protobuf client also
/// accepts ([`crate::negotiation::encode`] falls back), as custom
/// resources always do.
pub fn has_protobuf(group: &str) -> bool {
    group != "apiextensions.k8s.io"
}
