//! `/openapi/v2`: the one Swagger 2.0 document of every served
//! group-version, which kubectl ≤ 1.28 fetches (in gnostic protobuf)
//! before `create`, `apply` or `explain` and refuses to go on without.
//!
//! It is converted from the OpenAPI v3 documents ([`super::OpenApiV3`]), so
//! both describe the same kinds: `#/components/schemas/` references become
//! `#/definitions/`, a description attached to a reference through `allOf`
//! sits next to the `$ref` (kubectl's v2 parser refuses a reference with a
//! type or properties beside it), int-or-string takes upstream's v2 form
//! (`type: string, format: int-or-string`), and request bodies become `body`
//! parameters. Both encodings are rendered once at start with their ETags.

use std::hash::{DefaultHasher, Hash, Hasher};

use anyhow::{Context, Result};
use bytes::Bytes;
use prost::Message;
use serde_json::{Map, Value, json};

use super::OpenApiV3;
use super::gnostic;

/// JSON, the first offer (what `*/*` gets).
pub const JSON: &str = "application/json";
/// gnostic protobuf, as upstream names it now.
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// gnostic protobuf, as kubectl ≤ 1.28 asks for it.
pub const PROTOBUF_LEGACY: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// What `/openapi/v2` offers, in order of preference.
pub const OFFERS: &[&str] = &[JSON, PROTOBUF_LEGACY, PROTOBUF];

const V3_PREFIX: &str = "#/components/schemas/";
const V2_PREFIX: &str = "#/definitions/";
const GVK: &str = "x-kubernetes-group-version-kind";

/// Definitions whose v3 schema says int-or-string but which upstream's v2
/// document describes as a plain string (only IntOrString carries the
/// `int-or-string` format there).
const PLAIN_STRINGS: &[&str] = &["io.k8s.apimachinery.pkg.api.resource.Quantity"];

/// One rendered encoding of the document.
pub struct Representation {
    /// The bytes, shared by every response.
    pub body: Bytes,
    /// Quoted strong ETag of `body`.
    pub etag: String,
}

impl Representation {
    fn new(body: Vec<u8>) -> Self {
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        Representation {
            etag: format!("\"{:016X}\"", hasher.finish()),
            body: Bytes::from(body),
        }
    }
}

/// The document in both encodings.
pub struct OpenApiV2 {
    /// Swagger 2.0 JSON.
    pub json: Representation,
    /// gnostic `openapi.v2.Document` protobuf.
    pub protobuf: Representation,
}

impl OpenApiV2 {
    /// Converts the v3 documents and renders both encodings.
    pub fn new(v3: &OpenApiV3) -> Result<Self> {
        let documents = v3
            .documents
            .iter()
            .map(|(path, bytes)| {
                serde_json::from_slice::<Value>(bytes)
                    .with_context(|| format!("reading the OpenAPI v3 document of {path}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let doc = document(&documents);
        let protobuf = gnostic::Document::from_json(&doc)
            .map_err(|e| anyhow::anyhow!("mapping OpenAPI v2 onto protobuf: {e}"))?
            .encode_to_vec();
        Ok(OpenApiV2 {
            json: Representation::new(serde_json::to_vec(&doc)?),
            protobuf: Representation::new(protobuf),
        })
    }

    /// The encoding for a media type of [`OFFERS`] and the Content-Type
    /// to answer with. Protobuf asked for by its legacy name is labelled
    /// with the current one, as upstream does: client-go parses the
    /// response's Content-Type, and the `@` of the legacy name makes Go's
    /// media type parser fail ("mime: unexpected content after media
    /// subtype", and kubectl 1.27 stops).
    pub fn representation(&self, media_type: &str) -> (&'static str, &Representation) {
        if media_type == JSON {
            (JSON, &self.json)
        } else {
            (PROTOBUF, &self.protobuf)
        }
    }
}

/// The Swagger 2.0 document of every v3 document's paths and schemas.
fn document(v3: &[Value]) -> Value {
    let mut paths = Map::new();
    let mut definitions: Map<String, Value> = Map::new();
    for doc in v3 {
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            paths.insert(path.clone(), path_item(item));
        }
        for (name, v3_schema) in doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let mut converted = schema(v3_schema);
            if let Some(plain) = converted
                .as_object_mut()
                .filter(|_| PLAIN_STRINGS.contains(&name.as_str()))
            {
                plain.remove("format");
            }
            merge_definition(&mut definitions, name, converted);
        }
    }
    let info = v3
        .first()
        .map(|d| d["info"].clone())
        .unwrap_or_else(|| json!({"title": "Kubernetes", "version": crate::version::GIT_VERSION}));
    json!({
        "swagger": "2.0",
        "info": info,
        "paths": paths,
        "definitions": definitions,
    })
}

/// Adds a definition; one served in several group-versions lists every
/// group-version-kind, as upstream's does.
fn merge_definition(definitions: &mut Map<String, Value>, name: &str, schema: Value) {
    let Some(existing) = definitions.get_mut(name) else {
        definitions.insert(name.to_string(), schema);
        return;
    };
    let Some(more) = schema.get(GVK).and_then(Value::as_array) else {
        return;
    };
    let Some(existing) = existing.as_object_mut() else {
        return;
    };
    let list = existing.entry(GVK).or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        for gvk in more {
            if !list.contains(gvk) {
                list.push(gvk.clone());
            }
        }
    }
}

fn reference(v3: &str) -> Value {
    Value::String(match v3.strip_prefix(V3_PREFIX) {
        Some(name) => format!("{V2_PREFIX}{name}"),
        None => v3.to_string(),
    })
}

/// Schema keywords both dialects have (besides those converted above).
const V2_KEYWORDS: &[&str] = &[
    "description",
    "format",
    "title",
    "default",
    "maximum",
    "minimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "required",
    "enum",
    "readOnly",
    "example",
];

/// A v3 schema in Swagger 2.0's dialect, as kubectl's v2 parser takes it:
/// a reference with only a description and extensions beside it, one type
/// per schema, no `nullable`, `oneOf` or `anyOf`, arrays with one `items`.
fn schema(v3: &Value) -> Value {
    let Some(map) = v3.as_object() else {
        return v3.clone();
    };
    let target = map.get("$ref").and_then(Value::as_str).or_else(|| {
        match map
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            Some([only]) => only.get("$ref").and_then(Value::as_str),
            _ => None,
        }
    });
    if let Some(target) = target {
        let mut out = Map::new();
        out.insert("$ref".into(), reference(target));
        for (key, value) in map {
            if key == "description" || key.starts_with("x-") {
                out.insert(key.clone(), value.clone());
            }
        }
        return Value::Object(out);
    }
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "nullable" | "oneOf" | "anyOf" | "x-kubernetes-int-or-string" => {}
            "type" => {
                let single = match value {
                    Value::Array(types) => types.iter().find(|t| *t != "null").cloned(),
                    other => Some(other.clone()),
                };
                if let Some(t) = single {
                    out.insert(key.clone(), t);
                }
            }
            "properties" => {
                let properties: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), schema(s)))
                    .collect();
                out.insert(key.clone(), Value::Object(properties));
            }
            "items" => {
                let item = match value {
                    Value::Array(items) => items.first().map(schema).unwrap_or_else(|| json!({})),
                    one => schema(one),
                };
                out.insert(key.clone(), item);
            }
            "additionalProperties" if value.is_object() => {
                out.insert(key.clone(), schema(value));
            }
            "allOf" => {
                let all: Vec<Value> = value.as_array().into_iter().flatten().map(schema).collect();
                out.insert(key.clone(), Value::Array(all));
            }
            k if V2_KEYWORDS.contains(&k) || k.starts_with("x-") => {
                out.insert(key.clone(), value.clone());
            }
            // v3-only validation (`not`, `multipleOf`, ...) that custom
            // resource schemas may use: the server validates it; the v2
            // document only describes.
            _ => {}
        }
    }
    if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        && !out.contains_key("type")
    {
        out.insert("type".into(), json!("string"));
        out.insert("format".into(), json!("int-or-string"));
    }
    if out.get("type") == Some(&json!("array")) && !out.contains_key("items") {
        out.insert("items".into(), json!({}));
    }
    Value::Object(out)
}

fn path_item(v3: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in v3.as_object().into_iter().flatten() {
        match key.as_str() {
            "parameters" => {
                out.insert(key.clone(), parameters(value));
            }
            "get" | "put" | "post" | "delete" | "patch" | "head" | "options" => {
                out.insert(key.clone(), operation(value));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

fn parameters(v3: &Value) -> Value {
    Value::Array(v3.as_array().into_iter().flatten().map(parameter).collect())
}

/// A v3 parameter with its schema's primitive facets lifted beside it.
fn parameter(v3: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in v3.as_object().into_iter().flatten() {
        if key == "schema" {
            for (facet, v) in value.as_object().into_iter().flatten() {
                if matches!(facet.as_str(), "type" | "format" | "uniqueItems") {
                    out.insert(facet.clone(), v.clone());
                }
            }
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// A v3 operation: the request body becomes a `body` parameter and the
/// media types of bodies and responses `consumes` and `produces`.
fn operation(v3: &Value) -> Value {
    let mut out = Map::new();
    let mut params = Vec::new();
    for (key, value) in v3.as_object().into_iter().flatten() {
        match key.as_str() {
            "parameters" => params.extend(value.as_array().into_iter().flatten().map(parameter)),
            "requestBody" => {
                let content = value["content"].as_object();
                let consumes: Vec<&String> =
                    content.into_iter().flatten().map(|(t, _)| t).collect();
                let body_schema = content
                    .and_then(|c| c.values().next())
                    .map(|media| schema(&media["schema"]))
                    .unwrap_or_else(|| json!({}));
                params.push(json!({
                    "name": "body",
                    "in": "body",
                    "required": value["required"].as_bool().unwrap_or(false),
                    "schema": body_schema,
                }));
                out.insert("consumes".into(), json!(consumes));
            }
            "responses" => {
                let mut produces: Vec<String> = Vec::new();
                let mut responses = Map::new();
                for (code, response) in value.as_object().into_iter().flatten() {
                    let mut converted = Map::new();
                    if let Some(d) = response.get("description") {
                        converted.insert("description".into(), d.clone());
                    }
                    let content = response["content"].as_object();
                    for media_type in content.into_iter().flatten().map(|(t, _)| t) {
                        if !produces.contains(media_type) {
                            produces.push(media_type.clone());
                        }
                    }
                    if let Some(media) = content.and_then(|c| c.values().next()) {
                        converted.insert("schema".into(), schema(&media["schema"]));
                    }
                    responses.insert(code.clone(), Value::Object(converted));
                }
                out.insert("produces".into(), json!(produces));
                out.insert(key.clone(), Value::Object(responses));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out.insert("parameters".into(), Value::Array(params));
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn built() -> (OpenApiV2, Value) {
        let v2 = OpenApiV2::new(&OpenApiV3::new(&Registry::builtin())).expect("builds");
        let doc = serde_json::from_slice(&v2.json.body).expect("JSON");
        (v2, doc)
    }

    #[test]
    fn json_document_has_pod_with_its_gvk_patch_keys_and_v2_references() {
        let (_, doc) = built();
        assert_eq!(doc["swagger"], "2.0");
        let definitions = &doc["definitions"];
        let pod = &definitions["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod[GVK],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        assert_eq!(
            pod["properties"]["spec"],
            json!({
                "$ref": "#/definitions/io.k8s.api.core.v1.PodSpec",
                "description": pod["properties"]["spec"]["description"],
            })
        );
        let containers = &definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(
            containers["items"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Container"
        );
        let int_or_string = &definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
        assert_eq!(
            (&int_or_string["type"], &int_or_string["format"]),
            (&json!("string"), &json!("int-or-string"))
        );
        let quantity = &definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"];
        assert_eq!(quantity["type"], "string");
        assert!(quantity.get("format").is_none());
        assert_eq!(
            definitions["io.k8s.api.apps.v1.Deployment"][GVK],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        // JSONSchemaProps (CRDs) has fields named like v3 keywords.
        let mut scanned = doc.clone();
        if let Some(d) = scanned["definitions"].as_object_mut() {
            d.retain(|name, _| !name.contains("apiextensions.v1.JSONSchemaProps"));
        }
        let text = scanned.to_string();
        for v3_only in [
            "#/components/",
            "\"oneOf\"",
            "\"anyOf\"",
            "\"allOf\"",
            "\"nullable\"",
            "requestBody",
        ] {
            assert!(!text.contains(v3_only), "{v3_only} left in the v2 document");
        }
    }

    #[test]
    fn patch_operations_take_field_validation_and_a_body_parameter() {
        let (_, doc) = built();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch[GVK],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        let params = patch["parameters"].as_array().cloned().unwrap_or_default();
        assert!(params.contains(&json!({
            "name": "fieldValidation",
            "in": "query",
            "description": "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
            "type": "string",
            "uniqueItems": true,
        })));
        assert!(params.iter().any(|p| p["in"] == "body"
            && p["schema"]["$ref"] == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"));
        assert!(
            patch["consumes"]
                .as_array()
                .is_some_and(|c| c.contains(&json!("application/strategic-merge-patch+json")))
        );
        assert_eq!(
            patch["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.Deployment"
        );
    }

    #[test]
    fn protobuf_decodes_to_the_same_definitions_and_paths() {
        let (v2, doc) = built();
        let decoded = gnostic::Document::decode(v2.protobuf.body.as_ref()).expect("decodes");
        assert_eq!(decoded, gnostic::Document::from_json(&doc).expect("maps"));
        let names: Vec<&str> = decoded
            .definitions
            .iter()
            .flat_map(|d| &d.additional_properties)
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(
            names.len(),
            doc["definitions"].as_object().map_or(0, Map::len)
        );
        let pod = decoded
            .definitions
            .iter()
            .flat_map(|d| &d.additional_properties)
            .find(|n| n.name == "io.k8s.api.core.v1.Pod")
            .and_then(|n| n.value.as_ref())
            .expect("Pod");
        let gvk = pod
            .vendor_extension
            .iter()
            .find(|e| e.name == GVK)
            .and_then(|e| e.value.as_ref())
            .map(|a| serde_json::from_str::<Value>(&a.yaml).ok());
        assert_eq!(
            gvk,
            Some(Some(json!([{"group": "", "version": "v1", "kind": "Pod"}])))
        );
        assert_ne!(v2.json.etag, v2.protobuf.etag);
    }
}
