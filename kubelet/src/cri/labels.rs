//! The labels and annotations upstream's kubelet puts on CRI sandboxes and
//! containers (`pkg/kubelet/types/labels.go`, `kuberuntime/labels.go`).
//! They are how a restarted kubelet finds the sandboxes and containers of
//! each pod again, and how other tools (crictl, ctr) name them.

use std::collections::HashMap;

/// Pod name on sandboxes and containers.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// Pod namespace on sandboxes and containers.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Pod uid on sandboxes and containers: the key adoption goes by.
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// Container name on containers.
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// The container's restart count, kept across kubelet restarts.
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// The pod's grace period when the container was created.
pub const TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
/// Where the termination message is read from.
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
/// A hash of the container spec, so a changed spec is noticed.
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";

/// Labels of a pod's sandbox: the pod's own labels plus its identity.
pub fn sandbox(
    pod_labels: &std::collections::BTreeMap<String, String>,
    name: &str,
    namespace: &str,
    uid: &str,
) -> HashMap<String, String> {
    let mut l: HashMap<String, String> = pod_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    l.insert(POD_NAME.into(), name.into());
    l.insert(POD_NAMESPACE.into(), namespace.into());
    l.insert(POD_UID.into(), uid.into());
    l
}

/// Labels of one of a pod's containers.
pub fn container(
    name: &str,
    namespace: &str,
    uid: &str,
    container: &str,
) -> HashMap<String, String> {
    HashMap::from([
        (POD_NAME.into(), name.into()),
        (POD_NAMESPACE.into(), namespace.into()),
        (POD_UID.into(), uid.into()),
        (CONTAINER_NAME.into(), container.into()),
    ])
}

/// The selector for everything that belongs to the pod with `uid`.
pub fn of_pod(uid: &str) -> HashMap<String, String> {
    HashMap::from([(POD_UID.into(), uid.into())])
}
