//! A container's environment as upstream's kubelet makes it
//! (`makeEnvironmentVariables`): `envFrom` sources first, then `env` in
//! order, each value with `$(VAR)` references expanded against what came
//! before; `valueFrom` reads ConfigMap and Secret keys, pod fields
//! (Downward API) and container resources. The same expansion applies to
//! `command` and `args`.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;

use capstan_component_helpers::quantity::parse_milli;

/// Why a container's config could not be made: shown as the waiting
/// reason `CreateContainerConfigError` with this message, as upstream.
#[derive(Debug)]
pub struct ConfigError(pub String);

/// Where ConfigMaps and Secrets come from (the API; a map in tests).
pub trait Sources {
    /// The data of ConfigMap `name`, `None` when it does not exist.
    fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>, String>> + Send;
    /// The decoded data of Secret `name`, `None` when it does not exist.
    fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>, String>> + Send;
}

/// ConfigMaps and Secrets read from the apiserver at container start.
pub struct ApiSources(pub kube::Client);

impl Sources for ApiSources {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.0.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(cm)) => {
                let mut data = cm.data.unwrap_or_default();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                }
                Ok(Some(data))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, String> {
        let api: Api<Secret> = Api::namespaced(self.0.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(s)) => {
                let mut data: BTreeMap<String, String> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                data.extend(s.string_data.unwrap_or_default());
                Ok(Some(data))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Pod facts the Downward API exposes that are not in the Pod object yet.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    /// The node's IP (`status.hostIP`).
    pub host_ip: String,
    /// The pod's IPs (`status.podIP`, `status.podIPs`).
    pub pod_ips: Vec<String>,
    /// The node's allocatable CPU (millicores) and memory (bytes), for
    /// `resourceFieldRef` of a container without limits.
    pub node_milli_cpu: i64,
    /// See [`PodFacts::node_milli_cpu`].
    pub node_memory: i64,
}

/// Expands `$(VAR)` in `text` as upstream's `expansion.Expand`: a known
/// variable is replaced, `$$` is an escaped `$`, anything else stays.
pub fn expand(text: &str, vars: &HashMap<String, String>) -> String {
    expand_with(text, vars, &BTreeMap::new())
}

/// [`expand`] looking names up in `vars`, then in `fallback` (upstream's
/// `MappingFuncFor(containerEnv, serviceEnv)`).
pub fn expand_with(
    text: &str,
    vars: &HashMap<String, String>,
    fallback: &BTreeMap<String, String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(close) = text[i + 2..].find(')') {
                        let name = &text[i + 2..i + 2 + close];
                        match vars.get(name).or_else(|| fallback.get(name)) {
                            Some(v) => out.push_str(v),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        i += close + 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// The value of a Downward API `fieldRef`.
pub fn field_ref(pod: &Pod, facts: &PodFacts, path: &str) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let quoted = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => facts.host_ip.clone(),
        "status.hostIPs" => facts.host_ip.clone(),
        "status.podIP" => facts.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => facts.pod_ips.join(","),
        "metadata.labels" | "metadata.annotations" => {
            let map = if path == "metadata.labels" {
                &meta.labels
            } else {
                &meta.annotations
            };
            map.iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        _ => {
            if let Some(k) = quoted("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(k) = quoted("metadata.annotations['") {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(ConfigError(format!("unsupported fieldRef {path:?}")));
            }
        }
    })
}

/// The value of a `resourceFieldRef` (`limits.cpu`, `requests.memory`,
/// ...), divided by `divisor` and rounded up as upstream; a missing limit
/// reads as the node's allocatable amount.
pub fn resource_field_ref(
    c: &Container,
    facts: &PodFacts,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, ConfigError> {
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| ConfigError(format!("unsupported resourceFieldRef {resource:?}")))?;
    let res = c.resources.as_ref();
    let list = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(ConfigError(format!(
                "unsupported resourceFieldRef {resource:?}"
            )));
        }
    };
    let given = list
        .and_then(|l| l.get(name))
        .and_then(|q| parse_milli(&q.0));
    let milli = match (given, kind, name) {
        (Some(v), _, _) => v,
        (None, "limits", "cpu") => i128::from(facts.node_milli_cpu),
        (None, "limits", "memory") => i128::from(facts.node_memory) * 1000,
        (None, _, _) => 0,
    };
    let div = divisor
        .and_then(parse_milli)
        .filter(|d| *d > 0)
        .unwrap_or(1000);
    let value = (milli + div - 1).div_euclid(div);
    Ok(value.to_string())
}

/// The environment of container `c` of `pod`, in order, as CRI key/values:
/// `envFrom`, then `env` (whose `$(VAR)` references may also name the
/// Service variables `service_env`), then the Service variables no
/// explicit entry overrides.
pub async fn environment(
    pod: &Pod,
    c: &Container,
    facts: &PodFacts,
    sources: &impl Sources,
    service_env: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut order: Vec<String> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    let set = |order: &mut Vec<String>, vars: &mut HashMap<String, String>, k: String, v| {
        if vars.insert(k.clone(), v).is_none() {
            order.push(k);
        }
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &from.config_map_ref {
            let data = sources.config_map(ns, &r.name).await.map_err(ConfigError)?;
            if data.is_none() && !r.optional.unwrap_or(false) {
                return Err(ConfigError(format!("configmap {:?} not found", r.name)));
            }
            data
        } else if let Some(r) = &from.secret_ref {
            let data = sources.secret(ns, &r.name).await.map_err(ConfigError)?;
            if data.is_none() && !r.optional.unwrap_or(false) {
                return Err(ConfigError(format!("secret {:?} not found", r.name)));
            }
            data
        } else {
            None
        };
        for (k, v) in data.unwrap_or_default() {
            let key = format!("{prefix}{k}");
            if is_env_name(&key) {
                set(&mut order, &mut vars, key, v);
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                Some(field_ref(pod, facts, &f.field_path)?)
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    Some(name) if !name.is_empty() && name != c.name => pod
                        .spec
                        .iter()
                        .flat_map(|s| {
                            s.containers
                                .iter()
                                .chain(s.init_containers.iter().flatten())
                        })
                        .find(|x| x.name == name)
                        .unwrap_or(c),
                    _ => c,
                };
                Some(resource_field_ref(
                    target,
                    facts,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                )?)
            } else if let Some(k) = &from.config_map_key_ref {
                let optional = k.optional.unwrap_or(false);
                match sources.config_map(ns, &k.name).await.map_err(ConfigError)? {
                    Some(data) => match data.get(&k.key) {
                        Some(v) => Some(v.clone()),
                        None if optional => None,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                k.key, k.name
                            )));
                        }
                    },
                    None if optional => None,
                    None => return Err(ConfigError(format!("configmap {:?} not found", k.name))),
                }
            } else if let Some(k) = &from.secret_key_ref {
                let optional = k.optional.unwrap_or(false);
                match sources.secret(ns, &k.name).await.map_err(ConfigError)? {
                    Some(data) => match data.get(&k.key) {
                        Some(v) => Some(v.clone()),
                        None if optional => None,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                k.key, k.name
                            )));
                        }
                    },
                    None if optional => None,
                    None => return Err(ConfigError(format!("secret {:?} not found", k.name))),
                }
            } else {
                None
            }
        } else {
            Some(expand_with(
                e.value.as_deref().unwrap_or_default(),
                &vars,
                service_env,
            ))
        };
        if let Some(v) = value {
            set(&mut order, &mut vars, e.name.clone(), v);
        }
    }
    let mut out: Vec<(String, String)> = order
        .into_iter()
        .map(|k| {
            let v = vars.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect();
    let explicit: std::collections::HashSet<String> = out.iter().map(|(k, _)| k.clone()).collect();
    out.extend(
        service_env
            .iter()
            .filter(|(k, _)| !explicit.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Maps;
    impl Sources for Maps {
        async fn config_map(
            &self,
            _: &str,
            name: &str,
        ) -> Result<Option<BTreeMap<String, String>>, String> {
            Ok((name == "cm").then(|| {
                BTreeMap::from([("color".into(), "blue".into()), ("1bad".into(), "x".into())])
            }))
        }
        async fn secret(
            &self,
            _: &str,
            name: &str,
        ) -> Result<Option<BTreeMap<String, String>>, String> {
            Ok((name == "s").then(|| BTreeMap::from([("password".into(), "hunter2".into())])))
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "c", "image": "busybox",
                "resources": {"limits": {"cpu": "1500m", "memory": "64Mi"}},
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                "env": [
                    {"name": "A", "value": "a"},
                    {"name": "B", "value": "$(A)-$(NOPE)-$$(A)"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
                    {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "color"}}},
                ]
            }]}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn env_resolves_sources_fields_and_expansion_in_order() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let facts = PodFacts {
            pod_ips: vec!["10.1.0.5".into()],
            ..Default::default()
        };
        let env = environment(&p, c, &facts, &Maps, &BTreeMap::new())
            .await
            .unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        // The prefix makes `1bad` a valid name; sources come first.
        assert_eq!(env[0].0, "CM_1bad");
        assert_eq!(get("CM_color"), Some("blue"));
        assert_eq!(get("B"), Some("a-$(NOPE)-$(A)"));
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.1.0.5"));
        assert_eq!(get("CPU"), Some("2"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("COLOR"), Some("blue"));
    }

    #[tokio::test]
    async fn a_missing_key_is_a_config_error() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "env": [
                {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope"}}}]}]}
        }))
        .unwrap();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let err = environment(&p, c, &PodFacts::default(), &Maps, &BTreeMap::new())
            .await
            .unwrap_err();
        assert_eq!(err.0, "couldn't find key nope in ConfigMap ns/cm");
    }

    #[tokio::test]
    async fn service_variables_come_last_expand_and_yield_to_explicit_env() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "env": [
                {"name": "URL", "value": "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"},
                {"name": "WEB_SERVICE_PORT", "value": "8080"}]}]}
        }))
        .unwrap();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let services = BTreeMap::from([
            ("WEB_SERVICE_HOST".to_string(), "10.96.0.20".to_string()),
            ("WEB_SERVICE_PORT".to_string(), "80".to_string()),
        ]);
        let env = environment(&p, c, &PodFacts::default(), &Maps, &services)
            .await
            .unwrap();
        assert_eq!(
            env,
            vec![
                ("URL".to_string(), "http://10.96.0.20:80".to_string()),
                ("WEB_SERVICE_PORT".to_string(), "8080".to_string()),
                ("WEB_SERVICE_HOST".to_string(), "10.96.0.20".to_string()),
            ]
        );
    }
}
