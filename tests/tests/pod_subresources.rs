//! The pod subresources a kubelet serves (`log`, `exec`, `attach`,
//! `portforward`), as the apiserver answers them before any kubelet is
//! involved: which container a request is for, unscheduled pods, checked
//! log options, and a node whose kubelet cannot be reached — each with
//! upstream's status code and message, through kubectl and the kube crate.
//! The relay itself is exercised end to end with a real kubelet in
//! `kubelet.rs`.

use anyhow::Result;
use capstan_tests::fixture::{ControlPlane, free_port};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn pod(name: &str, node: Option<&str>) -> Result<Pod> {
    let mut spec = json!({
        "initContainers": [{"name": "setup", "image": "busybox"}],
        "containers": [{"name": "web", "image": "busybox"}, {"name": "sidecar", "image": "busybox"}],
    });
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec,
    }))?)
}

/// The status code and message of a failed kube call.
fn api_error<T: std::fmt::Debug>(r: kube::Result<T>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn pod_subresources_name_their_container_and_node_as_upstream() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("pending", None)?)
        .await?;

    // Several containers and none named: upstream's 400 listing them.
    let (code, message) = api_error(pods.logs("pending", &LogParams::default()).await);
    assert_eq!(code, 400);
    assert_eq!(
        message,
        "a container name must be specified for pod pending, choose one of: [web sidecar] or one of the init containers: [setup]"
    );
    let err = cp.kubectl_err(&["logs", "pending", "-c", "nope"])?;
    assert!(
        err.contains("container nope is not valid for pod pending"),
        "{err}"
    );
    // An unscheduled pod has no logs yet, and nothing to exec into.
    assert_eq!(cp.kubectl(&["logs", "pending", "-c", "web"])?, "");
    let err = cp.kubectl_err(&["exec", "pending", "-c", "web", "--", "true"])?;
    assert!(
        err.contains("pod pending does not have a host assigned"),
        "{err}"
    );

    // Log options are checked as upstream checks PodLogOptions.
    let params = LogParams {
        container: Some("web".into()),
        tail_lines: Some(-1),
        ..Default::default()
    };
    let (code, message) = api_error(pods.logs("pending", &params).await);
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("tailLines"), "{message}");

    // A node whose kubelet is not listening: the dial error, as upstream
    // reports it, with a 500.
    let nodes: Api<Node> = Api::all(client);
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gone"}}),
            )?,
        )
        .await?;
    let port = free_port()?;
    nodes
        .patch_status(
            "gone",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            }})),
        )
        .await?;
    pods.create(&PostParams::default(), &pod("bound", Some("gone"))?)
        .await?;
    let err = cp.kubectl_err(&["logs", "bound", "-c", "web"])?;
    assert!(
        err.contains(&format!(
            "Get \"https://127.0.0.1:{port}/containerLogs/default/bound/web\""
        )),
        "{err}"
    );
    Ok(())
}
