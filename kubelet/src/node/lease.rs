//! The node's heartbeat: a Lease named after the node in
//! `kube-node-lease`, owned by the Node, renewed every 10 s with
//! `leaseDurationSeconds` 40 (upstream's defaults).

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// Namespace of node Leases.
pub const NAMESPACE: &str = "kube-node-lease";
/// How often the Lease is renewed.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// How long a Lease is valid without renewal.
pub const DURATION_SECONDS: i32 = 40;

/// Renews the Lease once, creating it (owned by the Node) when missing.
pub async fn renew(client: &kube::Client, node: &str) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let patch = json!({"spec": {
        "holderIdentity": node,
        "leaseDurationSeconds": DURATION_SECONDS,
        "renewTime": crate::time::now_micro(),
    }});
    match leases
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => create(client, &leases, node).await,
        Err(e) => Err(e.into()),
    }
}

async fn create(client: &kube::Client, leases: &Api<Lease>, node: &str) -> Result<()> {
    let owner = Api::<Node>::all(client.clone()).get(node).await?;
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(node.into()),
            namespace: Some(NAMESPACE.into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.into(),
                uid: owner.metadata.uid.unwrap_or_default(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.into()),
            lease_duration_seconds: Some(DURATION_SECONDS),
            renew_time: Some(crate::time::now_micro()),
            ..Default::default()
        }),
    };
    match leases.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Renews the Lease every [`RENEW_INTERVAL`] until the task is dropped;
/// failures are logged and retried at the next tick.
pub async fn run(client: kube::Client, node: String) {
    let mut tick = tokio::time::interval(RENEW_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(e) = renew(&client, &node).await {
            tracing::warn!(node = %node, "renewing the node lease failed: {e:#}");
        }
    }
}
