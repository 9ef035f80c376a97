//! What a configMap, secret, downwardAPI or projected volume holds, as
//! upstream's volume plugins lay it out: every key as a file (or only the
//! `items`, at their `path`s), `defaultMode` unless an item sets `mode`,
//! an optional source that is missing giving no files, and a missing key
//! or source refused with upstream's message.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};
use kube::api::Api;

use super::atomic::File;
use crate::pods::env::{PodFacts, field_ref, resource_field_ref};

/// Upstream's default mode of projected files (0644).
pub const DEFAULT_MODE: i32 = 0o644;

/// The files of one volume, by relative path.
pub type Files = BTreeMap<String, File>;

/// Key/value data of a ConfigMap or Secret, as bytes.
pub type Data = BTreeMap<String, Vec<u8>>;

/// Reads the ConfigMaps and Secrets volumes are made of.
pub struct Fetch {
    /// API client.
    pub client: kube::Client,
}

impl Fetch {
    /// A ConfigMap's `data` and `binaryData`, `None` when it is missing.
    pub async fn config_map(&self, ns: &str, name: &str) -> Result<Option<Data>, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let cm = api.get_opt(name).await.map_err(|e| e.to_string())?;
        Ok(cm.map(|cm| {
            let mut data: Data = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            data.extend(
                cm.binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            data
        }))
    }

    /// A Secret's decoded `data`, `None` when it is missing.
    pub async fn secret(&self, ns: &str, name: &str) -> Result<Option<Data>, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let s = api.get_opt(name).await.map_err(|e| e.to_string())?;
        Ok(s.map(|s| {
            s.data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()
        }))
    }
}

fn mode(item: Option<i32>, default: Option<i32>) -> u32 {
    (item.or(default).unwrap_or(DEFAULT_MODE) & 0o777) as u32
}

/// The files of a ConfigMap or Secret (`kind` names it in messages):
/// all keys, or `items`.
pub fn from_data(
    kind: &str,
    name: &str,
    data: Option<Data>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Files, String> {
    let Some(data) = data else {
        return if optional {
            Ok(Files::new())
        } else {
            Err(format!("{kind} {name:?} not found"))
        };
    };
    let mut files = Files::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                files.insert(
                    k,
                    File {
                        data: v,
                        mode: mode(None, default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => {
                        files.insert(
                            item.path.clone(),
                            File {
                                data: v.clone(),
                                mode: mode(item.mode, default_mode),
                            },
                        );
                    }
                    None if optional => {}
                    None => {
                        return Err(format!(
                            "{} references non-existent config key: {}",
                            kind.to_lowercase(),
                            item.key
                        ));
                    }
                }
            }
        }
    }
    Ok(files)
}

/// The files of downwardAPI items.
pub fn downward(
    pod: &Pod,
    facts: &PodFacts,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
) -> Result<Files, String> {
    let mut files = Files::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            field_ref(pod, facts, &f.field_path).map_err(|e| e.0)?
        } else if let Some(r) = &item.resource_field_ref {
            let spec = pod.spec.clone().unwrap_or_default();
            let container = spec
                .containers
                .iter()
                .find(|c| Some(c.name.as_str()) == r.container_name.as_deref())
                .ok_or_else(|| {
                    format!(
                        "container {:?} not found for resourceFieldRef",
                        r.container_name
                    )
                })?;
            resource_field_ref(
                container,
                facts,
                &r.resource,
                r.divisor.as_ref().map(|d| d.0.as_str()),
            )
            .map_err(|e| e.0)?
        } else {
            continue;
        };
        files.insert(
            item.path.clone(),
            File {
                data: value.into_bytes(),
                mode: mode(item.mode, default_mode),
            },
        );
    }
    Ok(files)
}

/// The files of a configMap, secret, downwardAPI or projected volume, or
/// `None` for the other kinds.
pub async fn of_volume(
    fetch: &Fetch,
    pod: &Pod,
    facts: &PodFacts,
    v: &Volume,
) -> Option<Result<Files, String>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(cm) = &v.config_map {
        return Some(match fetch.config_map(ns, &cm.name).await {
            Ok(data) => from_data(
                "configmap",
                &cm.name,
                data,
                cm.items.as_deref(),
                cm.default_mode,
                cm.optional.unwrap_or(false),
            ),
            Err(e) => Err(e),
        });
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        return Some(match fetch.secret(ns, &name).await {
            Ok(data) => from_data(
                "secret",
                &name,
                data,
                s.items.as_deref(),
                s.default_mode,
                s.optional.unwrap_or(false),
            ),
            Err(e) => Err(e),
        });
    }
    if let Some(d) = &v.downward_api {
        return Some(downward(
            pod,
            facts,
            d.items.as_deref().unwrap_or_default(),
            d.default_mode,
        ));
    }
    let p = v.projected.as_ref()?;
    let mut files = Files::new();
    for source in p.sources.iter().flatten() {
        let part = if let Some(cm) = &source.config_map {
            match fetch.config_map(ns, &cm.name).await {
                Ok(data) => from_data(
                    "configmap",
                    &cm.name,
                    data,
                    cm.items.as_deref(),
                    p.default_mode,
                    cm.optional.unwrap_or(false),
                ),
                Err(e) => Err(e),
            }
        } else if let Some(s) = &source.secret {
            match fetch.secret(ns, &s.name).await {
                Ok(data) => from_data(
                    "secret",
                    &s.name,
                    data,
                    s.items.as_deref(),
                    p.default_mode,
                    s.optional.unwrap_or(false),
                ),
                Err(e) => Err(e),
            }
        } else if let Some(d) = &source.downward_api {
            downward(
                pod,
                facts,
                d.items.as_deref().unwrap_or_default(),
                p.default_mode,
            )
        } else {
            // serviceAccountToken and clusterTrustBundle: no token issuer yet.
            Ok(Files::new())
        };
        match part {
            Ok(f) => files.extend(f),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(Ok(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> Data {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn items_pick_keys_with_their_modes() {
        let items: Vec<KeyToPath> = serde_json::from_value(serde_json::json!([
            {"key": "a", "path": "dir/a.txt", "mode": 0o400}
        ]))
        .unwrap_or_default();
        let files = from_data(
            "configmap",
            "cm",
            Some(data(&[("a", "1"), ("b", "2")])),
            Some(&items),
            Some(0o600),
            false,
        );
        let files = files.unwrap_or_default();
        assert_eq!(files.len(), 1);
        assert_eq!(files["dir/a.txt"].mode, 0o400);
        let all = from_data(
            "secret",
            "s",
            Some(data(&[("a", "1")])),
            None,
            Some(0o600),
            false,
        )
        .unwrap_or_default();
        assert_eq!(all["a"].mode, 0o600);
    }

    #[test]
    fn missing_sources_and_keys_are_refused_unless_optional() {
        assert_eq!(
            from_data("configmap", "cm", None, None, None, false),
            Err("configmap \"cm\" not found".to_string())
        );
        assert_eq!(
            from_data("configmap", "cm", None, None, None, true),
            Ok(Files::new())
        );
        let items: Vec<KeyToPath> =
            serde_json::from_value(serde_json::json!([{"key": "x", "path": "x"}]))
                .unwrap_or_default();
        assert_eq!(
            from_data(
                "configmap",
                "cm",
                Some(data(&[])),
                Some(&items),
                None,
                false
            ),
            Err("configmap references non-existent config key: x".to_string())
        );
    }
}
