//! The `default/kubernetes` Service, as upstream's bootstrap controller
//! (`controlplane/controller/kubernetesservice`) and endpoint reconciler
//! keep it: pods reach the apiserver at the first address of
//! `--service-cluster-ip-range` (10.96.0.1 by default, which the ClusterIP
//! allocator never hands to another Service), port `https` 443, forwarded
//! to `--advertise-address` and the secure port through the Endpoints and
//! EndpointSlice named `kubernetes`. Checked at start and every
//! [`INTERVAL`], so a deleted or edited object comes back.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::handlers::AppState;
use crate::registry::store::{Part, WriteOptions};

/// How often the objects are checked (upstream's endpoint interval).
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Name of the Service, its Endpoints and its EndpointSlice.
const NAME: &str = "kubernetes";
/// Their namespace.
const NAMESPACE: &str = "default";

/// Where this apiserver tells clients inside the cluster to reach it.
#[derive(Clone, Debug)]
pub struct Advertised {
    /// The cluster IP of the Service.
    pub cluster_ip: Ipv4Addr,
    /// `--advertise-address`.
    pub address: String,
    /// `--secure-port`.
    pub port: u16,
}

/// Upstream's default of `--advertise-address`: the bind address unless
/// it is unspecified, else the address of the interface the default route
/// leaves through (no packet is sent: a UDP socket is only connected),
/// else loopback.
pub fn default_advertise_address(bind_address: &str) -> String {
    match bind_address.parse::<std::net::IpAddr>() {
        Ok(ip) if !ip.is_unspecified() => return ip.to_string(),
        Err(_) if !bind_address.is_empty() => return bind_address.to_string(),
        _ => {}
    }
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("10.255.255.255:9")?;
            s.local_addr()
        })
        .ok()
        .map(|a| a.ip())
        .filter(|ip| ip.is_ipv4() && !ip.is_loopback() && !ip.is_unspecified())
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// The Service as upstream's bootstrap controller writes it.
fn service(a: &Advertised) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": a.cluster_ip.to_string(),
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": a.port}],
        },
    })
}

fn endpoints(a: &Advertised) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{
            "addresses": [{"ip": a.address}],
            "ports": [{"name": "https", "port": a.port, "protocol": "TCP"}],
        }],
    })
}

fn endpoint_slice(a: &Advertised) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a.address], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": a.port, "protocol": "TCP"}],
    })
}

/// Creates the object, or rewrites the `fields` of an existing one that
/// differ from `want`'s.
async fn ensure(
    state: &AppState,
    (group, version, plural): (&str, &str, &str),
    want: Value,
    fields: &[&str],
) -> Result<()> {
    let served = state.served.get();
    let info = served
        .registry
        .lookup(group, version, plural)
        .with_context(|| format!("{plural} are served"))?;
    let store = state
        .backend
        .store(info)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let current = match store.get(NAMESPACE, NAME).await {
        Ok(v) => v,
        Err(e) if e.reason == "NotFound" => {
            return match store
                .create(NAMESPACE, want, &WriteOptions::default())
                .await
            {
                Ok(_) => {
                    tracing::info!(resource = plural, "created default/kubernetes");
                    Ok(())
                }
                Err(e) if e.reason == "AlreadyExists" => Ok(()),
                Err(e) => Err(anyhow::anyhow!("creating {plural} default/kubernetes: {e}")),
            };
        }
        Err(e) => return Err(anyhow::anyhow!("reading {plural} default/kubernetes: {e}")),
    };
    let mut updated = current.clone();
    let mut differs = false;
    for field in fields {
        let pointer = format!("/{}", field.replace('.', "/"));
        let wanted = want.pointer(&pointer).cloned().unwrap_or(Value::Null);
        if current.pointer(&pointer) != Some(&wanted) {
            differs = true;
            set(&mut updated, field, wanted);
        }
    }
    if !differs {
        return Ok(());
    }
    if let Some(meta) = updated.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    tracing::warn!(resource = plural, "resetting default/kubernetes");
    store
        .update(
            NAMESPACE,
            NAME,
            updated,
            Part::Main,
            &WriteOptions::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("updating {plural} default/kubernetes: {e}"))?;
    Ok(())
}

/// Sets a dotted path in a JSON object, making objects on the way.
fn set(obj: &mut Value, path: &str, value: Value) {
    let mut at = obj;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        let Some(map) = at.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        at = map.entry((*part).to_string()).or_insert_with(|| json!({}));
    }
}

/// One check of the Service, its Endpoints and its EndpointSlice.
pub async fn reconcile(state: &AppState, a: &Advertised) -> Result<()> {
    // Upstream reconciles the ports and type of an existing Service, not
    // its address (a cluster IP never changes).
    ensure(
        state,
        ("", "v1", "services"),
        service(a),
        &["spec.ports", "metadata.labels"],
    )
    .await?;
    ensure(
        state,
        ("", "v1", "endpoints"),
        endpoints(a),
        &["subsets", "metadata.labels"],
    )
    .await?;
    ensure(
        state,
        ("discovery.k8s.io", "v1", "endpointslices"),
        endpoint_slice(a),
        &["endpoints", "ports", "metadata.labels", "addressType"],
    )
    .await
}

/// Keeps the objects in place for as long as the apiserver runs.
pub async fn run(state: Arc<AppState>, a: Advertised) {
    loop {
        if let Err(e) = reconcile(&state, &a).await {
            tracing::warn!(error = %format!("{e:#}"), "keeping the kubernetes Service");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertise_address_defaults_to_a_specific_bind_address() {
        assert_eq!(default_advertise_address("127.0.0.1"), "127.0.0.1");
        assert_eq!(default_advertise_address("192.0.2.7"), "192.0.2.7");
        let detected = default_advertise_address("0.0.0.0");
        let ip: Ipv4Addr = detected.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
        assert!(!ip.is_unspecified());
    }

    #[test]
    fn the_objects_point_at_the_advertised_address() {
        let a = Advertised {
            cluster_ip: Ipv4Addr::new(10, 96, 0, 1),
            address: "192.0.2.7".into(),
            port: 6443,
        };
        let svc = service(&a);
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 6443);
        assert_eq!(
            endpoints(&a)["subsets"][0]["addresses"][0]["ip"],
            "192.0.2.7"
        );
        let slice = endpoint_slice(&a);
        assert_eq!(slice["endpoints"][0]["addresses"][0], "192.0.2.7");
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "kubernetes"
        );
        let mut v = json!({"metadata": {}});
        set(&mut v, "spec.ports", json!([1]));
        assert_eq!(v["spec"]["ports"], json!([1]));
    }
}
