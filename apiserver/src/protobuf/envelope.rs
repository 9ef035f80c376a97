//! The Kubernetes protobuf envelope: the magic `k8s\0` followed by a
//! `runtime.Unknown` (1 typeMeta {1 apiVersion, 2 kind}, 2 raw, 3
//! contentEncoding, 4 contentType) whose `raw` is the typed message.

use serde_json::{Map, Value};

use super::descriptor::{self, Table};
use super::wire::{LEN, Reader, put_bytes};
use super::{decode, encode};

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// The parts of a `runtime.Unknown` the server needs.
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
}

fn read_string(r: &mut Reader<'_>, wire: u8, what: &str) -> Result<String, String> {
    if wire != LEN {
        return Err(format!("{what} has wire type {wire}, want bytes"));
    }
    String::from_utf8(r.bytes()?.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

fn read_unknown(bytes: &[u8]) -> Result<Unknown<'_>, String> {
    let mut out = Unknown {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
    };
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => {
                let mut meta = Reader::new(r.bytes()?);
                while !meta.is_empty() {
                    match meta.key()? {
                        (1, wire) => {
                            out.api_version = read_string(&mut meta, wire, "typeMeta.apiVersion")?
                        }
                        (2, wire) => out.kind = read_string(&mut meta, wire, "typeMeta.kind")?,
                        (_, wire) => meta.skip(wire)?,
                    }
                }
            }
            (2, LEN) => out.raw = r.bytes()?,
            (3, wire) => {
                let encoding = read_string(&mut r, wire, "contentEncoding")?;
                if !encoding.is_empty() {
                    return Err(format!("content encoding {encoding:?} is not supported"));
                }
            }
            (4, wire) => {
                let content_type = read_string(&mut r, wire, "contentType")?;
                if !content_type.is_empty() && content_type != super::MEDIA_TYPE {
                    return Err(format!(
                        "embedded content type {content_type:?} is not supported"
                    ));
                }
            }
            (tag @ (1 | 2), wire) => {
                return Err(format!(
                    "Unknown field {tag} has wire type {wire}, want bytes"
                ));
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(out)
}

fn table() -> Result<&'static Table, String> {
    descriptor::table()
}

/// Decodes a protobuf request body into the JSON object a client would
/// have sent as JSON, with `apiVersion` and `kind` from the envelope.
pub fn decode_envelope(body: &[u8]) -> Result<Value, String> {
    let Some(rest) = body.strip_prefix(&MAGIC) else {
        return Err("the protobuf body does not start with the k8s\\0 prefix".into());
    };
    let unknown = read_unknown(rest)
        .map_err(|e| format!("the protobuf envelope could not be decoded: {e}"))?;
    if unknown.kind.is_empty() {
        return Err("the protobuf envelope names no kind".into());
    }
    let table = table()?;
    let id = table
        .for_kind(&unknown.api_version, &unknown.kind)
        .ok_or_else(|| {
            format!(
                "protobuf is not supported for {} {}; send JSON",
                unknown.api_version, unknown.kind
            )
        })?;
    let body = decode::message(table, id, unknown.raw, 0).map_err(|e| {
        format!(
            "the protobuf body of {} {} could not be decoded: {e}",
            unknown.api_version, unknown.kind
        )
    })?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(unknown.api_version));
    obj.insert("kind".into(), Value::String(unknown.kind));
    if let Value::Object(fields) = body {
        obj.extend(fields);
    }
    Ok(Value::Object(obj))
}

/// Encodes a JSON object (with `apiVersion` and `kind`) as a protobuf
/// body, for clients whose Accept header prefers protobuf.
pub fn encode_envelope(obj: &Value) -> Result<Vec<u8>, String> {
    let field = |name: &str| {
        obj.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
        return Err("an object needs apiVersion and kind to be encoded as protobuf".into());
    };
    let table = table()?;
    let id = table
        .for_kind(api_version, kind)
        .ok_or_else(|| format!("protobuf is not supported for {api_version} {kind}"))?;
    let mut raw = Vec::new();
    encode::message(table, id, obj, 0, &mut raw)?;
    let mut type_meta = Vec::new();
    put_bytes(&mut type_meta, 1, api_version.as_bytes());
    put_bytes(&mut type_meta, 2, kind.as_bytes());
    let mut out = MAGIC.to_vec();
    put_bytes(&mut out, 1, &type_meta);
    put_bytes(&mut out, 2, &raw);
    put_bytes(&mut out, 3, b"");
    put_bytes(&mut out, 4, b"");
    Ok(out)
}
