//! Protobuf bytes of a described message to the JSON object Go's
//! `encoding/json` would write for the same Go struct.
//!
//! Go's protobuf marshaller writes every non-pointer field, so a message
//! from client-go carries `generateName: ""`, `restartPolicy: ""` and the
//! like that its JSON would have left out (`omitempty`). Empty strings are
//! therefore dropped unless the field is required (no `omitempty`) or an
//! empty value means something (see [`KEEP_EMPTY`]). Zero numbers and
//! `false` are kept: for Go pointer fields (`replicas`, `runAsUser`,
//! `automountServiceAccountToken`) they are meaningful, and for the others
//! Go's semantics treat zero and absent alike; the wire cannot tell the two
//! apart. The exceptions are the few plain integers where zero means "none
//! yet, assign one" ([`DROP_ZERO`]), so that code checking for absence
//! sees what a JSON client would have sent.

use serde_json::{Map, Number, Value};

use super::descriptor::{Field, Label, Scalar, Table, Type};
use super::well_known;
use super::wire::{FIXED32, FIXED64, LEN, Reader, VARINT};

/// Deepest message nesting accepted; the Kubernetes types stay far below.
pub(crate) const MAX_DEPTH: usize = 64;

/// Optional string fields whose empty value differs from absent (Go
/// `*string` where `""` has a meaning of its own).
pub(crate) const KEEP_EMPTY: &[&str] = &["storageClassName", "volumeAttributesClassName"];

/// Plain (non-pointer, `omitempty`) integer fields whose zero means "not
/// set", left out when zero as Go's JSON would.
pub(crate) const DROP_ZERO: &[(&str, &str)] = &[
    ("apimachinery.pkg.apis.meta.v1.ObjectMeta", "generation"),
    ("api.core.v1.ContainerPort", "hostPort"),
    ("api.core.v1.ServicePort", "nodePort"),
    ("api.core.v1.ServiceSpec", "healthCheckNodePort"),
];

/// Decodes message `id` from `bytes` into a JSON object.
pub(crate) fn message(
    table: &Table,
    id: usize,
    bytes: &[u8],
    depth: usize,
) -> Result<Value, String> {
    let msg = table.message(id);
    if depth > MAX_DEPTH {
        return Err(format!(
            "{}: nested more than {MAX_DEPTH} levels deep",
            msg.name
        ));
    }
    let mut out = Map::new();
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        let Some(field) = msg.field(tag) else {
            r.skip(wire)?;
            continue;
        };
        let at = |e: String| format!("{}.{}: {e}", msg.name, field.name);
        match field.label {
            Label::Singular => match value(table, field.ty, wire, &mut r, depth).map_err(at)? {
                Value::String(s) if s.is_empty() && drops_empty(field) => {
                    out.remove(&field.name);
                }
                Value::Number(n)
                    if n.as_i64() == Some(0)
                        && DROP_ZERO.contains(&(msg.name.as_str(), field.name.as_str())) =>
                {
                    out.remove(&field.name);
                }
                v => {
                    out.insert(field.name.clone(), v);
                }
            },
            Label::Repeated => {
                let items = repeated(table, field, wire, &mut r, depth).map_err(at)?;
                match out
                    .entry(field.name.clone())
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    Value::Array(list) => list.extend(items),
                    other => *other = Value::Array(items),
                }
            }
            Label::Inline => {
                if let Value::Object(fields) =
                    value(table, field.ty, wire, &mut r, depth).map_err(at)?
                {
                    out.extend(fields);
                }
            }
            Label::Map => {
                if wire != LEN {
                    return Err(at(format!("map entry has wire type {wire}")));
                }
                let (k, v) =
                    map_entry(table, field.ty, r.bytes().map_err(at)?, depth).map_err(at)?;
                match out
                    .entry(field.name.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    Value::Object(map) => {
                        map.insert(k, v);
                    }
                    other => *other = Value::Object(Map::from_iter([(k, v)])),
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Whether an empty string in this singular field is left out, as Go's
/// `omitempty` would.
fn drops_empty(field: &Field) -> bool {
    matches!(field.ty, Type::Scalar(Scalar::String | Scalar::Bytes))
        && !field.required
        && !KEEP_EMPTY.contains(&field.name.as_str())
}

/// One value of type `ty` that arrived with wire type `wire`.
fn value(
    table: &Table,
    ty: Type,
    wire: u8,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<Value, String> {
    match ty {
        Type::Scalar(s) => scalar(s, wire, r),
        Type::WellKnown(w) => {
            expect(wire, LEN)?;
            well_known::decode(w, r.bytes()?)
        }
        Type::Message(id) => {
            expect(wire, LEN)?;
            message(table, id, r.bytes()?, depth + 1)
        }
    }
}

fn expect(wire: u8, want: u8) -> Result<(), String> {
    if wire == want {
        Ok(())
    } else {
        Err(format!("wire type {wire}, want {want}"))
    }
}

fn scalar(s: Scalar, wire: u8, r: &mut Reader<'_>) -> Result<Value, String> {
    let want = match s {
        Scalar::String | Scalar::Bytes => LEN,
        Scalar::Bool | Scalar::Int32 | Scalar::Int64 => VARINT,
        Scalar::Double => FIXED64,
        Scalar::Float => FIXED32,
    };
    expect(wire, want)?;
    Ok(match s {
        Scalar::String => Value::String(String::from_utf8_lossy(r.bytes()?).into_owned()),
        Scalar::Bytes => Value::String(well_known::base64_encode(r.bytes()?)),
        Scalar::Bool => Value::Bool(r.varint()? != 0),
        Scalar::Int32 => Value::from(r.varint()? as i32),
        Scalar::Int64 => Value::from(r.varint()? as i64),
        Scalar::Double => finite(f64::from_bits(r.fixed64()?))?,
        Scalar::Float => finite(f64::from(f32::from_bits(r.fixed32()?)))?,
    })
}

fn finite(f: f64) -> Result<Value, String> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{f} has no JSON form"))
}

/// The elements of one occurrence of a repeated field: one value, or a
/// packed run of numbers.
fn repeated(
    table: &Table,
    field: &Field,
    wire: u8,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<Vec<Value>, String> {
    let packable = match field.ty {
        Type::Scalar(Scalar::Bool | Scalar::Int32 | Scalar::Int64) => Some(VARINT),
        Type::Scalar(Scalar::Double) => Some(FIXED64),
        Type::Scalar(Scalar::Float) => Some(FIXED32),
        _ => None,
    };
    match (packable, field.ty) {
        (Some(element_wire), Type::Scalar(s)) if wire == LEN => {
            let mut packed = Reader::new(r.bytes()?);
            let mut items = Vec::new();
            while !packed.is_empty() {
                items.push(scalar(s, element_wire, &mut packed)?);
            }
            Ok(items)
        }
        _ => Ok(vec![value(table, field.ty, wire, r, depth)?]),
    }
}

/// A `map<string, T>` entry: field 1 the key, field 2 the value.
fn map_entry(
    table: &Table,
    ty: Type,
    bytes: &[u8],
    depth: usize,
) -> Result<(String, Value), String> {
    let mut r = Reader::new(bytes);
    let (mut key, mut val) = (String::new(), None);
    while !r.is_empty() {
        match r.key()? {
            (1, wire) => {
                expect(wire, LEN)?;
                key = String::from_utf8_lossy(r.bytes()?).into_owned();
            }
            (2, wire) => val = Some(value(table, ty, wire, &mut r, depth)?),
            (_, wire) => r.skip(wire)?,
        }
    }
    let val = match val {
        Some(v) => v,
        // An absent value is the type's zero value.
        None => match ty {
            Type::Scalar(Scalar::String | Scalar::Bytes) => Value::String(String::new()),
            Type::Scalar(Scalar::Bool) => Value::Bool(false),
            Type::Scalar(_) => Value::from(0),
            Type::WellKnown(w) => well_known::decode(w, &[])?,
            Type::Message(id) => message(table, id, &[], depth + 1)?,
        },
    };
    Ok((key, val))
}
