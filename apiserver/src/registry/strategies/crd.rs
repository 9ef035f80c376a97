//! CustomResourceDefinitions (apiextensions.k8s.io/v1): upstream's
//! validation of names, versions, schemas, subresources and printer
//! columns, and the cleanup finalizer that lets the CRD controller
//! ([`crate::crd`]) delete every custom object before the CRD goes.

use serde_json::{Value, json};

use super::super::meta;
use super::super::strategy::Strategy;
use crate::crd::jsonpath::JsonPath;
use crate::error::FieldError;

/// The finalizer the CRD controller removes once no objects are left.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Column types a printer column may declare.
const COLUMN_TYPES: &[&str] = &["integer", "number", "string", "boolean", "date"];

/// Strategy of CustomResourceDefinitions.
pub struct CrdStrategy;

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn validate_names(spec: &Value, errs: &mut Vec<FieldError>) {
    let plural = text(spec, "/names/plural");
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    } else if !is_dns_label(plural) {
        errs.push(FieldError::invalid(
            "spec.names.plural",
            &json!(plural),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
        ));
    }
    let singular = text(spec, "/names/singular");
    if !singular.is_empty() && !is_dns_label(singular) {
        errs.push(FieldError::invalid(
            "spec.names.singular",
            &json!(singular),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
        ));
    }
    for field in ["kind", "listKind"] {
        let kind = text(spec, &format!("/names/{field}"));
        if kind.is_empty() {
            if field == "kind" {
                errs.push(FieldError::required("spec.names.kind", ""));
            }
            continue;
        }
        let lower = kind.to_ascii_lowercase();
        if !is_dns_label(&lower) || !kind.starts_with(|c: char| c.is_ascii_alphabetic()) {
            errs.push(FieldError::invalid(
                format!("spec.names.{field}"),
                &json!(kind),
                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
            ));
        }
    }
    for (i, short) in spec
        .pointer("/names/shortNames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !short.as_str().is_some_and(is_dns_label) {
            errs.push(FieldError::invalid(
                format!("spec.names.shortNames[{i}]"),
                short,
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
            ));
        }
    }
}

/// Upstream's structural-schema rules, as far as serving needs them: a
/// root of type object, a type on every specified field (unless it is
/// int-or-string or keeps unknown fields), patterns that compile.
fn validate_schema(schema: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let has_type = schema.get("type").and_then(Value::as_str).is_some();
    let free = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || schema
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    if root {
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            errs.push(FieldError::required(
                format!("{path}.type"),
                "must not be empty at the root",
            ));
        }
    } else if !has_type && !free {
        errs.push(FieldError::required(
            format!("{path}.type"),
            "must not be empty for specified object fields",
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Err(e) = regex::Regex::new(pattern)
    {
        errs.push(FieldError::invalid(
            format!("{path}.pattern"),
            &json!(pattern),
            &format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }
    for (i, rule) in schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
        if let Err(e) = crate::crd::cel::compile(text) {
            errs.push(FieldError::invalid(
                format!("{path}.x-kubernetes-validations[{i}].rule"),
                &json!(text),
                &format!("compilation failed: {e}"),
            ));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            validate_schema(s, &format!("{path}.properties[{k}]"), false, errs);
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        validate_schema(items, &format!("{path}.items"), false, errs);
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        validate_schema(extra, &format!("{path}.additionalProperties"), false, errs);
    }
}

fn validate_version(version: &Value, at: &str, errs: &mut Vec<FieldError>) {
    if text(version, "/name").is_empty() {
        errs.push(FieldError::required(format!("{at}.name"), ""));
    }
    match version.pointer("/schema/openAPIV3Schema") {
        None => errs.push(FieldError::required(
            format!("{at}.schema.openAPIV3Schema"),
            "schemas are required",
        )),
        Some(s) => validate_schema(s, &format!("{at}.schema.openAPIV3Schema"), true, errs),
    }
    if let Some(scale) = version.pointer("/subresources/scale") {
        for (field, prefix) in [
            ("specReplicasPath", ".spec."),
            ("statusReplicasPath", ".status."),
        ] {
            let p = text(scale, &format!("/{field}"));
            if p.is_empty() {
                errs.push(FieldError::required(
                    format!("{at}.subresources.scale.{field}"),
                    "",
                ));
            } else if !p.starts_with(prefix)
                || JsonPath::parse(p)
                    .ok()
                    .and_then(|j| j.fields().map(|_| ()))
                    .is_none()
            {
                errs.push(FieldError::invalid(
                    format!("{at}.subresources.scale.{field}"),
                    &json!(p),
                    &format!(
                        "should be a json path under {}",
                        prefix.trim_end_matches('.')
                    ),
                ));
            }
        }
    }
    for (i, c) in version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{at}.additionalPrinterColumns[{i}]");
        if text(c, "/name").is_empty() {
            errs.push(FieldError::required(format!("{at}.name"), ""));
        }
        let type_ = text(c, "/type");
        if !COLUMN_TYPES.contains(&type_) {
            errs.push(FieldError::not_supported(
                format!("{at}.type"),
                &json!(type_),
                COLUMN_TYPES,
            ));
        }
        let path = text(c, "/jsonPath");
        if path.is_empty() {
            errs.push(FieldError::required(format!("{at}.jsonPath"), ""));
        } else if let Err(e) = JsonPath::parse(path) {
            errs.push(FieldError::invalid(
                format!("{at}.jsonPath"),
                &json!(path),
                &e,
            ));
        }
    }
}

impl Strategy for CrdStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let mut finalizers = meta::finalizers(obj);
        if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
            finalizers.push(CLEANUP_FINALIZER.to_string());
            meta::set_meta(obj, "finalizers", json!(finalizers));
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = &obj["spec"];
        let group = text(spec, "/group");
        if group.is_empty() {
            errs.push(FieldError::required("spec.group", ""));
        } else if !group.contains('.')
            || group
                .split('.')
                .any(|l| !is_dns_label(l) && !l.starts_with(|c: char| c.is_ascii_digit()))
        {
            errs.push(FieldError::invalid(
                "spec.group",
                &json!(group),
                "should be a domain with at least one dot",
            ));
        }
        validate_names(spec, &mut errs);
        let plural = text(spec, "/names/plural");
        let expected = format!("{plural}.{group}");
        if meta::name(obj) != expected {
            errs.push(FieldError::invalid(
                "metadata.name",
                &json!(meta::name(obj)),
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
        match text(spec, "/scope") {
            "Namespaced" | "Cluster" => {}
            "" => errs.push(FieldError::required("spec.scope", "")),
            other => errs.push(FieldError::not_supported(
                "spec.scope",
                &json!(other),
                &["Cluster", "Namespaced"],
            )),
        }
        let versions = spec["versions"].as_array().cloned().unwrap_or_default();
        if versions.is_empty() {
            errs.push(FieldError::invalid(
                "spec.versions",
                &json!(versions),
                "must have exactly one version marked as storage version",
            ));
        }
        let storage = versions.iter().filter(|v| v["storage"] == true).count();
        if !versions.is_empty() && storage != 1 {
            errs.push(FieldError::invalid(
                "spec.versions",
                &Value::Array(versions.clone()),
                "must have exactly one version marked as storage version",
            ));
        }
        for (i, v) in versions.iter().enumerate() {
            let name = text(v, "/name");
            if versions[..i].iter().any(|o| text(o, "/name") == name) {
                errs.push(FieldError::duplicate(
                    format!("spec.versions[{i}].name"),
                    &json!(name),
                ));
            }
            validate_version(v, &format!("spec.versions[{i}]"), &mut errs);
        }
        match text(spec, "/conversion/strategy") {
            "" | "None" => {}
            other => errs.push(FieldError::not_supported(
                "spec.conversion.strategy",
                &json!(other),
                &["None"],
            )),
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        for (field, pointer) in [("spec.group", "/spec/group"), ("spec.scope", "/spec/scope")] {
            if new.pointer(pointer) != old.pointer(pointer) {
                errs.push(FieldError::immutable(
                    field,
                    new.pointer(pointer).unwrap_or(&Value::Null),
                ));
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"metadata": {"name": "crontabs.stable.example.com"}, "spec": {
            "group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}}}]}})
    }

    fn fields(obj: &Value) -> Vec<String> {
        CrdStrategy
            .validate(obj)
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_well_formed_crd_is_valid() {
        assert!(
            fields(&crd()).is_empty(),
            "{:?}",
            CrdStrategy.validate(&crd())
        );
    }

    #[test]
    fn names_versions_and_schemas_are_checked() {
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong.example.com");
        bad["spec"]["versions"][0]["storage"] = json!(false);
        bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
            json!({"properties": {}});
        bad["spec"]["scope"] = json!("Global");
        let got = fields(&bad);
        for want in [
            "metadata.name",
            "spec.versions",
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].type",
            "spec.scope",
        ] {
            assert!(got.iter().any(|f| f == want), "{want} missing from {got:?}");
        }
        let mut no_schema = crd();
        no_schema["spec"]["versions"][0]
            .as_object_mut()
            .map(|v| v.remove("schema"));
        assert_eq!(
            fields(&no_schema),
            vec!["spec.versions[0].schema.openAPIV3Schema"]
        );
    }

    #[test]
    fn create_adds_the_cleanup_finalizer() {
        let mut obj = crd();
        CrdStrategy.prepare_for_create(&mut obj);
        assert_eq!(meta::finalizers(&obj), vec![CLEANUP_FINALIZER.to_string()]);
    }
}
