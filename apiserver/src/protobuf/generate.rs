//! Generates `descriptors.json`, the descriptor table, so that no message
//! is described by hand.
//!
//! Field numbers and types come from k8s-pb's prost-generated sources
//! (found with `cargo metadata`): each `#[prost(string, optional, tag =
//! "1")]` attribute and the `pub name: Type,` after it, with `super::`
//! paths resolved against the file's module. prost snake-cases the proto
//! names (`hostIP` becomes `host_ip`), so the JSON names come from
//! k8s-openapi's OpenAPI schemas of the same messages (`api.core.v1.Pod` is
//! `io.k8s.api.core.v1.Pod`): the property equal to the prost name once
//! both are lowercased without underscores. A proto field with no property
//! (`clusterName`, dropped from JSON upstream) is left out. The table
//! holds the messages reachable from the kinds below and every served
//! kind, with their lists.
//!
//! Regenerate: `cargo test -p capstan-apiserver protobuf::generate -- --ignored`.
//! `descriptor_table_is_up_to_date` fails when the committed file differs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authn, authorization::v1 as authz,
    autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling, batch::v1 as batch,
    certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, networking::v1 as networking,
    node::v1 as node, policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling,
    storage::v1 as storage,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::Value;

use super::descriptor::{DESCRIPTORS_JSON, WELL_KNOWN};
use crate::registry::{Registry, SchemaFn};

const SCHEMA_PREFIX: &str = "#/components/schemas/";

/// A kind whose messages the table describes.
struct Root {
    /// `apps/v1`, or `*` for kinds every group-version registers.
    api_version: String,
    kind: String,
    list_kind: Option<String>,
    schema: SchemaFn,
}

fn schema<K: schemars::JsonSchema>(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<K>()
}

fn kind<K: k8s_openapi::Resource + schemars::JsonSchema + 'static>() -> Root {
    Root {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        list_kind: None,
        schema: std::sync::Arc::new(schema::<K>),
    }
}

fn listed<K: k8s_openapi::ListableResource + schemars::JsonSchema + 'static>() -> Root {
    Root {
        list_kind: Some(K::LIST_KIND.into()),
        ..kind::<K>()
    }
}

fn any_version<K: schemars::JsonSchema + 'static>(kind: &str) -> Root {
    Root {
        api_version: "*".into(),
        kind: kind.into(),
        list_kind: None,
        schema: std::sync::Arc::new(schema::<K>),
    }
}

/// Every served kind, and the kinds clients send besides: subresource
/// bodies, reviews, and what `kubectl create` makes.
fn roots() -> Vec<Root> {
    let mut roots: Vec<Root> = Registry::builtin()
        .all()
        .iter()
        .filter(|r| super::has_protobuf(r.group))
        .map(|r| Root {
            api_version: r.api_version(),
            kind: r.kind.into(),
            list_kind: Some(r.list_kind.into()),
            schema: r.schema.clone(),
        })
        .collect();
    roots.extend([
        any_version::<meta::DeleteOptions>("DeleteOptions"),
        any_version::<meta::Status>("Status"),
        kind::<core::Binding>(),
        listed::<core::ComponentStatus>(),
        listed::<core::PodTemplate>(),
        kind::<policy::Eviction>(),
        kind::<autoscaling_v1::Scale>(),
        listed::<autoscaling_v1::HorizontalPodAutoscaler>(),
        kind::<authn::TokenRequest>(),
        kind::<authn::TokenReview>(),
        kind::<authn::SelfSubjectReview>(),
        kind::<authz::SelfSubjectAccessReview>(),
        kind::<authz::SelfSubjectRulesReview>(),
        kind::<authz::SubjectAccessReview>(),
        kind::<authz::LocalSubjectAccessReview>(),
        listed::<rbac::Role>(),
        listed::<rbac::RoleBinding>(),
        listed::<rbac::ClusterRole>(),
        listed::<rbac::ClusterRoleBinding>(),
        listed::<networking::NetworkPolicy>(),
        listed::<networking::IngressClass>(),
        listed::<networking::IPAddress>(),
        listed::<networking::ServiceCIDR>(),
        listed::<storage::CSIDriver>(),
        listed::<storage::CSINode>(),
        listed::<storage::CSIStorageCapacity>(),
        listed::<storage::VolumeAttachment>(),
        listed::<certificates::CertificateSigningRequest>(),
        listed::<node::RuntimeClass>(),
        listed::<apps::ControllerRevision>(),
        listed::<batch::CronJob>(),
        listed::<coordination::Lease>(),
        listed::<discovery::EndpointSlice>(),
        listed::<events::Event>(),
        listed::<autoscaling::HorizontalPodAutoscaler>(),
        listed::<scheduling::PriorityClass>(),
    ]);
    let mut seen = BTreeSet::new();
    roots.retain(|r| seen.insert((r.api_version.clone(), r.kind.clone())));
    roots
}

/// How a field repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Singular,
    Repeated,
    Map,
}

/// A field as k8s-pb declares it.
#[derive(Debug)]
struct SourceField {
    tag: u32,
    rust_name: String,
    label: Label,
    /// `string`, `bool`, ... or `message`.
    scalar: String,
    /// The resolved message name (`api.core.v1.PodSpec`) of message fields.
    message: Option<String>,
}

/// The host's target triple, so `cargo metadata` needs only the packages
/// this machine builds (all of them are downloaded; others may not be).
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("running rustc -vV");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

/// The `src` directory of the k8s-pb this workspace resolves.
fn k8s_pb_src() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &host_triple(),
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let path = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "k8s-pb")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("k8s-pb is a dependency of the workspace");
    Path::new(path)
        .parent()
        .expect("a manifest has a directory")
        .join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("reading k8s-pb sources")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The dotted module of a source file: `api/core/v1/mod.rs` is `api.core.v1`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    if last != "mod.rs" && last != "lib.rs" {
        parts.push(last.trim_end_matches(".rs").to_string());
    }
    parts.join(".")
}

/// Resolves a Rust type path written in `module` to a dotted message name.
fn resolve(module: &str, path: &str) -> String {
    if let Some(abs) = path.strip_prefix("crate::") {
        return abs.replace("::", ".");
    }
    let mut base: Vec<&str> = if module.is_empty() {
        Vec::new()
    } else {
        module.split('.').collect()
    };
    let mut rest = path;
    while let Some(r) = rest.strip_prefix("super::") {
        base.pop();
        rest = r;
    }
    base.extend(rest.split("::"));
    base.join(".")
}

/// The message type inside a field's Rust type, wrappers removed.
fn inner_type(ty: &str) -> String {
    let mut t = ty.to_string();
    for wrapper in [
        "::core::option::Option<",
        "::prost::alloc::vec::Vec<",
        "::prost::alloc::boxed::Box<",
        "::prost::alloc::collections::BTreeMap<::prost::alloc::string::String,",
    ] {
        t = t.replace(wrapper, "");
    }
    t.trim_end_matches([',', '>']).to_string()
}

fn parse_attr(attr: &str) -> (String, Label, u32) {
    let tag = attr
        .split("tag = \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no tag in #[prost({attr})]"));
    if let Some(map) = attr
        .strip_prefix("btree_map = \"")
        .or_else(|| attr.strip_prefix("hash_map = \""))
    {
        let spec = map.split('"').next().unwrap_or_default();
        let (key, value) = spec
            .split_once(", ")
            .unwrap_or_else(|| panic!("map spec {spec}"));
        assert_eq!(key, "string", "only string-keyed maps are expected: {attr}");
        return (value.to_string(), Label::Map, tag);
    }
    let first = attr.split(',').next().unwrap_or_default().trim();
    let scalar = first.split(" =").next().unwrap_or_default().to_string();
    let known = [
        "string", "bool", "int32", "int64", "double", "float", "bytes", "message",
    ];
    assert!(
        known.contains(&scalar.as_str()),
        "unexpected prost type {scalar} in #[prost({attr})]"
    );
    let label = if attr.contains("repeated") {
        Label::Repeated
    } else {
        Label::Singular
    };
    (scalar, label, tag)
}

/// Every message k8s-pb declares, with its fields.
fn parse_sources(src: &Path) -> BTreeMap<String, (String, Vec<SourceField>)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut messages = BTreeMap::new();
    for file in files {
        let module = module_of(src, &file);
        let text = std::fs::read_to_string(&file).expect("reading a k8s-pb source");
        let mut lines = text.lines();
        let mut current: Option<(String, Vec<SourceField>)> = None;
        while let Some(line) = lines.next() {
            if let Some(rest) = line.strip_prefix("pub struct ") {
                let name = rest.split([' ', '{', ';']).next().unwrap_or_default();
                let full = if module.is_empty() {
                    name.to_string()
                } else {
                    format!("{module}.{name}")
                };
                if rest.trim_end().ends_with('{') {
                    current = Some((full, Vec::new()));
                } else {
                    let previous = messages.insert(type_key(&full), (full, Vec::new()));
                    assert!(
                        previous.is_none(),
                        "two k8s-pb messages share the key {previous:?}"
                    );
                }
            } else if line == "}" {
                if let Some((name, fields)) = current.take() {
                    let previous = messages.insert(type_key(&name), (name, fields));
                    assert!(
                        previous.is_none(),
                        "two k8s-pb messages share the key {:?}",
                        previous.map(|p| p.0)
                    );
                }
            } else if let (Some((_, fields)), Some(attr)) =
                (current.as_mut(), line.trim().strip_prefix("#[prost("))
            {
                let attr = attr
                    .strip_suffix(")]")
                    .unwrap_or_else(|| panic!("multi-line prost attribute: {line}"));
                let (scalar, label, tag) = parse_attr(attr);
                let mut decl = String::new();
                for next in lines.by_ref() {
                    decl.extend(next.chars().filter(|c| !c.is_whitespace()));
                    let depth = decl.matches('<').count() as i64 - decl.matches('>').count() as i64;
                    if depth == 0 && decl.ends_with(',') {
                        break;
                    }
                }
                let (name, ty) = decl
                    .strip_prefix("pub")
                    .and_then(|d| d.split_once(':'))
                    .unwrap_or_else(|| panic!("field after #[prost({attr})]: {decl}"));
                let message = (scalar == "message").then(|| resolve(&module, &inner_type(ty)));
                fields.push(SourceField {
                    tag,
                    rust_name: name.to_string(),
                    label,
                    scalar,
                    message,
                });
            }
        }
    }
    messages
}

/// Names compared case- and underscore-blind: `host_ip` ~ `hostIP`,
/// `external_i_ps` ~ `externalIPs`, `r#type` ~ `type`.
fn fold(name: &str) -> String {
    name.trim_start_matches("r#")
        .chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Checks that the OpenAPI property agrees with the proto field's shape,
/// so a wrong join cannot pass silently.
fn check_shape(message: &str, json_name: &str, field: &SourceField, property: &Value) {
    let ty = property["type"].as_str();
    let ok = match field.label {
        Label::Repeated => ty == Some("array"),
        Label::Map => ty == Some("object") && property.get("additionalProperties").is_some(),
        Label::Singular => match field.scalar.as_str() {
            "string" | "bytes" => ty == Some("string"),
            "bool" => ty == Some("boolean"),
            "int32" | "int64" => ty == Some("integer"),
            "double" | "float" => ty == Some("number"),
            _ => ty.is_none() || ty == Some("object"),
        },
    };
    assert!(
        ok,
        "{message}.{json_name}: proto {field:?} does not match OpenAPI {property}"
    );
}

/// Whether a message field with no JSON property of its own is a struct Go
/// embeds inline: some of its fields are properties of the parent.
fn inlined(
    sources: &BTreeMap<String, (String, Vec<SourceField>)>,
    field: &SourceField,
    parent: &BTreeMap<String, &str>,
) -> bool {
    let Some(message) = field
        .message
        .as_deref()
        .filter(|_| field.label == Label::Singular)
    else {
        return false;
    };
    let fields = sources
        .get(&type_key(message))
        .map(|s| s.1.as_slice())
        .unwrap_or_default();
    fields
        .iter()
        .any(|f| parent.contains_key(&fold(&f.rust_name)))
}

/// The lookup key of a message: its module and its folded type name, since
/// prost renames types too (`HTTPGetAction` is `HttpGetAction`).
fn type_key(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((module, ty)) => format!("{module}.{}", fold(ty)),
        None => fold(name),
    }
}

/// The generated file's text, and the proto fields left out for having
/// no JSON name or inlined.
fn generate() -> (String, Vec<String>) {
    let sources = parse_sources(&k8s_pb_src());
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut kinds: BTreeMap<String, String> = BTreeMap::new();
    // Messages by key, named as the protos and OpenAPI name them.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    // Messages to describe, each with the definition naming its fields when
    // it has none of its own (a struct Go inlines into its parent).
    let mut pending: Vec<(String, Option<String>)> = Vec::new();
    for root in roots() {
        let schema = (root.schema)(&mut generator);
        let reference = schema.as_value()["$ref"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let definition = reference
            .strip_prefix(SCHEMA_PREFIX)
            .unwrap_or_else(|| panic!("{} has no named schema", root.kind));
        let message = definition
            .strip_prefix("io.k8s.")
            .unwrap_or_else(|| panic!("schema {definition} is not io.k8s.*"))
            .to_string();
        assert!(
            sources.contains_key(&type_key(&message)),
            "k8s-pb has no message {message} for {}",
            root.kind
        );
        kinds.insert(
            format!("{}/{}", root.api_version, root.kind),
            message.clone(),
        );
        if let Some(list_kind) = root.list_kind {
            let list = format!("{message}List");
            assert!(
                sources.contains_key(&type_key(&list)),
                "k8s-pb has no message {list}"
            );
            kinds.insert(format!("{}/{list_kind}", root.api_version), list.clone());
            names.insert(type_key(&list), list.clone());
            pending.push((type_key(&list), None));
        }
        pending.push((type_key(&message), None));
    }
    let definitions = generator.take_definitions(true);
    for name in definitions.keys().filter_map(|d| d.strip_prefix("io.k8s.")) {
        names.insert(type_key(name), name.to_string());
    }
    let well_known: BTreeSet<String> = WELL_KNOWN.iter().map(|(n, _)| type_key(n)).collect();
    let mut described: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut skipped = Vec::new();
    let mut inline = Vec::new();
    while let Some((key, context)) = pending.pop() {
        if well_known.contains(&key) || !done.insert(key.clone()) {
            continue;
        }
        let (prost_name, fields) = sources
            .get(&key)
            .unwrap_or_else(|| panic!("k8s-pb has no message {key}"));
        let name = names
            .get(&key)
            .cloned()
            .unwrap_or_else(|| prost_name.clone());
        let own = format!("io.k8s.{name}");
        let def_key = if definitions.contains_key(&own) {
            Some(own)
        } else {
            context
        };
        let definition = def_key.as_ref().and_then(|k| definitions.get(k));
        let properties = definition.and_then(|d| d["properties"].as_object());
        let required: BTreeSet<&str> = definition
            .and_then(|d| d["required"].as_array())
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut by_fold: BTreeMap<String, &str> = BTreeMap::new();
        for key in properties.into_iter().flat_map(|p| p.keys()) {
            let previous = by_fold.insert(fold(key), key);
            assert!(
                previous.is_none(),
                "{name}: properties {key} and {previous:?} fold alike"
            );
        }
        let mut out = Vec::new();
        for field in fields {
            let json_name = match properties {
                Some(props) => match by_fold.get(&fold(&field.rust_name)) {
                    Some(key) => {
                        check_shape(&name, key, field, &props[*key]);
                        key.to_string()
                    }
                    // Go inlines this struct's fields into the parent's JSON
                    // (`Volume` holds `VolumeSource`'s): the name is empty.
                    None if inlined(&sources, field, &by_fold) => {
                        let k = type_key(field.message.as_deref().unwrap_or_default());
                        pending.push((k, def_key.clone()));
                        inline.push(format!("{name}.{}", field.rust_name));
                        String::new()
                    }
                    // In the proto, not in JSON (e.g. ObjectMeta.clusterName).
                    None => {
                        skipped.push(format!("{name}.{}", field.rust_name));
                        continue;
                    }
                },
                // Lists have no schema: their fields are `metadata` and `items`.
                None => {
                    assert!(
                        !field.rust_name.contains('_'),
                        "{name}.{} has no schema to name it",
                        field.rust_name
                    );
                    field.rust_name.clone()
                }
            };
            let base = match &field.message {
                Some(m) => {
                    let k = type_key(m);
                    if !json_name.is_empty() {
                        pending.push((k.clone(), None));
                    }
                    names.get(&k).cloned().unwrap_or_else(|| m.clone())
                }
                None => field.scalar.clone(),
            };
            let ty = match field.label {
                Label::Singular => base,
                Label::Repeated => format!("[]{base}"),
                Label::Map => format!("{{}}{base}"),
            };
            let bang = if required.contains(json_name.as_str()) {
                "!"
            } else {
                ""
            };
            out.push(
                serde_json::to_string(&(field.tag, json_name, format!("{ty}{bang}")))
                    .expect("a field serializes"),
            );
        }
        described.insert(name, out);
    }
    let mut text = String::from("{\"kinds\":{\n");
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), Value::from(v.as_str())))
        .collect();
    text.push_str(&kinds.join(",\n"));
    text.push_str("\n},\n\"messages\":{\n");
    let messages: Vec<String> = described
        .iter()
        .map(|(name, fields)| format!("{}:[{}]", Value::from(name.as_str()), fields.join(",")))
        .collect();
    text.push_str(&messages.join(",\n"));
    text.push_str("\n}}\n");
    skipped.extend(inline.iter().map(|i| format!("{i} (inlined)")));
    (text, skipped)
}

fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/protobuf/descriptors.json")
}

/// Writes `descriptors.json` afresh.
#[test]
#[ignore = "writes src/protobuf/descriptors.json; run after bumping k8s-pb or k8s-openapi, or adding a kind"]
fn regenerate_descriptor_table() {
    let (text, skipped) = generate();
    std::fs::write(committed_path(), &text).expect("writing descriptors.json");
    println!(
        "wrote {} ({} bytes)",
        committed_path().display(),
        text.len()
    );
    println!("proto fields left out (no JSON name) or inlined: {skipped:#?}");
}

/// The committed table is what k8s-pb and k8s-openapi say today, and it
/// covers every served kind.
#[test]
fn descriptor_table_is_up_to_date() {
    assert!(
        generate().0 == DESCRIPTORS_JSON,
        "src/protobuf/descriptors.json is stale: run `cargo test -p capstan-apiserver protobuf::generate -- --ignored`"
    );
}
