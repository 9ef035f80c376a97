//! Service environment variables, as upstream's kubelet makes them
//! (`getServiceEnvVarMap`, `pkg/kubelet/envvars`): for each Service with
//! a cluster IP in the pod's namespace (when `enableServiceLinks`, the
//! default) and always for `kubernetes` in `default`, the
//! `<NAME>_SERVICE_HOST`/`_SERVICE_PORT[_<PORT>]` variables and Docker's
//! link variables (`<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>[_PROTO|
//! _PORT|_ADDR]`). The Services come from a watch of all Services kept in
//! a reflector store ([`ServiceLister`]), read when a container starts.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

/// Services every pod gets variables for, from the `default` namespace,
/// whatever its `enableServiceLinks` (upstream's `masterServices`).
pub const MASTER_SERVICES: &[&str] = &["kubernetes"];
/// How long a container start waits for the first list of Services
/// before failing as upstream does.
pub const SYNC_WAIT: Duration = Duration::from_secs(5);

/// `service-name` → `SERVICE_NAME`.
pub fn env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// Whether the Service has a cluster IP (not headless, not ExternalName).
pub fn has_cluster_ip(s: &Service) -> bool {
    s.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// `host:port`, IPv6 addresses in brackets (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The variables of `services` (upstream's `FromServices`), in order.
pub fn from_services<'a>(services: impl IntoIterator<Item = &'a Service>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for svc in services {
        if !has_cluster_ip(svc) {
            continue;
        }
        let spec = svc.spec.clone().unwrap_or_default();
        let ports = spec.ports.unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let ip = spec.cluster_ip.unwrap_or_default();
        let prefix = env_name(svc.metadata.name.as_deref().unwrap_or_default());
        out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{prefix}_SERVICE_PORT_{}", env_name(name)),
                    p.port.to_string(),
                ));
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let lower = proto.to_lowercase();
            let url = format!("{lower}://{}", join_host_port(&ip, p.port));
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((pp.clone(), url));
            out.push((format!("{pp}_PROTO"), lower));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.clone()));
        }
    }
    out
}

/// The variables a pod in `namespace` sees (upstream's
/// `getServiceEnvVarMap`): its namespace's Services when `links`, and the
/// master services of `default` always.
pub fn env_for_namespace<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    namespace: &str,
    links: bool,
) -> BTreeMap<String, String> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services {
        if !has_cluster_ip(svc) {
            continue;
        }
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
        if ns == "default" && MASTER_SERVICES.contains(&name) {
            chosen.entry(name).or_insert(svc);
        } else if ns == namespace && links {
            chosen.insert(name, svc);
        }
    }
    from_services(chosen.into_values()).into_iter().collect()
}

/// The node's view of all Services: a watch kept in a reflector store.
#[derive(Clone)]
pub struct ServiceLister {
    store: Store<Service>,
}

impl ServiceLister {
    /// Starts watching Services through `client`.
    pub fn spawn(client: kube::Client) -> Self {
        let (store, writer) = reflector::store();
        let stream = watcher(Api::<Service>::all(client), watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    tracing::warn!("watching services failed: {e}");
                }
            }
        });
        ServiceLister { store }
    }

    /// The variables for a pod in `namespace`. Until the first list has
    /// arrived (waiting [`SYNC_WAIT`] for it) this fails as upstream does
    /// for pods from the API; a static pod (`wait == false`) gets what is
    /// known.
    pub async fn env(
        &self,
        namespace: &str,
        links: bool,
        wait: bool,
    ) -> Result<BTreeMap<String, String>, String> {
        if wait
            && !matches!(
                tokio::time::timeout(SYNC_WAIT, self.store.wait_until_ready()).await,
                Ok(Ok(()))
            )
        {
            return Err(
                "services have not yet been read at least once, cannot construct envvars".into(),
            );
        }
        let all = self.store.state();
        Ok(env_for_namespace(
            all.iter().map(|s| s.as_ref()),
            namespace,
            links,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn link_variables_as_upstream() {
        let s = svc(
            "ns",
            "my-db",
            json!({"clusterIP": "10.96.3.4", "ports": [
                {"name": "sql", "port": 5432},
                {"name": "metrics-http", "port": 9187, "protocol": "UDP"}]}),
        );
        let vars: BTreeMap<String, String> = from_services([&s]).into_iter().collect();
        let expect = [
            ("MY_DB_SERVICE_HOST", "10.96.3.4"),
            ("MY_DB_SERVICE_PORT", "5432"),
            ("MY_DB_SERVICE_PORT_SQL", "5432"),
            ("MY_DB_SERVICE_PORT_METRICS_HTTP", "9187"),
            ("MY_DB_PORT", "tcp://10.96.3.4:5432"),
            ("MY_DB_PORT_5432_TCP", "tcp://10.96.3.4:5432"),
            ("MY_DB_PORT_5432_TCP_PROTO", "tcp"),
            ("MY_DB_PORT_5432_TCP_PORT", "5432"),
            ("MY_DB_PORT_5432_TCP_ADDR", "10.96.3.4"),
            ("MY_DB_PORT_9187_UDP", "udp://10.96.3.4:9187"),
            ("MY_DB_PORT_9187_UDP_PROTO", "udp"),
            ("MY_DB_PORT_9187_UDP_PORT", "9187"),
            ("MY_DB_PORT_9187_UDP_ADDR", "10.96.3.4"),
        ];
        assert_eq!(vars.len(), expect.len());
        for (k, v) in expect {
            assert_eq!(vars.get(k).map(String::as_str), Some(v), "{k}");
        }
        let v6 = svc(
            "ns",
            "v6",
            json!({"clusterIP": "fd00::10", "ports": [{"port": 80}]}),
        );
        let vars: BTreeMap<String, String> = from_services([&v6]).into_iter().collect();
        assert_eq!(vars["V6_PORT"], "tcp://[fd00::10]:80");
    }

    #[test]
    fn namespace_services_master_services_and_headless_ones() {
        let all = [
            svc(
                "ns",
                "web",
                json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}),
            ),
            svc(
                "ns",
                "headless",
                json!({"clusterIP": "None", "ports": [{"port": 80}]}),
            ),
            svc(
                "ns",
                "ext",
                json!({"type": "ExternalName", "externalName": "x.example"}),
            ),
            svc(
                "other",
                "away",
                json!({"clusterIP": "10.96.0.30", "ports": [{"port": 80}]}),
            ),
            svc(
                "default",
                "kubernetes",
                json!({"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}),
            ),
        ];
        let vars = env_for_namespace(all.iter(), "ns", true);
        assert_eq!(vars["WEB_SERVICE_HOST"], "10.96.0.20");
        assert_eq!(vars["KUBERNETES_SERVICE_PORT_HTTPS"], "443");
        assert!(
            !vars.keys().any(|k| k.starts_with("HEADLESS")
                || k.starts_with("EXT")
                || k.starts_with("AWAY"))
        );
        let off = env_for_namespace(all.iter(), "ns", false);
        assert!(off.keys().all(|k| k.starts_with("KUBERNETES_")), "{off:?}");
        assert_eq!(off["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
    }
}
