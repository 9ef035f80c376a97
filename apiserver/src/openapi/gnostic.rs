//! The protobuf form of a Swagger 2.0 document that kubectl ≤ 1.28 and
//! client-go's `OpenAPISchema()` ask `/openapi/v2` for: gnostic's
//! `openapi.v2.Document` (github.com/google/gnostic-models,
//! `openapiv2/OpenAPIv2.proto`). Only the messages and fields the served
//! document uses are declared, with gnostic's field numbers, so the bytes
//! decode with gnostic's generated Go code; a decoder skips what it does
//! not know, and so do these types.
//!
//! [`Document::from_json`] does what upstream's `ToProtoBinary` does
//! (parse the JSON document into gnostic's messages): every value that is
//! not a fixed field (`x-*` extensions, `default`, `enum`, `example`) is
//! carried as YAML text in an [`Any`], which is where clients read it from.
//! A key this module does not map is an error rather than silently lost.

use serde_json::{Map, Value};

/// A value of no fixed type, as YAML text (JSON is valid YAML).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    /// The value as YAML.
    #[prost(string, tag = "2")]
    pub yaml: String,
}

/// One `x-*` extension, a default or an example, by name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedAny {
    /// The key.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

/// The whole document.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Document {
    /// `2.0`.
    #[prost(string, tag = "1")]
    pub swagger: String,
    /// Title and version.
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    /// Schemes of every operation.
    #[prost(string, repeated, tag = "5")]
    pub schemes: Vec<String>,
    /// Media types every operation consumes.
    #[prost(string, repeated, tag = "6")]
    pub consumes: Vec<String>,
    /// Media types every operation produces.
    #[prost(string, repeated, tag = "7")]
    pub produces: Vec<String>,
    /// The served paths.
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    /// The schemas, by name (`io.k8s.api.core.v1.Pod`).
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    /// `x-*` extensions.
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

/// General information about the API.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    /// `Kubernetes`.
    #[prost(string, tag = "1")]
    pub title: String,
    /// The server version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// Longer description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// `x-*` extensions.
    #[prost(message, repeated, tag = "7")]
    pub vendor_extension: Vec<NamedAny>,
}

/// The paths, in document order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Paths {
    /// `x-*` extensions.
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    /// One entry per path.
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

/// A path and its operations.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedPathItem {
    /// The path template, e.g. `/api/v1/namespaces/{namespace}/pods`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its operations.
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

/// The operations of one path.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PathItem {
    /// GET.
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    /// PUT.
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    /// POST.
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    /// DELETE.
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    /// PATCH.
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    /// Parameters shared by every operation of the path.
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    /// `x-*` extensions.
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

/// One operation; kubectl reads its `x-kubernetes-group-version-kind` and
/// whether its PATCH takes `fieldValidation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    /// Tags.
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    /// Short summary.
    #[prost(string, tag = "2")]
    pub summary: String,
    /// Description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// Unique id, e.g. `readCoreV1NamespacedPod`.
    #[prost(string, tag = "5")]
    pub operation_id: String,
    /// Response media types.
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    /// Request media types.
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    /// Parameters.
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    /// Responses by status code.
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    /// Schemes.
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    /// Whether the operation is deprecated.
    #[prost(bool, tag = "11")]
    pub deprecated: bool,
    /// `x-*` extensions.
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A parameter or a reference to one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ParametersItem {
    /// Which.
    #[prost(oneof = "ParametersItemOneof", tags = "1, 2")]
    pub oneof: Option<ParametersItemOneof>,
}

/// The choices of [`ParametersItem`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParametersItemOneof {
    /// An inline parameter.
    #[prost(message, tag = "1")]
    Parameter(Parameter),
    /// A `$ref`.
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

/// A `$ref` with its description.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JsonReference {
    /// The reference.
    #[prost(string, tag = "1")]
    pub reference: String,
    /// Description.
    #[prost(string, tag = "2")]
    pub description: String,
}

/// A body or a non-body parameter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Parameter {
    /// Which.
    #[prost(oneof = "ParameterOneof", tags = "1, 2")]
    pub oneof: Option<ParameterOneof>,
}

/// The choices of [`Parameter`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterOneof {
    /// `in: body`.
    #[prost(message, tag = "1")]
    BodyParameter(BodyParameter),
    /// `in: query`, `path`, ...
    #[prost(message, tag = "2")]
    NonBodyParameter(NonBodyParameter),
}

/// The request body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BodyParameter {
    /// Description.
    #[prost(string, tag = "1")]
    pub description: String,
    /// Name (`body`).
    #[prost(string, tag = "2")]
    pub name: String,
    /// `body`.
    #[prost(string, tag = "3")]
    pub r#in: String,
    /// Whether a body is required.
    #[prost(bool, tag = "4")]
    pub required: bool,
    /// Its schema.
    #[prost(message, optional, boxed, tag = "5")]
    pub schema: Option<Box<Schema>>,
    /// `x-*` extensions.
    #[prost(message, repeated, tag = "6")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A query or path parameter.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NonBodyParameter {
    /// Which.
    #[prost(oneof = "NonBodyParameterOneof", tags = "3, 4")]
    pub oneof: Option<NonBodyParameterOneof>,
}

/// The choices of [`NonBodyParameter`] this server uses.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NonBodyParameterOneof {
    /// `in: query`.
    #[prost(message, tag = "3")]
    QueryParameterSubSchema(QueryParameterSubSchema),
    /// `in: path`.
    #[prost(message, tag = "4")]
    PathParameterSubSchema(PathParameterSubSchema),
}

/// A query parameter (`fieldValidation`, `dryRun`, ...).
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryParameterSubSchema {
    /// Whether it must be given.
    #[prost(bool, tag = "1")]
    pub required: bool,
    /// `query`.
    #[prost(string, tag = "2")]
    pub r#in: String,
    /// Description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// Name.
    #[prost(string, tag = "4")]
    pub name: String,
    /// Primitive type.
    #[prost(string, tag = "6")]
    pub r#type: String,
    /// Format.
    #[prost(string, tag = "7")]
    pub format: String,
    /// Whether repeated values must differ.
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
    /// `x-*` extensions.
    #[prost(message, repeated, tag = "23")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A path parameter (`name`, `namespace`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PathParameterSubSchema {
    /// Always true for a path parameter.
    #[prost(bool, tag = "1")]
    pub required: bool,
    /// `path`.
    #[prost(string, tag = "2")]
    pub r#in: String,
    /// Description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// Name.
    #[prost(string, tag = "4")]
    pub name: String,
    /// Primitive type.
    #[prost(string, tag = "5")]
    pub r#type: String,
    /// Format.
    #[prost(string, tag = "6")]
    pub format: String,
    /// Whether repeated values must differ.
    #[prost(bool, tag = "19")]
    pub unique_items: bool,
    /// `x-*` extensions.
    #[prost(message, repeated, tag = "22")]
    pub vendor_extension: Vec<NamedAny>,
}

/// Responses by status code.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Responses {
    /// One per code.
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
    /// `x-*` extensions.
    #[prost(message, repeated, tag = "2")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A status code and its response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedResponseValue {
    /// `200`, `201`, `default`, ...
    #[prost(string, tag = "1")]
    pub name: String,
    /// The response.
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

/// A response or a reference to one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseValue {
    /// Which.
    #[prost(oneof = "ResponseValueOneof", tags = "1, 2")]
    pub oneof: Option<ResponseValueOneof>,
}

/// The choices of [`ResponseValue`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ResponseValueOneof {
    /// An inline response.
    #[prost(message, tag = "1")]
    Response(Response),
    /// A `$ref`.
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

/// One response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// Description (`OK`).
    #[prost(string, tag = "1")]
    pub description: String,
    /// The body's schema.
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
    /// `x-*` extensions.
    #[prost(message, repeated, tag = "5")]
    pub vendor_extension: Vec<NamedAny>,
}

/// A response body's schema.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaItem {
    /// Which (file schemas are not used).
    #[prost(oneof = "SchemaItemOneof", tags = "1")]
    pub oneof: Option<SchemaItemOneof>,
}

/// The choices of [`SchemaItem`] this server uses.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SchemaItemOneof {
    /// A schema.
    #[prost(message, tag = "1", boxed)]
    Schema(Box<Schema>),
}

/// The named schemas.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Definitions {
    /// In document order.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// The properties of an object schema.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Properties {
    /// In document order.
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// A schema and its name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedSchema {
    /// Definition or property name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The schema.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

/// A schema's `type`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeItem {
    /// One name, or several.
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

/// A schema's `items`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ItemsItem {
    /// One schema (or a tuple of them).
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

/// A schema's `additionalProperties`: a schema or a boolean.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdditionalPropertiesItem {
    /// Which.
    #[prost(oneof = "AdditionalPropertiesOneof", tags = "1, 2")]
    pub oneof: Option<AdditionalPropertiesOneof>,
}

/// The choices of [`AdditionalPropertiesItem`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AdditionalPropertiesOneof {
    /// The values' schema.
    #[prost(message, tag = "1", boxed)]
    Schema(Box<Schema>),
    /// Whether other properties are allowed.
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

/// A JSON schema in Swagger 2.0's dialect.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Schema {
    /// `$ref` (`#/definitions/...`).
    #[prost(string, tag = "1")]
    pub reference: String,
    /// `format` (`int32`, `date-time`, `int-or-string`).
    #[prost(string, tag = "2")]
    pub format: String,
    /// `title`.
    #[prost(string, tag = "3")]
    pub title: String,
    /// `description`, what `kubectl explain` prints.
    #[prost(string, tag = "4")]
    pub description: String,
    /// `default`.
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    /// `maximum`.
    #[prost(double, tag = "7")]
    pub maximum: f64,
    /// `minimum`.
    #[prost(double, tag = "9")]
    pub minimum: f64,
    /// `maxLength`.
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    /// `minLength`.
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    /// `pattern`.
    #[prost(string, tag = "13")]
    pub pattern: String,
    /// `maxItems`.
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    /// `minItems`.
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    /// `uniqueItems`.
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    /// `required` property names.
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    /// `enum` values.
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    /// `additionalProperties`.
    #[prost(message, optional, tag = "21")]
    pub additional_properties: Option<AdditionalPropertiesItem>,
    /// `type`.
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    /// `items`.
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    /// `allOf`.
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    /// `properties`.
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    /// `readOnly`.
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    /// `example`.
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    /// `x-*` extensions (`x-kubernetes-group-version-kind`,
    /// `x-kubernetes-patch-merge-key`, ...).
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

/// Why a JSON document could not be mapped: the JSON path and the problem.
type MapResult<T> = Result<T, String>;

fn any(value: &Value) -> Any {
    Any {
        yaml: value.to_string(),
    }
}

fn named_any(name: &str, value: &Value) -> NamedAny {
    NamedAny {
        name: name.to_string(),
        value: Some(any(value)),
    }
}

fn object<'a>(value: &'a Value, at: &str) -> MapResult<&'a Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| format!("{at}: expected an object"))
}

fn string(value: &Value, at: &str) -> MapResult<String> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{at}: expected a string"))
}

fn strings(value: &Value, at: &str) -> MapResult<Vec<String>> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items.iter().map(|v| string(v, at)).collect(),
        _ => Err(format!("{at}: expected a string or a list of strings")),
    }
}

fn boolean(value: &Value, at: &str) -> MapResult<bool> {
    value
        .as_bool()
        .ok_or_else(|| format!("{at}: expected a boolean"))
}

fn number(value: &Value, at: &str) -> MapResult<f64> {
    value
        .as_f64()
        .ok_or_else(|| format!("{at}: expected a number"))
}

fn integer(value: &Value, at: &str) -> MapResult<i64> {
    value
        .as_i64()
        .ok_or_else(|| format!("{at}: expected an integer"))
}

fn unsupported<T>(at: &str, key: &str) -> MapResult<T> {
    Err(format!("{at}: unsupported key {key:?}"))
}

impl Document {
    /// Maps a Swagger 2.0 JSON document onto gnostic's messages.
    pub fn from_json(doc: &Value) -> MapResult<Self> {
        let mut out = Document::default();
        for (key, value) in object(doc, "$")? {
            let at = format!("$.{key}");
            match key.as_str() {
                "swagger" => out.swagger = string(value, &at)?,
                "info" => out.info = Some(info(value, &at)?),
                "schemes" => out.schemes = strings(value, &at)?,
                "consumes" => out.consumes = strings(value, &at)?,
                "produces" => out.produces = strings(value, &at)?,
                "paths" => out.paths = Some(paths(value, &at)?),
                "definitions" => {
                    out.definitions = Some(Definitions {
                        additional_properties: named_schemas(value, &at)?,
                    })
                }
                k if k.starts_with("x-") => out.vendor_extension.push(named_any(k, value)),
                k => return unsupported(&at, k),
            }
        }
        Ok(out)
    }
}

fn info(value: &Value, at: &str) -> MapResult<Info> {
    let mut out = Info::default();
    for (key, value) in object(value, at)? {
        match key.as_str() {
            "title" => out.title = string(value, at)?,
            "version" => out.version = string(value, at)?,
            "description" => out.description = string(value, at)?,
            k if k.starts_with("x-") => out.vendor_extension.push(named_any(k, value)),
            k => return unsupported(at, k),
        }
    }
    Ok(out)
}

fn paths(value: &Value, at: &str) -> MapResult<Paths> {
    let mut out = Paths::default();
    for (key, value) in object(value, at)? {
        if key.starts_with("x-") {
            out.vendor_extension.push(named_any(key, value));
        } else {
            out.path.push(NamedPathItem {
                name: key.clone(),
                value: Some(path_item(value, &format!("{at}[{key:?}]"))?),
            });
        }
    }
    Ok(out)
}

fn path_item(value: &Value, at: &str) -> MapResult<PathItem> {
    let mut out = PathItem::default();
    for (key, value) in object(value, at)? {
        let at = format!("{at}.{key}");
        match key.as_str() {
            "get" => out.get = Some(operation(value, &at)?),
            "put" => out.put = Some(operation(value, &at)?),
            "post" => out.post = Some(operation(value, &at)?),
            "delete" => out.delete = Some(operation(value, &at)?),
            "patch" => out.patch = Some(operation(value, &at)?),
            "parameters" => out.parameters = parameters(value, &at)?,
            k if k.starts_with("x-") => out.vendor_extension.push(named_any(k, value)),
            k => return unsupported(&at, k),
        }
    }
    Ok(out)
}

fn operation(value: &Value, at: &str) -> MapResult<Operation> {
    let mut out = Operation::default();
    for (key, value) in object(value, at)? {
        let at = format!("{at}.{key}");
        match key.as_str() {
            "tags" => out.tags = strings(value, &at)?,
            "summary" => out.summary = string(value, &at)?,
            "description" => out.description = string(value, &at)?,
            "operationId" => out.operation_id = string(value, &at)?,
            "produces" => out.produces = strings(value, &at)?,
            "consumes" => out.consumes = strings(value, &at)?,
            "parameters" => out.parameters = parameters(value, &at)?,
            "responses" => out.responses = Some(responses(value, &at)?),
            "schemes" => out.schemes = strings(value, &at)?,
            "deprecated" => out.deprecated = boolean(value, &at)?,
            k if k.starts_with("x-") => out.vendor_extension.push(named_any(k, value)),
            k => return unsupported(&at, k),
        }
    }
    Ok(out)
}

fn parameters(value: &Value, at: &str) -> MapResult<Vec<ParametersItem>> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("{at}: expected a list"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, p)| parameter(p, &format!("{at}[{i}]")))
        .collect()
}

fn parameter(value: &Value, at: &str) -> MapResult<ParametersItem> {
    let map = object(value, at)?;
    if let Some(reference) = map.get("$ref") {
        return Ok(ParametersItem {
            oneof: Some(ParametersItemOneof::JsonReference(JsonReference {
                reference: string(reference, at)?,
                description: map
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })),
        });
    }
    let location = map.get("in").and_then(Value::as_str).unwrap_or_default();
    let parameter = match location {
        "body" => ParameterOneof::BodyParameter(body_parameter(map, at)?),
        "query" => ParameterOneof::NonBodyParameter(NonBodyParameter {
            oneof: Some(NonBodyParameterOneof::QueryParameterSubSchema(
                query_parameter(map, at)?,
            )),
        }),
        "path" => ParameterOneof::NonBodyParameter(NonBodyParameter {
            oneof: Some(NonBodyParameterOneof::PathParameterSubSchema(
                path_parameter(map, at)?,
            )),
        }),
        other => return Err(format!("{at}: unsupported parameter location {other:?}")),
    };
    Ok(ParametersItem {
        oneof: Some(ParametersItemOneof::Parameter(Parameter {
            oneof: Some(parameter),
        })),
    })
}

fn body_parameter(map: &Map<String, Value>, at: &str) -> MapResult<BodyParameter> {
    let mut out = BodyParameter::default();
    for (key, value) in map {
        match key.as_str() {
            "description" => out.description = string(value, at)?,
            "name" => out.name = string(value, at)?,
            "in" => out.r#in = string(value, at)?,
            "required" => out.required = boolean(value, at)?,
            "schema" => out.schema = Some(Box::new(schema(value, &format!("{at}.schema"))?)),
            k if k.starts_with("x-") => out.vendor_extension.push(named_any(k, value)),
            k => return unsupported(at, k),
        }
    }
    Ok(out)
}

/// Query and path parameters carry the same fields in gnostic's messages:
/// one mapping, instantiated for each.
macro_rules! simple_parameter {
    ($name:ident, $ty:ty) => {
        fn $name(map: &Map<String, Value>, at: &str) -> MapResult<$ty> {
            let mut out = <$ty>::default();
            for (key, value) in map {
                match key.as_str() {
                    "required" => out.required = boolean(value, at)?,
                    "in" => out.r#in = string(value, at)?,
                    "description" => out.description = string(value, at)?,
                    "name" => out.name = string(value, at)?,
                    "type" => out.r#type = string(value, at)?,
                    "format" => out.format = string(value, at)?,
                    "uniqueItems" => out.unique_items = boolean(value, at)?,
                    k if k.starts_with("x-") => out.vendor_extension.push(named_any(k, value)),
                    k => return unsupported(at, k),
                }
            }
            Ok(out)
        }
    };
}

simple_parameter!(query_parameter, QueryParameterSubSchema);
simple_parameter!(path_parameter, PathParameterSubSchema);

fn responses(value: &Value, at: &str) -> MapResult<Responses> {
    let mut out = Responses::default();
    for (code, value) in object(value, at)? {
        if code.starts_with("x-") {
            out.vendor_extension.push(named_any(code, value));
            continue;
        }
        let at = format!("{at}.{code}");
        let mut response = Response::default();
        for (key, value) in object(value, &at)? {
            match key.as_str() {
                "description" => response.description = string(value, &at)?,
                "schema" => {
                    response.schema = Some(SchemaItem {
                        oneof: Some(SchemaItemOneof::Schema(Box::new(schema(
                            value,
                            &format!("{at}.schema"),
                        )?))),
                    })
                }
                k if k.starts_with("x-") => response.vendor_extension.push(named_any(k, value)),
                k => return unsupported(&at, k),
            }
        }
        out.response_code.push(NamedResponseValue {
            name: code.clone(),
            value: Some(ResponseValue {
                oneof: Some(ResponseValueOneof::Response(response)),
            }),
        });
    }
    Ok(out)
}

fn named_schemas(value: &Value, at: &str) -> MapResult<Vec<NamedSchema>> {
    object(value, at)?
        .iter()
        .map(|(name, value)| {
            Ok(NamedSchema {
                name: name.clone(),
                value: Some(schema(value, &format!("{at}[{name:?}]"))?),
            })
        })
        .collect()
}

fn schema(value: &Value, at: &str) -> MapResult<Schema> {
    let mut out = Schema::default();
    for (key, value) in object(value, at)? {
        let at = format!("{at}.{key}");
        match key.as_str() {
            "$ref" => out.reference = string(value, &at)?,
            "format" => out.format = string(value, &at)?,
            "title" => out.title = string(value, &at)?,
            "description" => out.description = string(value, &at)?,
            "default" => out.default = Some(any(value)),
            "maximum" => out.maximum = number(value, &at)?,
            "minimum" => out.minimum = number(value, &at)?,
            "maxLength" => out.max_length = integer(value, &at)?,
            "minLength" => out.min_length = integer(value, &at)?,
            "pattern" => out.pattern = string(value, &at)?,
            "maxItems" => out.max_items = integer(value, &at)?,
            "minItems" => out.min_items = integer(value, &at)?,
            "uniqueItems" => out.unique_items = boolean(value, &at)?,
            "required" => out.required = strings(value, &at)?,
            "enum" => {
                out.r#enum = value
                    .as_array()
                    .ok_or_else(|| format!("{at}: expected a list"))?
                    .iter()
                    .map(any)
                    .collect()
            }
            "additionalProperties" => {
                let choice = match value {
                    Value::Bool(b) => AdditionalPropertiesOneof::Boolean(*b),
                    other => AdditionalPropertiesOneof::Schema(Box::new(schema(other, &at)?)),
                };
                out.additional_properties = Some(AdditionalPropertiesItem {
                    oneof: Some(choice),
                });
            }
            "type" => {
                out.r#type = Some(TypeItem {
                    value: strings(value, &at)?,
                })
            }
            "items" => {
                let schemas = match value {
                    Value::Array(items) => items
                        .iter()
                        .enumerate()
                        .map(|(i, s)| schema(s, &format!("{at}[{i}]")))
                        .collect::<MapResult<Vec<_>>>()?,
                    one => vec![schema(one, &at)?],
                };
                out.items = Some(ItemsItem { schema: schemas });
            }
            "allOf" => {
                out.all_of = value
                    .as_array()
                    .ok_or_else(|| format!("{at}: expected a list"))?
                    .iter()
                    .enumerate()
                    .map(|(i, s)| schema(s, &format!("{at}[{i}]")))
                    .collect::<MapResult<Vec<_>>>()?
            }
            "properties" => {
                out.properties = Some(Properties {
                    additional_properties: named_schemas(value, &at)?,
                })
            }
            "readOnly" => out.read_only = boolean(value, &at)?,
            "example" => out.example = Some(any(value)),
            k if k.starts_with("x-") => out.vendor_extension.push(named_any(k, value)),
            k => return unsupported(&at, k),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use serde_json::json;

    #[test]
    fn a_document_round_trips_and_keeps_extensions_as_yaml() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": {"/api/v1/namespaces/{namespace}/pods/{name}": {
                "parameters": [{"name": "name", "in": "path", "required": true, "type": "string", "uniqueItems": true}],
                "patch": {
                    "operationId": "patchCoreV1NamespacedPod",
                    "consumes": ["application/strategic-merge-patch+json"],
                    "parameters": [
                        {"name": "body", "in": "body", "required": true, "schema": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}},
                        {"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true}
                    ],
                    "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/io.k8s.api.core.v1.Pod"}}},
                    "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "Pod"}
                }
            }},
            "definitions": {"io.k8s.api.core.v1.PodSpec": {
                "type": "object",
                "required": ["containers"],
                "properties": {
                    "containers": {"type": "array", "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Container"}, "x-kubernetes-patch-merge-key": "name"},
                    "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
                    "restartPolicy": {"type": "string", "enum": ["Always", "Never"]}
                }
            }}
        });
        let document = Document::from_json(&doc).expect("maps");
        let bytes = document.encode_to_vec();
        let decoded = Document::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded, document);

        let spec = decoded
            .definitions
            .as_ref()
            .and_then(|d| d.additional_properties.first())
            .and_then(|n| n.value.as_ref())
            .expect("PodSpec");
        let properties = &spec
            .properties
            .as_ref()
            .expect("properties")
            .additional_properties;
        assert_eq!(properties[0].name, "containers");
        let containers = properties[0].value.as_ref().expect("containers");
        assert_eq!(
            containers
                .items
                .as_ref()
                .map(|i| i.schema[0].reference.as_str()),
            Some("#/definitions/io.k8s.api.core.v1.Container")
        );
        assert_eq!(
            containers.vendor_extension[0].name,
            "x-kubernetes-patch-merge-key"
        );
        assert_eq!(
            containers.vendor_extension[0]
                .value
                .as_ref()
                .map(|a| a.yaml.as_str()),
            Some("\"name\"")
        );
        let patch = decoded
            .paths
            .as_ref()
            .and_then(|p| p.path[0].value.as_ref())
            .and_then(|i| i.patch.as_ref())
            .expect("patch");
        let gvk = &patch.vendor_extension[0];
        let yaml = gvk
            .value
            .as_ref()
            .map(|a| a.yaml.as_str())
            .unwrap_or_default();
        assert_eq!(
            serde_json::from_str::<Value>(yaml).ok(),
            Some(json!({"group": "", "version": "v1", "kind": "Pod"}))
        );
        assert!(patch.parameters.iter().any(|p| matches!(
            &p.oneof,
            Some(ParametersItemOneof::Parameter(Parameter { oneof: Some(ParameterOneof::NonBodyParameter(NonBodyParameter { oneof: Some(NonBodyParameterOneof::QueryParameterSubSchema(q)) })) })) if q.name == "fieldValidation"
        )));
    }

    #[test]
    fn unmapped_keys_are_errors_not_silent_losses() {
        let err = Document::from_json(&json!({"definitions": {"X": {"oneOf": []}}}));
        assert_eq!(
            err,
            Err("$.definitions[\"X\"].oneOf: unsupported key \"oneOf\"".to_string())
        );
    }
}
