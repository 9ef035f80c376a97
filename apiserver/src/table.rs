//! `meta.k8s.io/v1` Table responses for `kubectl get`: NAME, the kind's
//! columns, AGE, then the wide (`-o wide`) columns.

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

fn age(obj: &Value) -> String {
    since(
        obj.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    )
}

/// How long ago an RFC 3339 timestamp was, as kubectl prints ages;
/// `<unknown>` when there is none.
pub fn since(timestamp: &str) -> String {
    match timestamp.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration((jiff::Timestamp::now() - t).get_seconds()),
        Err(_) => "<unknown>".into(),
    }
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
    let strategy = &info.strategy;
    if !strategy.name_and_age_columns() {
        return build_as_given(info, objects, include, revision, continue_token);
    }
    let kind_columns = strategy.columns();
    let (narrow, wide): (Vec<_>, Vec<_>) = kind_columns
        .iter()
        .enumerate()
        .partition(|(_, c)| c.priority == 0);
    let mut columns = vec![column_json(&Column {
        name: "Name",
        type_: "string",
        priority: 0,
        description: "Name must be unique within a namespace.",
    })];
    columns.extend(narrow.iter().map(|(_, c)| column_json(c)));
    columns.push(column_json(&Column { name: "Age", type_: "string", priority: 0, description: "CreationTimestamp is a timestamp representing the server time when this object was created." }));
    columns.extend(wide.iter().map(|(_, c)| column_json(c)));
    let rows: Vec<Value> = objects
        .map(|obj| {
            let cells_all = strategy.cells(obj);
            let cell = |i: usize| {
                cells_all
                    .get(i)
                    .cloned()
                    .unwrap_or(Value::String(String::new()))
            };
            let mut cells = vec![obj.pointer("/metadata/name").cloned().unwrap_or(json!(""))];
            cells.extend(narrow.iter().map(|(i, _)| cell(*i)));
            cells.push(json!(age(obj)));
            cells.extend(wide.iter().map(|(i, _)| cell(*i)));
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

/// A kind whose strategy lays out every column itself (events).
fn build_as_given<'a>(
    info: &ResourceInfo,
    objects: impl Iterator<Item = &'a Value>,
    include: IncludeObject,
    revision: Option<i64>,
    continue_token: Option<&str>,
) -> Value {
    let columns = info.strategy.columns().iter().map(column_json).collect();
    let rows = objects
        .map(|obj| row_with_object(info.strategy.cells(obj), obj, include))
        .collect();
    table(columns, rows, revision, continue_token)
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
}
