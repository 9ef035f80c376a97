//! A JSON object to the protobuf bytes of a described message, in field
//! number order with map keys sorted, as Go's generated marshallers write.
//! JSON keys the message has no field for are ignored; `null` is treated
//! as absent, except a `null` time, which Go writes as an empty message.

use serde_json::Value;

use super::decode::MAX_DEPTH;
use super::descriptor::{Label, Scalar, Table, Type, WellKnown};
use super::well_known;
use super::wire::{FIXED32, FIXED64, put_bytes, put_key, put_varint};

/// Appends the fields of message `id` taken from `value` to `out`.
pub(crate) fn message(
    table: &Table,
    id: usize,
    value: &Value,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let msg = table.message(id);
    if depth > MAX_DEPTH {
        return Err(format!(
            "{}: nested more than {MAX_DEPTH} levels deep",
            msg.name
        ));
    }
    let Value::Object(obj) = value else {
        return Err(format!("{}: want an object, got {value}", msg.name));
    };
    for field in &msg.fields {
        let at = |e: String| format!("{}.{}: {e}", msg.name, field.name);
        if field.label == Label::Inline {
            // The embedded struct's fields are the parent's own keys.
            put_value(table, field.tag, field.ty, value, depth, out).map_err(at)?;
            continue;
        }
        let Some(v) = obj.get(&field.name) else {
            continue;
        };
        match (field.label, v) {
            (Label::Singular, Value::Null) => {
                if matches!(
                    field.ty,
                    Type::WellKnown(WellKnown::Time | WellKnown::MicroTime)
                ) {
                    put_bytes(out, field.tag, &[]);
                }
            }
            (_, Value::Null) => {}
            (Label::Singular, v) => {
                put_value(table, field.tag, field.ty, v, depth, out).map_err(at)?
            }
            (Label::Repeated, Value::Array(items)) => {
                for item in items {
                    put_value(table, field.tag, field.ty, item, depth, out).map_err(at)?;
                }
            }
            (Label::Map, Value::Object(map)) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (k, item) in entries {
                    let mut entry = Vec::new();
                    put_bytes(&mut entry, 1, k.as_bytes());
                    if !item.is_null() {
                        put_value(table, 2, field.ty, item, depth, &mut entry).map_err(at)?;
                    }
                    put_bytes(out, field.tag, &entry);
                }
            }
            (Label::Repeated, other) => return Err(at(format!("want an array, got {other}"))),
            (Label::Map | Label::Inline, other) => {
                return Err(at(format!("want an object, got {other}")));
            }
        }
    }
    Ok(())
}

/// Appends one value of type `ty` as field `tag`.
fn put_value(
    table: &Table,
    tag: u32,
    ty: Type,
    v: &Value,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match ty {
        Type::Scalar(s) => put_scalar(tag, s, v, out),
        Type::WellKnown(w) => {
            put_bytes(out, tag, &well_known::encode(w, v)?);
            Ok(())
        }
        Type::Message(id) => {
            let mut inner = Vec::new();
            message(table, id, v, depth + 1, &mut inner)?;
            put_bytes(out, tag, &inner);
            Ok(())
        }
    }
}

/// An integer from a JSON number, accepting integral floats (`3.0`).
fn integer(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
            .map(|f| f as i64)
    })
}

fn put_scalar(tag: u32, s: Scalar, v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    let want = |what: &str| format!("want {what}, got {v}");
    match s {
        Scalar::String => put_bytes(
            out,
            tag,
            v.as_str().ok_or_else(|| want("a string"))?.as_bytes(),
        ),
        Scalar::Bytes => put_bytes(
            out,
            tag,
            &well_known::base64_decode(v.as_str().ok_or_else(|| want("a base64 string"))?)?,
        ),
        Scalar::Bool => put_varint(
            out,
            tag,
            u64::from(v.as_bool().ok_or_else(|| want("a boolean"))?),
        ),
        Scalar::Int32 => {
            let i = integer(v)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(|| want("an int32"))?;
            put_varint(out, tag, i64::from(i) as u64);
        }
        Scalar::Int64 => put_varint(out, tag, integer(v).ok_or_else(|| want("an int64"))? as u64),
        Scalar::Double => {
            put_key(out, tag, FIXED64);
            out.extend_from_slice(&v.as_f64().ok_or_else(|| want("a number"))?.to_le_bytes());
        }
        Scalar::Float => {
            put_key(out, tag, FIXED32);
            out.extend_from_slice(
                &(v.as_f64().ok_or_else(|| want("a number"))? as f32).to_le_bytes(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::wire::LEN;
    use super::*;

    #[test]
    fn lengths_use_the_len_wire_type() {
        let mut out = Vec::new();
        put_scalar(1, Scalar::String, &Value::from("ab"), &mut out).unwrap_or_default();
        assert_eq!(out, [(1 << 3) | LEN, 2, b'a', b'b']);
        let mut neg = Vec::new();
        put_scalar(2, Scalar::Int32, &Value::from(-1), &mut neg).unwrap_or_default();
        assert_eq!(
            neg.len(),
            11,
            "negative int32 is a sign-extended 10-byte varint"
        );
        assert!(put_scalar(1, Scalar::Int32, &Value::from(1u64 << 33), &mut Vec::new()).is_err());
    }
}
