//! The resource registry: which kinds the server serves, and the one generic
//! store that serves all of them.
//!
//! A kind is data: its names, scope, subresources and a [`Strategy`]. Adding
//! a built-in kind means adding a row to [`kinds`]; no handler changes.

pub mod admission;
pub mod apply;
pub mod conversion;
pub mod eviction;
pub mod intern;
pub mod kinds;
pub mod meta;
pub mod scale;
pub mod store;
pub mod strategies;
pub mod strategy;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

pub use strategy::Strategy;

/// Decodes a JSON object into the kind's typed form and back (built-in
/// kinds) or prunes it by its schema (custom resources), so that wrong
/// field types are refused and the stored JSON is normalised.
pub type Codec = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// Adds the kind's schema (and everything it references) to a generator.
pub type SchemaFn = Arc<dyn Fn(&mut schemars::SchemaGenerator) -> schemars::Schema + Send + Sync>;

/// Everything the server knows about one served resource.
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Kind, e.g. `Pod`.
    pub kind: &'static str,
    /// The list kind, e.g. `PodList`.
    pub list_kind: &'static str,
    /// Plural resource name used in URLs, e.g. `pods`.
    pub plural: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names, e.g. `po`.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Subresources served besides the main resource, e.g. `status`.
    pub subresources: &'static [&'static str],
    /// The storage key segment (usually the plural).
    pub storage_resource: &'static str,
    /// Per-kind behaviour.
    pub strategy: Arc<dyn Strategy>,
    /// Typed round trip of the kind.
    pub codec: Codec,
    /// OpenAPI schema of the kind.
    pub schema: SchemaFn,
    /// How objects map onto storage when they share it with another
    /// version's kind (events.k8s.io/v1 Events); `None`: stored as served.
    pub conversion: Option<conversion::Conversion>,
}

impl ResourceInfo {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The lowercase singular name kubectl accepts, e.g. `pod`.
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    /// Whether the resource serves `sub` (e.g. `status`).
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }
}

/// All served resources, looked up by group, version and plural.
pub struct Registry {
    resources: Vec<Arc<ResourceInfo>>,
    by_path: BTreeMap<(String, String, String), Arc<ResourceInfo>>,
}

impl Registry {
    /// The registry of every built-in kind.
    pub fn builtin() -> Self {
        Self::from_resources(kinds::all())
    }

    /// The built-in kinds plus `custom` ones (served versions of CRDs).
    pub fn with_custom(custom: Vec<ResourceInfo>) -> Self {
        let mut rows = kinds::all();
        rows.extend(custom);
        Self::from_resources(rows)
    }

    /// Builds a registry from resource rows.
    pub fn from_resources(rows: Vec<ResourceInfo>) -> Self {
        let resources: Vec<Arc<ResourceInfo>> = rows.into_iter().map(Arc::new).collect();
        let by_path = resources
            .iter()
            .map(|r| {
                (
                    (
                        r.group.to_string(),
                        r.version.to_string(),
                        r.plural.to_string(),
                    ),
                    r.clone(),
                )
            })
            .collect();
        Registry { resources, by_path }
    }

    /// Finds a resource by its URL coordinates.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<ResourceInfo>> {
        self.by_path
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// Every resource, in table order.
    pub fn all(&self) -> &[Arc<ResourceInfo>] {
        &self.resources
    }

    /// The served groups (core first as ""), each with its versions in
    /// preference order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.resources {
            match out.iter_mut().find(|(g, _)| g == r.group) {
                Some((_, versions)) => {
                    if !versions.iter().any(|v| v == r.version) {
                        versions.push(r.version.to_string());
                    }
                }
                None => out.push((r.group.to_string(), vec![r.version.to_string()])),
            }
        }
        out
    }

    /// Resources of one group-version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceInfo>> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    }
}
