//! A custom resource's structural schema (a CRD version's
//! `openAPIV3Schema`) applied to its objects, in upstream's order: prune
//! unknown fields and non-nullable nulls, apply defaults, then validate.
//!
//! Schemas are JSON values; the keywords honoured are the ones a structural
//! schema may use: `type`, `properties`, `additionalProperties`, `items`,
//! `required`, `nullable`, `default`, `enum`, `minimum`/`maximum` (and
//! their exclusive forms), `multipleOf`, `minLength`/`maxLength`,
//! `pattern`, `format` (int32/int64), `minItems`/`maxItems`,
//! `uniqueItems`, `minProperties`/`maxProperties`, `allOf`/`anyOf`/`oneOf`/
//! `not`, and the Kubernetes extensions `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-embedded-resource`, `x-kubernetes-int-or-string` and
//! `x-kubernetes-list-type`/`x-kubernetes-list-map-keys`.

use serde_json::{Map, Value};

use crate::error::FieldError;

/// Deepest object nesting walked; deeper values are refused, not recursed.
const MAX_DEPTH: usize = 100;

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The schema of property `key` of an object schema: its declared
/// property, else `additionalProperties` when that is a schema.
fn property_schema<'a>(schema: &'a Value, key: &str) -> Option<&'a Value> {
    schema
        .get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
}

/// Removes what the schema does not declare (unless it preserves unknown
/// fields) and nulls in fields that are not nullable, as upstream's
/// pruning. `root` keeps `apiVersion`, `kind` and `metadata`, which every
/// object has whatever its schema says.
pub fn prune(value: &mut Value, schema: &Value, root: bool) {
    prune_at(value, schema, root, 0);
}

fn prune_at(value: &mut Value, schema: &Value, keep_meta: bool, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let keep_meta = keep_meta || flag(schema, "x-kubernetes-embedded-resource");
            map.retain(|k, v| {
                if keep_meta && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    return true;
                }
                match property_schema(schema, k) {
                    Some(s) => !(v.is_null() && !flag(s, "nullable") && s.get("default").is_none()),
                    None => preserve,
                }
            });
            for (k, v) in map.iter_mut() {
                if keep_meta && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(s) = property_schema(schema, k) {
                    prune_at(v, s, false, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for item in items {
                    prune_at(item, s, false, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Fills in `default`s of missing (or null, non-nullable) properties,
/// recursing into what is present, as upstream's structural defaulting.
pub fn apply_defaults(value: &mut Value, schema: &Value) {
    default_at(value, schema, 0);
}

fn default_at(value: &mut Value, schema: &Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = schema.get("properties") {
                for (k, s) in props {
                    let Some(default) = s.get("default") else {
                        continue;
                    };
                    let missing = match map.get(k) {
                        None => true,
                        Some(Value::Null) => !flag(s, "nullable"),
                        Some(_) => false,
                    };
                    if missing {
                        map.insert(k.clone(), default.clone());
                    }
                }
            }
            for (k, v) in map.iter_mut() {
                if let Some(s) = property_schema(schema, k) {
                    default_at(v, s, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for item in items {
                    default_at(item, s, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Every way `value` breaks `schema`, with upstream's field paths and
/// messages (`spec.replicas: Invalid value: 11: spec.replicas in body
/// should be less than or equal to 10`).
/// `old` is the stored object on an update, for transition rules
/// (`x-kubernetes-validations` using `oldSelf`).
pub fn validate(value: &Value, old: Option<&Value>, schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_at(value, old, schema, path, 0, &mut errs);
    errs
}

/// The stored counterpart of list item `item`: by key for lists of type
/// map (upstream correlates only those), else none.
fn old_item<'a>(item: &Value, old: Option<&'a Value>, schema: &Value) -> Option<&'a Value> {
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    old?.as_array()?
        .iter()
        .find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k)))
}

/// The JSON type name of a value as OpenAPI calls it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(declared: &str, value: &Value) -> bool {
    match declared {
        "number" => value.is_number(),
        "integer" => {
            type_name(value) == "integer"
                || value
                    .as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
        }
        other => type_name(value) == other,
    }
}

fn in_body(path: &str, detail: &str) -> String {
    format!("{path} in body {detail}")
}

fn validate_at(
    value: &Value,
    old: Option<&Value>,
    schema: &Value,
    path: &str,
    depth: usize,
    errs: &mut Vec<FieldError>,
) {
    if depth > MAX_DEPTH {
        errs.push(FieldError::invalid(
            path,
            &Value::Null,
            "object nesting is too deep",
        ));
        return;
    }
    if value.is_null() {
        if !flag(schema, "nullable") && schema.get("type").is_some() {
            errs.push(type_error(path, value, schema));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !(value.is_string() || type_matches("integer", value)) {
            errs.push(FieldError {
                reason: "FieldValueTypeInvalid",
                message: format!(
                    "{path}: Invalid value: {}: {}",
                    shown(value),
                    in_body(path, "must be of type integer-or-string")
                ),
                field: path.to_string(),
            });
            return;
        }
    } else if let Some(declared) = schema.get("type").and_then(Value::as_str)
        && !type_matches(declared, value)
    {
        errs.push(type_error(path, value, schema));
        return;
    }
    check_enum(value, schema, path, errs);
    match value {
        Value::Number(_) => check_number(value, schema, path, errs),
        Value::String(s) => check_string(s, value, schema, path, errs),
        Value::Array(items) => {
            check_array(items, value, schema, path, errs);
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    let old = old_item(item, old, schema);
                    validate_at(
                        item,
                        old,
                        item_schema,
                        &format!("{path}[{i}]"),
                        depth + 1,
                        errs,
                    );
                }
            }
        }
        Value::Object(map) => {
            check_object(map, value, schema, path, errs);
            let embedded = flag(schema, "x-kubernetes-embedded-resource");
            for (k, v) in map {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let old = old.and_then(|o| o.get(k));
                if let Some(s) = schema.get("properties").and_then(|p| p.get(k)) {
                    validate_at(v, old, s, &child_path(path, k), depth + 1, errs);
                } else if let Some(s) = schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    validate_at(v, old, s, &format!("{path}[{k}]"), depth + 1, errs);
                }
            }
        }
        _ => {}
    }
    check_combinators(value, schema, path, depth, errs);
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        super::cel::check(rules, value, old, path, errs);
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn type_error(path: &str, value: &Value, schema: &Value) -> FieldError {
    let declared = schema.get("type").and_then(Value::as_str).unwrap_or("");
    FieldError {
        reason: "FieldValueTypeInvalid",
        message: format!(
            "{path}: Invalid value: {}: {}",
            shown(value),
            in_body(
                path,
                &format!("must be of type {declared}: {}", shown(value))
            )
        ),
        field: path.to_string(),
    }
}

fn check_enum(value: &Value, schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.contains(value) {
        return;
    }
    let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
    errs.push(FieldError {
        reason: "FieldValueNotSupported",
        message: format!(
            "{path}: Unsupported value: {}: supported values: {}",
            value,
            list.join(", ")
        ),
        field: path.to_string(),
    });
}

fn check_number(value: &Value, schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(n) = value.as_f64() else { return };
    let num = |k: &str| schema.get(k).and_then(Value::as_f64);
    let mut fail =
        |detail: String| errs.push(FieldError::invalid(path, value, &in_body(path, &detail)));
    if let Some(max) = num("maximum") {
        if flag(schema, "exclusiveMaximum") && n >= max {
            fail(format!("should be less than {}", fmt_num(max)));
        } else if n > max {
            fail(format!("should be less than or equal to {}", fmt_num(max)));
        }
    }
    if let Some(min) = num("minimum") {
        if flag(schema, "exclusiveMinimum") && n <= min {
            fail(format!("should be greater than {}", fmt_num(min)));
        } else if n < min {
            fail(format!(
                "should be greater than or equal to {}",
                fmt_num(min)
            ));
        }
    }
    if let Some(m) = num("multipleOf").filter(|m| *m > 0.0)
        && (n / m).fract() != 0.0
    {
        fail(format!("should be a multiple of {}", fmt_num(m)));
    }
    let range = match schema.get("format").and_then(Value::as_str) {
        Some("int32") => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
        Some("int64") => Some((i64::MIN as f64, i64::MAX as f64)),
        _ => None,
    };
    if let Some((lo, hi)) = range
        && (n < lo || n > hi)
    {
        let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
        fail(format!("must be of type {format}"));
    }
}

/// Numbers as Go's `%v` prints them: integers without a fraction.
fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn check_string(s: &str, value: &Value, schema: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let len = s.chars().count() as u64;
    let int = |k: &str| schema.get(k).and_then(Value::as_u64);
    if let Some(max) = int("maxLength")
        && len > max
    {
        errs.push(FieldError {
            reason: "FieldValueTooLong",
            message: format!("{path}: Too long: may not be more than {max} bytes"),
            field: path.to_string(),
        });
    }
    if let Some(min) = int("minLength")
        && len < min
    {
        errs.push(FieldError::invalid(
            path,
            value,
            &in_body(path, &format!("should be at least {min} chars long")),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(s) => {}
            Ok(_) => errs.push(FieldError::invalid(
                path,
                value,
                &in_body(path, &format!("should match '{pattern}'")),
            )),
            // The CRD's validation refused bad patterns; a pattern the
            // regex engine cannot run is not the object's fault.
            Err(_) => {}
        }
    }
}

fn check_array(
    items: &[Value],
    value: &Value,
    schema: &Value,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let len = items.len() as u64;
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        errs.push(FieldError {
            reason: "FieldValueTooMany",
            message: format!("{path}: Too many: {len}: must have at most {max} items"),
            field: path.to_string(),
        });
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        errs.push(FieldError::invalid(
            path,
            value,
            &in_body(path, &format!("should have at least {min} items")),
        ));
    }
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    if flag(schema, "uniqueItems") || list_type == Some("set") {
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                errs.push(FieldError::duplicate(format!("{path}[{i}]"), item));
            }
        }
    }
    if list_type == Some("map") {
        let keys: Vec<&str> = schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let key_of = |item: &Value| -> Value {
            let m: Map<String, Value> = keys
                .iter()
                .map(|k| (k.to_string(), item.get(*k).cloned().unwrap_or(Value::Null)))
                .collect();
            Value::Object(m)
        };
        for (i, item) in items.iter().enumerate() {
            let key = key_of(item);
            if items[..i].iter().any(|earlier| key_of(earlier) == key) {
                errs.push(FieldError::duplicate(format!("{path}[{i}]"), &key));
            }
        }
    }
}

fn check_object(
    map: &Map<String, Value>,
    value: &Value,
    schema: &Value,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    for key in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(key) {
            errs.push(FieldError::required(child_path(path, key), ""));
        }
    }
    let len = map.len() as u64;
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && len > max
    {
        errs.push(FieldError {
            reason: "FieldValueTooMany",
            message: format!("{path}: Too many: {len}: must have at most {max} items"),
            field: path.to_string(),
        });
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && len < min
    {
        errs.push(FieldError::invalid(
            path,
            value,
            &in_body(path, &format!("should have at least {min} properties")),
        ));
    }
}

/// `allOf`, `anyOf`, `oneOf` and `not`, which structural schemas allow for
/// value validation only.
fn check_combinators(
    value: &Value,
    schema: &Value,
    path: &str,
    depth: usize,
    errs: &mut Vec<FieldError>,
) {
    let branches = |k: &str| -> Vec<&Value> {
        schema
            .get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    };
    let passes = |s: &Value| {
        let mut e = Vec::new();
        validate_at(value, None, s, path, depth + 1, &mut e);
        e.is_empty()
    };
    for s in branches("allOf") {
        validate_at(value, None, s, path, depth + 1, errs);
    }
    let any = branches("anyOf");
    if !any.is_empty() && !any.iter().any(|s| passes(s)) {
        errs.push(FieldError::invalid(
            path,
            value,
            &in_body(path, "must validate at least one schema (anyOf)"),
        ));
    }
    let one = branches("oneOf");
    if !one.is_empty() && one.iter().filter(|s| passes(s)).count() != 1 {
        errs.push(FieldError::invalid(
            path,
            value,
            &in_body(path, "must validate one and only one schema (oneOf)"),
        ));
    }
    if let Some(not) = schema.get("not")
        && passes(not)
    {
        errs.push(FieldError::invalid(
            path,
            value,
            &in_body(path, "must not validate the schema (not)"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crontab_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["cronSpec"],
                    "properties": {
                        "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                        "image": {"type": "string", "default": "busybox"},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set", "maxItems": 3},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "port": {"x-kubernetes-int-or-string": true},
                    }
                },
                "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
            }
        })
    }

    #[test]
    fn pruning_drops_undeclared_fields_but_keeps_metadata_and_preserved_subtrees() {
        let mut obj = json!({
            "apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "a"},
            "spec": {"cronSpec": "* * * * */5", "bogus": 1, "free": {"anything": {"goes": true}}, "labels": {"x": "y"}},
            "extra": true
        });
        prune(&mut obj, &crontab_schema(), true);
        assert_eq!(obj.get("extra"), None);
        assert_eq!(obj["spec"].get("bogus"), None);
        assert_eq!(obj["spec"]["free"]["anything"]["goes"], true);
        assert_eq!(obj["spec"]["labels"]["x"], "y");
        assert_eq!(obj["metadata"]["name"], "a");
    }

    #[test]
    fn nulls_in_non_nullable_fields_are_pruned() {
        let mut obj = json!({"spec": {"cronSpec": null, "replicas": 2}});
        prune(&mut obj, &crontab_schema(), true);
        assert_eq!(obj["spec"], json!({"replicas": 2}));
    }

    #[test]
    fn defaults_fill_missing_fields_only() {
        let mut obj = json!({"spec": {"cronSpec": "* * * * *"}});
        apply_defaults(&mut obj, &crontab_schema());
        assert_eq!(obj["spec"]["image"], "busybox");
        let mut set = json!({"spec": {"image": "nginx"}});
        apply_defaults(&mut set, &crontab_schema());
        assert_eq!(set["spec"]["image"], "nginx");
    }

    #[test]
    fn validation_reports_upstream_paths_and_messages() {
        let obj = json!({"spec": {"replicas": 11, "mode": "c", "cronSpec": "bad", "tags": ["x", "x"], "port": true}});
        let errs = validate(&obj, None, &crontab_schema(), "");
        let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
        assert!(messages.contains(
            &"spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"
        ), "{messages:?}");
        assert!(
            messages
                .contains(&"spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"")
        );
        assert!(messages.iter().any(|m| m.starts_with(
            "spec.cronSpec: Invalid value: \"bad\": spec.cronSpec in body should match"
        )));
        assert!(messages.contains(&"spec.tags[1]: Duplicate value: \"x\""));
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("spec.port: Invalid value: true"))
        );
        let missing = validate(&json!({"spec": {}}), None, &crontab_schema(), "");
        assert_eq!(missing, vec![FieldError::required("spec.cronSpec", "")]);
    }

    #[test]
    fn wrong_types_are_type_errors() {
        let errs = validate(
            &json!({"spec": {"cronSpec": "* * * * *", "replicas": "three"}}),
            None,
            &crontab_schema(),
            "",
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].reason, "FieldValueTypeInvalid");
        assert_eq!(
            errs[0].message,
            "spec.replicas: Invalid value: \"three\": spec.replicas in body must be of type integer: \"three\""
        );
        let ok = validate(
            &json!({"spec": {"cronSpec": "* * * * *", "replicas": 3, "port": "http"}}),
            None,
            &crontab_schema(),
            "",
        );
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn combinators_validate_values() {
        let schema = json!({"type": "object", "properties": {"v": {"type": "integer", "oneOf": [{"minimum": 5}, {"maximum": 2}]}}});
        assert!(validate(&json!({"v": 7}), None, &schema, "").is_empty());
        assert_eq!(validate(&json!({"v": 3}), None, &schema, "").len(), 1);
    }
}
