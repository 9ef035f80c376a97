//! `meta.k8s.io/v1` Table responses for `kubectl get`: the kind's columns
//! and cells as its strategy gives them (upstream's printers), and the
//! formatting helpers those share.

use serde_json::{Value, json};

use crate::registry::ResourceInfo;
use crate::registry::strategy::Column;

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter.
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A string cell at a JSON pointer, `<none>` when missing or empty, as
/// kubectl prints absent values.
pub fn text_or_none(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>")
        .to_string()
}

/// `<none>` for an empty string, as kubectl prints absent values.
pub fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// Upstream's short human duration (`5s`, `3m2s`, `4h`, `12d`, `2y`).
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rem = s % 60;
        return if rem == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rem}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rem = (s % 3600) / 60;
        return if rem == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rem}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if h < 24 * 8 {
        let rem = h % 24;
        return if rem == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rem}h")
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{d}d");
    }
    let y = d / 365;
    if h < 24 * 365 * 8 {
        let rem = d % 365;
        return if rem == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{rem}d")
        };
    }
    format!("{y}y")
}

/// The AGE cell: how long ago the object was created.
pub fn age(obj: &Value) -> String {
    since(creation_timestamp(obj))
}

/// The CREATED AT cell: the creation timestamp in RFC 3339 (UTC).
pub fn created_at(obj: &Value) -> String {
    match creation_timestamp(obj).parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "0001-01-01T00:00:00Z".into(),
    }
}

fn creation_timestamp(obj: &Value) -> &str {
    obj.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// How long ago an RFC 3339 timestamp was, as kubectl prints ages;
/// `<unknown>` when there is none.
pub fn since(timestamp: &str) -> String {
    match timestamp.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration((jiff::Timestamp::now() - t).get_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

/// The human duration from one RFC 3339 timestamp to another; `None`
/// unless both parse.
pub fn between(from: &str, to: &str) -> Option<String> {
    let from = from.parse::<jiff::Timestamp>().ok()?;
    let to = to.parse::<jiff::Timestamp>().ok()?;
    Some(human_duration((to - from).get_seconds()))
}

fn column_json(c: &Column) -> Value {
    json!({"name": c.name, "type": c.type_, "format": if c.name == "Name" { "name" } else { "" }, "description": c.description, "priority": c.priority})
}

/// Builds a Table of `objects`; `revision` and `continue_token` become the
/// table's list metadata.
pub fn build<'a>(
    info: &ResourceInfo,
    objects: impl Iterator<Item = &'a Value>,
    include: IncludeObject,
    revision: Option<i64>,
    continue_token: Option<&str>,
) -> Value {
    let columns: Vec<Value> = info.strategy.columns().iter().map(column_json).collect();
    let rows = objects
        .map(|obj| {
            let mut cells = info.strategy.cells(obj);
            cells.resize(columns.len(), Value::String(String::new()));
            row_with_object(cells, obj, include)
        })
        .collect();
    table(columns, rows, revision, continue_token)
}

/// One row: its cells and the object as `includeObject` asks.
fn row_with_object(cells: Vec<Value>, obj: &Value, include: IncludeObject) -> Value {
    let mut row = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => row["object"] = obj.clone(),
        IncludeObject::Metadata => {
            row["object"] = json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
                })
        }
    }
    row
}

/// The Table object around columns and rows.
fn table(
    columns: Vec<Value>,
    rows: Vec<Value>,
    revision: Option<i64>,
    continue_token: Option<&str>,
) -> Value {
    let mut metadata = serde_json::Map::new();
    if let Some(r) = revision {
        metadata.insert("resourceVersion".into(), json!(r.to_string()));
    }
    if let Some(c) = continue_token {
        metadata.insert("continue".into(), json!(c));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 5 + 60 * 3), "5h3m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }

    #[test]
    fn pod_table_has_upstreams_columns_in_order() {
        let registry = crate::registry::Registry::builtin();
        let pods = registry.lookup("", "v1", "pods").cloned();
        let Some(pods) = pods else {
            panic!("pods are served")
        };
        let pod = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
        let t = build(
            &pods,
            [&pod].into_iter(),
            IncludeObject::Metadata,
            Some(7),
            None,
        );
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        assert_eq!(t["rows"][0]["cells"][0], "web");
        assert_eq!(t["rows"][0]["cells"][1], "0/1");
        assert_eq!(t["rows"][0]["cells"][2], "Pending");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn every_kind_starts_with_name_and_fills_each_column() {
        let registry = crate::registry::Registry::builtin();
        let bare = json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}});
        for info in registry.all() {
            let columns = info.strategy.columns();
            let cells = info.strategy.cells(&bare);
            assert_eq!(cells.len(), columns.len(), "{}", info.kind);
            if info.kind != "Event" {
                assert_eq!(columns[0].name, "Name", "{}", info.kind);
                assert_eq!(cells[0], "x", "{}", info.kind);
            }
        }
        let limits = registry.lookup("", "v1", "limitranges").cloned();
        let Some(limits) = limits else {
            panic!("limit ranges are served")
        };
        let t = build(
            &limits,
            [&bare].into_iter(),
            IncludeObject::None,
            None,
            None,
        );
        assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
        assert_eq!(t["rows"][0]["cells"], json!(["x", "2020-01-01T00:00:00Z"]));
    }
}
