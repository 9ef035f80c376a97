//! Custom resources: one served version of a CRD turned into a
//! [`ResourceInfo`] whose strategy prunes, defaults and validates by the
//! version's schema, prints its `additionalPrinterColumns`, and maps the
//! `scale` subresource onto the CRD's replica and selector paths.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::jsonpath::JsonPath;
use super::schema;
use crate::error::FieldError;
use crate::registry::conversion::Conversion;
use crate::registry::intern;
use crate::registry::strategy::{Cells, Column, Strategy};
use crate::registry::{ResourceInfo, meta};

/// The scale subresource's paths (`spec.subresources.scale`).
#[derive(Debug, Clone)]
pub struct ScalePaths {
    spec_replicas: JsonPath,
    status_replicas: JsonPath,
    label_selector: Option<JsonPath>,
}

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone)]
struct PrinterColumn {
    column: Column,
    path: JsonPath,
}

/// The behaviour of one custom resource version.
pub struct CustomResourceStrategy {
    schema: Arc<Value>,
    status: bool,
    scale: Option<ScalePaths>,
    columns: Vec<PrinterColumn>,
    /// The CRD is being deleted: its objects are going, none may come.
    terminating: bool,
}

impl CustomResourceStrategy {
    /// Schema validation, with the stored object on updates for
    /// transition rules.
    fn validate_against(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = schema::validate(obj, old, &self.schema, "");
        // Metadata is the server's, whatever the schema says of it,
        // except the name rules a schema may add.
        errs.retain(|e| !e.field.starts_with("metadata.") || e.field == "metadata.name");
        errs
    }
}

impl Strategy for CustomResourceStrategy {
    fn create_refused(&self) -> Option<&'static str> {
        self.terminating
            .then_some("create not allowed while custom resource definition is terminating")
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        self.status
    }

    fn supports_strategic_merge(&self) -> bool {
        false
    }

    fn omits_empty_lists(&self) -> bool {
        false
    }

    fn structural_schema(&self) -> Option<Arc<Value>> {
        Some(self.schema.clone())
    }

    fn apply_defaults(&self, obj: &mut Value) {
        schema::apply_defaults(obj, &self.schema);
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        self.validate_against(obj, None)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        self.validate_against(new, Some(old))
    }

    fn columns(&self) -> Vec<Column> {
        let mut columns = vec![Column::NAME];
        if self.columns.is_empty() {
            columns.push(Column::AGE);
        } else {
            columns.extend(self.columns.iter().map(|c| c.column));
        }
        columns
    }

    fn cells(&self, obj: &Value) -> Cells {
        let mut cells = vec![Value::String(meta::name(obj).to_string())];
        if self.columns.is_empty() {
            cells.push(Value::String(crate::table::age(obj)));
            return cells;
        }
        for c in &self.columns {
            cells.push(cell(c, obj));
        }
        cells
    }

    fn scale_view(&self, obj: &Value) -> Option<Value> {
        let paths = self.scale.as_ref()?;
        let first = |p: &JsonPath| p.find(obj).first().map(|v| (*v).clone());
        let replicas = first(&paths.spec_replicas)
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let status_replicas = first(&paths.status_replicas)
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let mut scale = crate::registry::scale::scale_of(obj);
        scale["spec"]["replicas"] = json!(replicas);
        scale["status"]["replicas"] = json!(status_replicas);
        match paths.label_selector.as_ref().and_then(first) {
            Some(Value::String(s)) => scale["status"]["selector"] = json!(s),
            _ => {
                if let Some(status) = scale["status"].as_object_mut() {
                    status.remove("selector");
                }
            }
        }
        Some(scale)
    }

    fn set_replicas(&self, obj: &mut Value, replicas: i64) {
        let Some(fields) = self.scale.as_ref().and_then(|p| p.spec_replicas.fields()) else {
            return;
        };
        let mut at = obj;
        for (i, f) in fields.iter().enumerate() {
            let map = meta::ensure_object(at);
            if i + 1 == fields.len() {
                map.insert(f.to_string(), json!(replicas));
                return;
            }
            at = map.entry(f.to_string()).or_insert_with(|| json!({}));
        }
    }
}

/// A column's cell: the first value the path selects, typed as the
/// column declares; dates become ages, as upstream's table convertor.
fn cell(c: &PrinterColumn, obj: &Value) -> Value {
    let found = c.path.find(obj);
    let Some(first) = found.first() else {
        return Value::Null;
    };
    match c.column.type_ {
        "date" => match first.as_str() {
            Some(t) => Value::String(crate::table::since(t)),
            None => Value::Null,
        },
        "integer" | "number" | "boolean" => (*first).clone(),
        _ => {
            let texts: Vec<String> = found
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            Value::String(texts.join(","))
        }
    }
}

/// Prunes an object by its schema and normalises its metadata through the
/// ObjectMeta type (so metadata of the wrong shape is refused and unknown
/// metadata fields are reported like any other unknown field).
fn prune_object(schema: &Value, mut obj: Value) -> Result<Value, String> {
    if !obj.is_object() {
        return Err("the object must be a JSON object".into());
    }
    schema::prune(&mut obj, schema, true);
    if let Some(m) = obj.get_mut("metadata") {
        let typed: ObjectMeta =
            serde_json::from_value(m.take()).map_err(|e| format!("metadata: {e}"))?;
        *m = serde_json::to_value(typed).map_err(|e| e.to_string())?;
    }
    Ok(obj)
}

/// The OpenAPI definition name of a custom kind, as upstream names it:
/// the group reversed, then version and kind (`com.example.stable.v1.CronTab`).
fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').collect();
    parts.reverse();
    format!("{}.{version}.{kind}", parts.join("."))
}

/// Adds the version's schema to an OpenAPI generator with upstream's
/// `apiVersion`, `kind` and `metadata` properties, returning its `$ref`.
fn openapi_schema(
    generator: &mut schemars::SchemaGenerator,
    name: &str,
    schema: &Value,
) -> schemars::Schema {
    let metadata = generator.subschema_for::<ObjectMeta>().to_value();
    let mut definition = schema.clone();
    if let Some(props) = meta::ensure_object(&mut definition)
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
        props.insert("metadata".into(), metadata);
    }
    let path = generator.settings().definitions_path.to_string();
    generator
        .definitions_mut()
        .insert(name.to_string(), definition);
    let reference = format!("#{}/{name}", path.trim_end_matches('/'));
    schemars::Schema::try_from(json!({"$ref": reference})).unwrap_or_default()
}

/// The served resource of version `version` of an established CRD.
pub fn resource_info(crd: &Value, version: &Value) -> Result<ResourceInfo, String> {
    let spec = &crd["spec"];
    let text = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let group = text(spec, "/group");
    let kind = text(spec, "/names/kind");
    let plural = text(spec, "/names/plural");
    let version_name = text(version, "/name");
    let list_kind = Some(text(spec, "/names/listKind"))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| format!("{kind}List"));
    let strings = |p: &str| -> Vec<String> {
        spec.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let storage_version = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == true)
        .map(|v| text(v, "/name"))
        .ok_or("no storage version")?;
    let schema = Arc::new(
        version
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            ),
    );
    let status = version.pointer("/subresources/status").is_some();
    let scale = match version.pointer("/subresources/scale") {
        Some(s) => Some(ScalePaths {
            spec_replicas: JsonPath::parse(&text(s, "/specReplicasPath"))?,
            status_replicas: JsonPath::parse(&text(s, "/statusReplicasPath"))?,
            label_selector: s
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .map(JsonPath::parse)
                .transpose()?,
        }),
        None => None,
    };
    let mut columns = Vec::new();
    for c in version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        columns.push(PrinterColumn {
            column: Column {
                name: intern::string(&text(c, "/name")),
                type_: intern::string(&text(c, "/type")),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32,
                description: intern::string(&text(c, "/description")),
            },
            path: JsonPath::parse(&text(c, "/jsonPath"))?,
        });
    }
    let subresources: &'static [&'static str] = match (status, scale.is_some()) {
        (true, true) => &["status", "scale"],
        (true, false) => &["status"],
        (false, true) => &["scale"],
        (false, false) => &[],
    };
    let api_version = format!("{group}/{version_name}");
    let storage_api_version = format!("{group}/{storage_version}");
    let definition = definition_name(&group, &version_name, &kind);
    let codec_schema = schema.clone();
    let openapi = schema.clone();
    Ok(ResourceInfo {
        group: intern::string(&group),
        version: intern::string(&version_name),
        kind: intern::string(&kind),
        list_kind: intern::string(&list_kind),
        plural: intern::string(&plural),
        namespaced: text(spec, "/scope") == "Namespaced",
        short_names: intern::list(&strings("/names/shortNames")),
        categories: intern::list(&strings("/names/categories")),
        subresources,
        storage_resource: intern::string(&format!("{group}/{plural}")),
        strategy: Arc::new(CustomResourceStrategy {
            schema,
            status,
            scale,
            columns,
            terminating: meta::is_terminating(crd),
        }),
        codec: Arc::new(move |obj| prune_object(&codec_schema, obj)),
        schema: Arc::new(move |generator| openapi_schema(generator, &definition, &openapi)),
        conversion: Some(Conversion::api_version_only(
            &api_version,
            &storage_api_version,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"cronSpec": {"type": "string"}, "replicas": {"type": "integer"}}},
                        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}}}}}},
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}},
                    "additionalPrinterColumns": [
                        {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
                }]
            }
        })
    }

    #[test]
    fn a_version_becomes_a_served_resource() {
        let crd = crd();
        let info = resource_info(&crd, &crd["spec"]["versions"][0]).expect("builds");
        assert_eq!(
            (info.group, info.version, info.plural, info.kind),
            ("stable.example.com", "v1", "crontabs", "CronTab")
        );
        assert_eq!(info.list_kind, "CronTabList");
        assert_eq!(info.storage_resource, "stable.example.com/crontabs");
        assert_eq!(info.short_names, &["ct"]);
        assert!(info.has_subresource("status") && info.has_subresource("scale"));
        let pruned = (info.codec)(json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "a"}, "spec": {"cronSpec": "x", "junk": 1}}))
            .expect("prunes");
        assert_eq!(pruned["spec"], json!({"cronSpec": "x"}));
        let headers: Vec<&str> = info.strategy.columns().iter().map(|c| c.name).collect();
        assert_eq!(headers, vec!["Name", "Spec", "Replicas", "Age"]);
        let obj = json!({"metadata": {"name": "a", "creationTimestamp": "2020-01-01T00:00:00Z"}, "spec": {"cronSpec": "* * * * */5", "replicas": 2}, "status": {"replicas": 1, "selector": "app=a"}});
        let cells = info.strategy.cells(&obj);
        assert_eq!(cells[..3], [json!("a"), json!("* * * * */5"), json!(2)]);
        let scale = info.strategy.scale_view(&obj).expect("has scale");
        assert_eq!(
            (
                scale["spec"]["replicas"].clone(),
                scale["status"]["replicas"].clone(),
                scale["status"]["selector"].clone()
            ),
            (json!(2), json!(1), json!("app=a"))
        );
        let mut obj = obj;
        info.strategy.set_replicas(&mut obj, 5);
        assert_eq!(obj["spec"]["replicas"], 5);
    }

    #[test]
    fn openapi_definitions_are_named_like_upstream() {
        assert_eq!(
            definition_name("stable.example.com", "v1", "CronTab"),
            "com.example.stable.v1.CronTab"
        );
    }
}
