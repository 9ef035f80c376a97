//! Discovery documents, generated once from the registry: the legacy
//! `/api`, `/apis`, per-group and per-version lists, and the aggregated
//! `apidiscovery.k8s.io/v2` form kubectl ≥ 1.30 asks for first.

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceInfo};

/// Verbs every served resource supports.
pub const RESOURCE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Media type of aggregated discovery responses.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// (verbs, response kind) of a subresource.
fn subresource_shape(
    info: &ResourceInfo,
    sub: &str,
) -> (
    &'static [&'static str],
    (&'static str, &'static str, &'static str),
) {
    match sub {
        "binding" => (&["create"], ("", "v1", "Binding")),
        "eviction" => (&["create"], ("policy", "v1", "Eviction")),
        "log" => (&["get"], ("", "v1", "Pod")),
        "exec" => (&["create", "get"], ("", "v1", "PodExecOptions")),
        "attach" => (&["create", "get"], ("", "v1", "PodAttachOptions")),
        "portforward" => (&["create", "get"], ("", "v1", "PodPortForwardOptions")),
        "finalize" => (&["update"], (info.group, info.version, info.kind)),
        "scale" => (&["get", "patch", "update"], ("autoscaling", "v1", "Scale")),
        _ => (
            &["get", "patch", "update"],
            (info.group, info.version, info.kind),
        ),
    }
}

fn api_resource_list(registry: &Registry, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in registry.in_group_version(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": RESOURCE_VERBS,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let (verbs, (g, v, kind)) = subresource_shape(r, sub);
            let mut e = json!({"name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs});
            if !g.is_empty() {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            resources.push(e);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn aggregated_group(registry: &Registry, group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = registry
                .in_group_version(group, v)
                .map(|r| {
                    let subs: Vec<Value> = r
                        .subresources
                        .iter()
                        .map(|sub| {
                            let (verbs, (g, ver, kind)) = subresource_shape(r, sub);
                            json!({"subresource": sub, "responseKind": {"group": g, "version": ver, "kind": kind}, "verbs": verbs})
                        })
                        .collect();
                    let mut e = json!({
                        "resource": r.plural,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular(),
                        "verbs": RESOURCE_VERBS,
                    });
                    if !r.short_names.is_empty() {
                        e["shortNames"] = json!(r.short_names);
                    }
                    if !r.categories.is_empty() {
                        e["categories"] = json!(r.categories);
                    }
                    if !subs.is_empty() {
                        e["subresources"] = Value::Array(subs);
                    }
                    e
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// Every discovery document, rendered once.
pub struct Discovery {
    /// `/api` (legacy).
    pub api: Vec<u8>,
    /// `/api` (aggregated).
    pub api_aggregated: Vec<u8>,
    /// `/apis` (legacy).
    pub apis: Vec<u8>,
    /// `/apis` (aggregated).
    pub apis_aggregated: Vec<u8>,
    /// `/apis/<group>`.
    pub groups: Vec<(String, Vec<u8>)>,
    /// `/api/v1` and `/apis/<group>/<version>` by path.
    pub resource_lists: Vec<(String, Vec<u8>)>,
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

impl Discovery {
    /// Renders discovery for a registry.
    pub fn new(registry: &Registry) -> Self {
        let groups = registry.groups();
        let core_versions: Vec<String> = groups
            .iter()
            .find(|(g, _)| g.is_empty())
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let named: Vec<&(String, Vec<String>)> =
            groups.iter().filter(|(g, _)| !g.is_empty()).collect();
        let api = json!({"kind": "APIVersions", "versions": core_versions, "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]});
        let list = |items: Vec<Value>| json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items});
        let api_aggregated = list(vec![aggregated_group(registry, "", &core_versions)]);
        let apis = json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": named.iter().map(|(g, v)| group_entry(g, v)).collect::<Vec<_>>()});
        let apis_aggregated = list(
            named
                .iter()
                .map(|(g, v)| aggregated_group(registry, g, v))
                .collect(),
        );
        let group_docs = named
            .iter()
            .map(|(g, v)| {
                let mut doc = group_entry(g, v);
                doc["kind"] = json!("APIGroup");
                doc["apiVersion"] = json!("v1");
                (format!("/apis/{g}"), bytes(&doc))
            })
            .collect();
        let mut resource_lists: Vec<(String, Vec<u8>)> = core_versions
            .iter()
            .map(|v| {
                (
                    format!("/api/{v}"),
                    bytes(&api_resource_list(registry, "", v)),
                )
            })
            .collect();
        for (g, versions) in &named {
            for v in versions {
                resource_lists.push((
                    format!("/apis/{g}/{v}"),
                    bytes(&api_resource_list(registry, g, v)),
                ));
            }
        }
        Discovery {
            api: bytes(&api),
            api_aggregated: bytes(&api_aggregated),
            apis: bytes(&apis),
            apis_aggregated: bytes(&apis_aggregated),
            groups: group_docs,
            resource_lists,
        }
    }

    /// The document for a non-resource discovery path, and whether it is
    /// the aggregated form.
    pub fn lookup(&self, path: &str, aggregated: bool) -> Option<(&[u8], bool)> {
        let path = path.trim_end_matches('/');
        match (path, aggregated) {
            ("/api", true) => Some((&self.api_aggregated, true)),
            ("/api", false) => Some((&self.api, false)),
            ("/apis", true) => Some((&self.apis_aggregated, true)),
            ("/apis", false) => Some((&self.apis, false)),
            _ => self
                .groups
                .iter()
                .chain(self.resource_lists.iter())
                .find(|(p, _)| p == path)
                .map(|(_, b)| (b.as_slice(), false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_pods_with_short_names_and_subresources() {
        let d = Discovery::new(&Registry::builtin());
        let Some((body, _)) = d.lookup("/api/v1", false) else {
            panic!("core list served")
        };
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        let names: Vec<&str> = v["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str())
            .collect();
        for want in [
            "pods",
            "pods/status",
            "pods/binding",
            "namespaces/finalize",
            "configmaps",
            "nodes",
        ] {
            assert!(names.contains(&want), "{want} missing");
        }
        let pods = v["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == "pods")
            .cloned()
            .unwrap_or_default();
        assert_eq!(pods["shortNames"], json!(["po"]));
    }

    #[test]
    fn aggregated_apis_names_each_group() {
        let d = Discovery::new(&Registry::builtin());
        let Some((body, true)) = d.lookup("/apis", true) else {
            panic!("aggregated served")
        };
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        let groups: Vec<&str> = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["metadata"]["name"].as_str())
            .collect();
        assert!(groups.contains(&"apps") && groups.contains(&"batch") && !groups.contains(&""));
    }
}
