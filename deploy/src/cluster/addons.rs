//! The cluster DNS add-on, installed by `create` once every node is
//! Ready, as kubeadm installs CoreDNS: the `capstan-dns` image built here
//! from the project's own binary and imported into every node (nothing is
//! pulled), a kubeconfig Secret for its pods, and `deploy/manifests/dns.yaml`
//! (the `capstan-dns` Deployment and the `kube-dns` Service at
//! [`network::CLUSTER_DNS`]) applied server-side; then it waits until a
//! replica is available.

use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::layout::ClusterDir;
use super::state::ClusterState;
use super::{binaries, network, node};
use crate::runtime::images;

/// The add-on's manifest.
const MANIFEST: &str = include_str!("../../manifests/dns.yaml");
/// Where the add-on lives.
const NAMESPACE: &str = "kube-system";
/// The Secret its pods mount their kubeconfig from.
const SECRET: &str = "capstan-dns-kubeconfig";
/// The identity its pods use.
const DNS_USER: &str = "system:serviceaccount:kube-system:capstan-dns";
/// Field manager of what `create` applies.
const FIELD_MANAGER: &str = "capstan";

/// Installs (or confirms) the DNS add-on; see the module docs.
pub async fn install_dns(
    dir: &ClusterDir,
    state: &ClusterState,
    client: &kube::Client,
    deadline: Instant,
) -> anyhow::Result<()> {
    let binary = binaries::component("capstan-dns")?;
    let mut archive = None;
    for n in &state.nodes {
        let socket = node::runtime_options(&node::node_dir(dir, n)).socket();
        if images::list(&socket)?
            .iter()
            .any(|i| i == images::DNS_IMAGE)
        {
            continue;
        }
        if archive.is_none() {
            archive = Some(images::build_binary_image(
                images::DNS_IMAGE,
                &binary,
                &dir.images_dir().join("dns"),
            )?);
        }
        if let Some(archive) = &archive {
            images::import(&socket, archive)
                .with_context(|| format!("loading the DNS image into node {}", n.name))?;
        }
    }

    let kubeconfig = dir.pki().join("dns.kubeconfig");
    if !kubeconfig.is_file() {
        crate::pki::client_kubeconfig(
            &dir.pki(),
            &state.server_url()?,
            DNS_USER,
            None,
            &kubeconfig,
        )?;
    }
    let text = std::fs::read_to_string(&kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NAMESPACE},
        "stringData": {"kubeconfig": text},
    });
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .patch(SECRET, &params, &Patch::Apply(&secret))
        .await
        .context("applying the DNS kubeconfig Secret")?;

    for doc in manifest_objects()? {
        let name = doc["metadata"]["name"]
            .as_str()
            .context("a manifest object without a name")?
            .to_string();
        match doc["kind"].as_str() {
            Some("Deployment") => {
                Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
                    .patch(&name, &params, &Patch::Apply(&doc))
                    .await
                    .with_context(|| format!("applying Deployment {name}"))?;
            }
            Some("Service") => {
                Api::<Service>::namespaced(client.clone(), NAMESPACE)
                    .patch(&name, &params, &Patch::Apply(&doc))
                    .await
                    .with_context(|| format!("applying Service {name}"))?;
            }
            other => bail!("the DNS manifest holds an unexpected {other:?}"),
        }
    }
    wait_available(client, deadline).await
}

/// The manifest's objects, one per YAML document.
fn manifest_objects() -> anyhow::Result<Vec<Value>> {
    MANIFEST
        .split("\n---")
        .filter(|d| d.lines().any(|l| l.starts_with("kind:")))
        .map(|d| serde_saphyr::from_str::<Value>(d).context("parsing the DNS manifest"))
        .collect()
}

/// Waits until the DNS Deployment has an available replica.
async fn wait_available(client: &kube::Client, deadline: Instant) -> anyhow::Result<()> {
    let api = Api::<Deployment>::namespaced(client.clone(), NAMESPACE);
    loop {
        let available = api
            .get_opt("capstan-dns")
            .await
            .ok()
            .flatten()
            .and_then(|d| d.status?.available_replicas)
            .unwrap_or(0);
        if available > 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the DNS add-on had no available replica in time (raise --wait; `kubectl -n kube-system describe deployment capstan-dns` says why); it serves {}",
                network::CLUSTER_DNS
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_the_built_image_and_the_dns_address() {
        let objects = manifest_objects().unwrap();
        let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert_eq!(kinds, ["Deployment", "Service"]);
        assert_eq!(
            objects[0]["spec"]["template"]["spec"]["containers"][0]["image"],
            images::DNS_IMAGE
        );
        assert_eq!(objects[1]["spec"]["clusterIP"], network::CLUSTER_DNS);
        assert_eq!(
            objects[0]["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
            SECRET
        );
    }
}
