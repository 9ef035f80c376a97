//! Messages whose JSON form is not an object of their fields: times,
//! durations, quantities, int-or-string and embedded raw JSON. Each is
//! converted as upstream's custom `MarshalJSON`/`Marshal` pair does.

use base64::Engine;
use serde_json::{Value, json};

use super::descriptor::WellKnown;
use super::wire::{LEN, Reader, VARINT, put_bytes, put_varint};

/// Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z), which upstream
/// writes as JSON `null`.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// The fields of a small message, by tag, as raw varints or payloads.
#[derive(Default)]
struct Fields<'a> {
    varints: [Option<u64>; 4],
    payloads: [Option<&'a [u8]>; 4],
}

/// Reads fields 1 to 3 of a small message, checking wire types; later
/// occurrences win, unknown fields are skipped.
fn fields<'a>(
    data: &'a [u8],
    name: &str,
    varint_tags: &[u32],
    len_tags: &[u32],
) -> Result<Fields<'a>, String> {
    let mut out = Fields::default();
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        let slot = tag as usize;
        if varint_tags.contains(&tag) {
            if wire != VARINT {
                return Err(format!(
                    "{name}: field {tag} has wire type {wire}, want a varint"
                ));
            }
            out.varints[slot] = Some(r.varint()?);
        } else if len_tags.contains(&tag) {
            if wire != LEN {
                return Err(format!(
                    "{name}: field {tag} has wire type {wire}, want bytes"
                ));
            }
            out.payloads[slot] = Some(r.bytes()?);
        } else {
            r.skip(wire)?;
        }
    }
    Ok(out)
}

fn text(bytes: Option<&[u8]>) -> String {
    String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned()
}

fn format_time(seconds: i64, nanos: i32, micro: bool) -> Result<Value, String> {
    if seconds == GO_ZERO_TIME && nanos == 0 {
        return Ok(Value::Null);
    }
    let nanos = if micro { nanos / 1000 * 1000 } else { 0 };
    let ts = jiff::Timestamp::new(seconds, nanos).map_err(|e| format!("time out of range: {e}"))?;
    let pattern = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    jiff::fmt::strtime::format(pattern, ts)
        .map(Value::String)
        .map_err(|e| format!("formatting time: {e}"))
}

/// Converts the protobuf bytes of a well-known message to its JSON form.
pub(crate) fn decode(kind: WellKnown, data: &[u8]) -> Result<Value, String> {
    match kind {
        WellKnown::Time | WellKnown::MicroTime => {
            let f = fields(data, "Time", &[1, 2], &[])?;
            match f.varints[1] {
                // An empty message is Go's zero time.
                None if f.varints[2].is_none() => Ok(Value::Null),
                seconds => format_time(
                    seconds.unwrap_or(0) as i64,
                    f.varints[2].unwrap_or(0) as i32,
                    kind == WellKnown::MicroTime,
                ),
            }
        }
        WellKnown::Duration => {
            let f = fields(data, "Duration", &[1], &[])?;
            Ok(Value::String(format_go_duration(
                f.varints[1].unwrap_or(0) as i64
            )))
        }
        WellKnown::Quantity => {
            let f = fields(data, "Quantity", &[], &[1])?;
            Ok(Value::String(match f.payloads[1] {
                Some(s) => text(Some(s)),
                None => "0".to_string(),
            }))
        }
        WellKnown::IntOrString => {
            let f = fields(data, "IntOrString", &[1, 2], &[3])?;
            if f.varints[1] == Some(1) {
                Ok(Value::String(text(f.payloads[3])))
            } else {
                Ok(json!(f.varints[2].unwrap_or(0) as i32))
            }
        }
        WellKnown::RawJson => {
            let f = fields(data, "RawExtension", &[], &[1])?;
            match f.payloads[1] {
                None | Some([]) => Ok(Value::Null),
                Some(raw) if raw.starts_with(&super::envelope::MAGIC) => {
                    Err("embedded protobuf objects are not supported".into())
                }
                Some(raw) => serde_json::from_slice(raw)
                    .map_err(|e| format!("embedded raw JSON does not parse: {e}")),
            }
        }
    }
}

fn timestamp(value: &Value, what: &str) -> Result<jiff::Timestamp, String> {
    let s = value
        .as_str()
        .ok_or_else(|| format!("{what}: want an RFC 3339 string, got {value}"))?;
    s.parse::<jiff::Timestamp>()
        .map_err(|e| format!("{what}: {s:?} is not RFC 3339: {e}"))
}

/// Converts the JSON form of a well-known message to its protobuf bytes.
/// `null` is the caller's concern (times become an empty message).
pub(crate) fn encode(kind: WellKnown, value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match kind {
        WellKnown::Time | WellKnown::MicroTime => {
            let ts = timestamp(value, "time")?;
            put_varint(&mut out, 1, ts.as_second() as u64);
            put_varint(&mut out, 2, i64::from(ts.subsec_nanosecond()) as u64);
        }
        WellKnown::Duration => {
            let s = value
                .as_str()
                .ok_or_else(|| format!("duration: want a string, got {value}"))?;
            put_varint(&mut out, 1, parse_go_duration(s)? as u64);
        }
        WellKnown::Quantity => match value {
            Value::String(s) => put_bytes(&mut out, 1, s.as_bytes()),
            Value::Number(n) => put_bytes(&mut out, 1, n.to_string().as_bytes()),
            other => return Err(format!("quantity: want a string, got {other}")),
        },
        WellKnown::IntOrString => match value {
            Value::String(s) => {
                put_varint(&mut out, 1, 1);
                put_varint(&mut out, 2, 0);
                put_bytes(&mut out, 3, s.as_bytes());
            }
            Value::Number(n) => {
                let i = n
                    .as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(|| format!("int-or-string: {n} is not an int32"))?;
                put_varint(&mut out, 1, 0);
                put_varint(&mut out, 2, i64::from(i) as u64);
                put_bytes(&mut out, 3, b"");
            }
            other => {
                return Err(format!(
                    "int-or-string: want a number or a string, got {other}"
                ));
            }
        },
        WellKnown::RawJson => {
            let raw = serde_json::to_vec(value).map_err(|e| e.to_string())?;
            put_bytes(&mut out, 1, &raw);
        }
    }
    Ok(out)
}

/// Base64 as Go's `encoding/json` writes `[]byte`.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Base64 as Go's `encoding/json` reads `[]byte`.
pub(crate) fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("invalid base64: {e}"))
}

/// Formats nanoseconds as Go's `time.Duration.String` does: `1h0m0s`,
/// `1.5s`, `300ms`, `0s`.
pub(crate) fn format_go_duration(nanos: i64) -> String {
    fn with_fraction(value: u64, digits: u32) -> String {
        let scale = 10u64.pow(digits);
        let (whole, frac) = (value / scale, value % scale);
        if frac == 0 {
            return whole.to_string();
        }
        let frac = format!("{frac:0width$}", width = digits as usize);
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let body = if n < 1_000 {
        format!("{n}ns")
    } else if n < 1_000_000 {
        format!("{}µs", with_fraction(n, 3))
    } else if n < 1_000_000_000 {
        format!("{}ms", with_fraction(n, 6))
    } else {
        let secs = n / 1_000_000_000;
        let seconds = format!("{}s", with_fraction(n % 60_000_000_000, 9));
        let (h, m) = (secs / 3600, (secs / 60) % 60);
        if h > 0 {
            format!("{h}h{m}m{seconds}")
        } else if m > 0 {
            format!("{m}m{seconds}")
        } else {
            seconds
        }
    };
    format!("{sign}{body}")
}

/// Parses a Go duration string (`1h30m`, `1.5s`, `-300ms`) to nanoseconds.
pub(crate) fn parse_go_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(bad)?;
        let mut unit_scale = scale;
        for d in frac.bytes() {
            if !d.is_ascii_digit() {
                return Err(bad());
            }
            unit_scale /= 10;
            part += i128::from(d - b'0') * unit_scale;
        }
        total = total
            .checked_add(part)
            .filter(|t| *t <= i128::from(i64::MAX))
            .ok_or_else(bad)?;
        rest = tail;
    }
    let total = total as i64;
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_format_and_parse_like_go() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (300_000_000, "300ms"),
            (1_500_000_000, "1.5s"),
            (3_600_000_000_000, "1h0m0s"),
            (5_430_000_000_000, "1h30m30s"),
            (-90_000_000_000, "-1m30s"),
        ] {
            assert_eq!(format_go_duration(nanos), text);
            assert_eq!(parse_go_duration(text), Ok(nanos), "{text}");
        }
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("1d").is_err());
        assert!(parse_go_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn times_round_trip_and_zero_is_null() {
        let t = encode(WellKnown::Time, &json!("2026-01-02T03:04:05Z")).unwrap_or_default();
        assert_eq!(
            decode(WellKnown::Time, &t),
            Ok(json!("2026-01-02T03:04:05Z"))
        );
        let m =
            encode(WellKnown::MicroTime, &json!("2026-01-02T03:04:05.123456Z")).unwrap_or_default();
        assert_eq!(
            decode(WellKnown::MicroTime, &m),
            Ok(json!("2026-01-02T03:04:05.123456Z"))
        );
        let whole =
            encode(WellKnown::MicroTime, &json!("2026-01-02T03:04:05Z")).unwrap_or_default();
        assert_eq!(
            decode(WellKnown::MicroTime, &whole),
            Ok(json!("2026-01-02T03:04:05.000000Z"))
        );
        assert_eq!(decode(WellKnown::Time, &[]), Ok(Value::Null));
        let mut zero = Vec::new();
        put_varint(&mut zero, 1, GO_ZERO_TIME as u64);
        assert_eq!(decode(WellKnown::Time, &zero), Ok(Value::Null));
        assert!(encode(WellKnown::Time, &json!("yesterday")).is_err());
    }

    #[test]
    fn int_or_string_and_quantity_forms() {
        for v in [json!(8080), json!("http"), json!(-1)] {
            let b = encode(WellKnown::IntOrString, &v).unwrap_or_default();
            assert_eq!(decode(WellKnown::IntOrString, &b), Ok(v));
        }
        let q = encode(WellKnown::Quantity, &json!("500m")).unwrap_or_default();
        assert_eq!(decode(WellKnown::Quantity, &q), Ok(json!("500m")));
        assert!(encode(WellKnown::IntOrString, &json!(1u64 << 40)).is_err());
    }
}
