//! Who the kubelet's Events are about: the pod, or one of its containers
//! (`fieldPath: spec.containers{name}`), as upstream's
//! `GenerateContainerRef` names them; `kubectl describe pod` lists both.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};

/// The reporting component's name on kubelet Events.
pub const COMPONENT: &str = "kubelet";

/// A reference to the pod.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        // No resourceVersion: Events of one reason about one container
        // then fold into one series (count, last seen) instead of piling up.
        ..Default::default()
    }
}

/// A reference to container `name` of the pod.
pub fn container_ref(pod: &Pod, name: &str) -> ObjectReference {
    let init = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .any(|c| c.name == name);
    let list = if init { "initContainers" } else { "containers" };
    ObjectReference {
        field_path: Some(format!("spec.{list}{{{name}}}")),
        ..pod_ref(pod)
    }
}

/// A reference to the Node `name`, as upstream's kubelet makes it (its
/// uid is the node's name).
pub fn node_ref(name: &str) -> ObjectReference {
    ObjectReference {
        kind: Some("Node".into()),
        name: Some(name.into()),
        uid: Some(name.into()),
        ..Default::default()
    }
}
