//! OpenAPI v3 documents, one per group-version, generated from the
//! k8s-openapi types the server serves (their `schemars` schemas), with the
//! Kubernetes extensions kubectl reads: `x-kubernetes-group-version-kind`
//! on schemas and operations, and a `fieldValidation` parameter on every
//! PATCH so kubectl ≥ 1.27 validates server-side.

mod gnostic;
pub mod v2;

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::registry::{Registry, ResourceInfo};

const SCHEMA_PREFIX: &str = "#/components/schemas/";

/// The rendered documents.
pub struct OpenApiV3 {
    /// `/openapi/v3` index.
    pub index: Vec<u8>,
    /// Documents by path relative to `/openapi/v3/` (`api/v1`, `apis/apps/v1`).
    pub documents: BTreeMap<String, Vec<u8>>,
}

fn gvk(info: &ResourceInfo) -> Value {
    json!({"group": info.group, "version": info.version, "kind": info.kind})
}

fn query(name: &str, description: &str, type_: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(
    info: &ResourceInfo,
    action: &str,
    verb_id: &str,
    schema_ref: &str,
    extra: Vec<Value>,
) -> Value {
    let group_id: String = if info.group.is_empty() {
        "Core".into()
    } else {
        info.group
            .split('.')
            .next()
            .unwrap_or_default()
            .chars()
            .enumerate()
            .map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c })
            .collect()
    };
    let version_id: String = info
        .version
        .chars()
        .enumerate()
        .map(|(i, c)| if i == 0 { c.to_ascii_uppercase() } else { c })
        .collect();
    let scope = if info.namespaced && action != "list-all" {
        "Namespaced"
    } else {
        ""
    };
    let mut params = vec![query(
        "pretty",
        "If 'true', then the output is pretty printed.",
        "string",
    )];
    params.extend(extra);
    json!({
        "operationId": format!("{verb_id}{group_id}{version_id}{scope}{}", info.kind),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
        "x-kubernetes-action": if action == "list-all" { "list" } else { action },
        "x-kubernetes-group-version-kind": gvk(info),
    })
}

fn write_params() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
            "string",
        ),
        query(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
            "string",
        ),
        query(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
            "string",
        ),
    ]
}

fn body(schema_ref: &str, types: &[&str]) -> Value {
    let content: Map<String, Value> = types
        .iter()
        .map(|t| (t.to_string(), json!({"schema": {"$ref": schema_ref}})))
        .collect();
    json!({"content": content, "required": true})
}

/// Adds the paths of one resource to `paths`.
fn add_paths(paths: &mut Map<String, Value>, info: &ResourceInfo, kind_ref: &str) {
    let root = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    let base = if info.namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("{root}/{}", info.plural)
    };
    let patch_ref = format!("{SCHEMA_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.Patch");
    // kubectl sends strategic merge patches only where a PATCH operation
    // lists them; custom resources refuse them.
    let all_patch_types = [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ];
    let patch_types = if info.strategy.supports_strategic_merge() {
        &all_patch_types[..]
    } else {
        &all_patch_types[..3]
    };
    let mut collection = json!({
        "get": operation(info, "list", "list", kind_ref, vec![query("labelSelector", "A selector to restrict the list of returned objects by their labels.", "string"), query("fieldSelector", "A selector to restrict the list of returned objects by their fields.", "string"), query("limit", "limit is a maximum number of responses to return for a list call.", "integer"), query("continue", "The continue option should be set when retrieving more results from the server.", "string"), query("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from.", "string"), query("watch", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.", "boolean")]),
        "post": operation(info, "post", "create", kind_ref, write_params()),
        "delete": operation(info, "deletecollection", "deleteCollection", kind_ref, vec![]),
    });
    collection["post"]["requestBody"] = body(kind_ref, &["*/*"]);
    let mut item = json!({
        "get": operation(info, "get", "read", kind_ref, vec![]),
        "put": operation(info, "put", "replace", kind_ref, write_params()),
        "patch": operation(info, "patch", "patch", kind_ref, write_params()),
        "delete": operation(info, "delete", "delete", kind_ref, vec![query("gracePeriodSeconds", "The duration in seconds before the object should be deleted.", "integer"), query("propagationPolicy", "Whether and how garbage collection will be performed.", "string")]),
    });
    item["put"]["requestBody"] = body(kind_ref, &["*/*"]);
    item["patch"]["requestBody"] = body(&patch_ref, patch_types);
    let mut item_params = vec![path_param("name")];
    let mut collection_params = Vec::new();
    if info.namespaced {
        item_params.push(path_param("namespace"));
        collection_params.push(path_param("namespace"));
    }
    item["parameters"] = json!(item_params);
    collection["parameters"] = json!(collection_params);
    for sub in info.subresources.iter().filter(|s| **s == "status") {
        let mut status = json!({
            "get": operation(info, "get", &format!("read{}", capitalize(sub)), kind_ref, vec![]),
            "put": operation(info, "put", &format!("replace{}", capitalize(sub)), kind_ref, write_params()),
            "patch": operation(info, "patch", &format!("patch{}", capitalize(sub)), kind_ref, write_params()),
        });
        status["put"]["requestBody"] = body(kind_ref, &["*/*"]);
        status["patch"]["requestBody"] = body(&patch_ref, patch_types);
        status["parameters"] = json!(item_params);
        paths.insert(format!("{base}/{{name}}/{sub}"), status);
    }
    paths.insert(format!("{base}/{{name}}"), item);
    paths.insert(base, collection);
    if info.namespaced {
        paths.insert(
            format!("{root}/{}", info.plural),
            json!({"get": operation(info, "list-all", "list", kind_ref, vec![])}),
        );
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn document(infos: &[&ResourceInfo]) -> Value {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    let mut kinds: Vec<(String, &ResourceInfo)> = Vec::new();
    for info in infos {
        let schema = (info.schema)(&mut generator);
        let reference = schema
            .as_value()
            .get("$ref")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        add_paths(&mut paths, info, &reference);
        kinds.push((
            reference.trim_start_matches(SCHEMA_PREFIX).to_string(),
            info,
        ));
    }
    let mut patch_gen = generator;
    patch_gen.definitions_mut().insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
    );
    let mut schemas = patch_gen.take_definitions(true);
    add_patch_metadata(&mut schemas);
    for (name, info) in kinds {
        if let Some(Value::Object(s)) = schemas.get_mut(&name) {
            s.insert("x-kubernetes-group-version-kind".into(), json!([gvk(info)]));
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::version::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// Marks fields with upstream's patch strategy and merge key, which
/// kubectl reads to compute the strategic merge patches of `apply`, `set`
/// and `edit`; without them it treats every list as atomic.
fn add_patch_metadata(schemas: &mut Map<String, Value>) {
    for (definition, property, strategy, key) in crate::strategicmerge::metadata::PATCH_METADATA {
        let field = schemas
            .get_mut(*definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*property))
            .and_then(Value::as_object_mut);
        if let Some(field) = field {
            field.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
            if !key.is_empty() {
                field.insert("x-kubernetes-patch-merge-key".into(), json!(key));
            }
        }
    }
}

impl OpenApiV3 {
    /// Renders every group-version's document and the index.
    pub fn new(registry: &Registry) -> Self {
        let mut documents = BTreeMap::new();
        let mut index = Map::new();
        for (group, versions) in registry.groups() {
            for version in versions {
                let infos: Vec<&ResourceInfo> = registry
                    .in_group_version(&group, &version)
                    .map(|a| a.as_ref())
                    .collect();
                let path = if group.is_empty() {
                    format!("api/{version}")
                } else {
                    format!("apis/{group}/{version}")
                };
                let bytes = serde_json::to_vec(&document(&infos)).unwrap_or_default();
                let mut hasher = DefaultHasher::new();
                bytes.hash(&mut hasher);
                let hash = format!("{:016X}", hasher.finish());
                index.insert(
                    path.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
                );
                documents.insert(path, bytes);
            }
        }
        let index = serde_json::to_vec(&json!({"paths": index})).unwrap_or_default();
        OpenApiV3 { index, documents }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_document_carries_pod_schema_and_patch_field_validation() {
        let o = OpenApiV3::new(&Registry::builtin());
        let doc: Value = o
            .documents
            .get("api/v1")
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        let spec = &pod["properties"]["spec"];
        let reference = spec["$ref"]
            .as_str()
            .or_else(|| spec["allOf"][0]["$ref"].as_str());
        assert_eq!(
            reference,
            Some("#/components/schemas/io.k8s.api.core.v1.PodSpec")
        );
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(
            patch["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        let containers =
            &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        let index: Value = serde_json::from_slice(&o.index).unwrap_or_default();
        assert!(
            index["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("/openapi/v3/apis/apps/v1?hash="))
        );
    }
}
