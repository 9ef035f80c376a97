//! Which runtime container or sandbox a request on the kubelet's port is
//! about, with upstream's answers when there is none: the pod must be
//! bound to this node (404), the container in its spec (404), and for
//! logs the container must have run (`validateContainerLogStatus`'s 400
//! messages: waiting to start, terminated, no previous instance).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// A refusal: the HTTP status and upstream's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// HTTP status code.
    pub code: u16,
    /// The message, sent as the body.
    pub message: String,
}

impl Refusal {
    fn new(code: u16, message: String) -> Self {
        Refusal { code, message }
    }
}

/// The runtime id in a status `containerID` (`containerd://<id>`).
pub fn runtime_id(container_id: &str) -> &str {
    container_id
        .split_once("://")
        .map(|(_, id)| id)
        .unwrap_or(container_id)
}

/// 404 unless the pod exists and is bound to `node`.
pub fn bound_pod(pod: Option<Pod>, name: &str, node: &str) -> Result<Pod, Refusal> {
    pod.filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .ok_or_else(|| Refusal::new(404, format!("pod {name:?} does not exist")))
}

/// 404 unless the pod's spec has the container (app, init or ephemeral).
pub fn in_spec(pod: &Pod, name: &str, container: &str) -> Result<(), Refusal> {
    let spec = pod.spec.as_ref();
    let found = spec.is_some_and(|s| {
        s.containers.iter().any(|c| c.name == container)
            || s.init_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
            || s.ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
    });
    if found {
        Ok(())
    } else {
        Err(Refusal::new(
            404,
            format!("container {container:?} not found in pod {name:?}"),
        ))
    }
}

fn status_of<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    [
        &status.container_statuses,
        &status.init_container_statuses,
        &status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|s| s.name == container)
}

/// The runtime id of the container instance whose log a request reads:
/// the current one, or with `previous` the last terminated one.
pub fn log_container(
    pod: &Pod,
    name: &str,
    container: &str,
    previous: bool,
) -> Result<String, Refusal> {
    let refuse = |what: String| {
        Refusal::new(
            400,
            format!("container {container:?} in pod {name:?} {what}"),
        )
    };
    let status = status_of(pod, container).ok_or_else(|| refuse("is not available".into()))?;
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.container_id.as_deref())
        .filter(|id| !id.is_empty());
    let state = status.state.clone().unwrap_or_default();
    let id = if previous {
        last.ok_or_else(|| {
            Refusal::new(
                400,
                format!("previous terminated container {container:?} in pod {name:?} not found"),
            )
        })?
    } else if state.running.is_some() {
        status
            .container_id
            .as_deref()
            .ok_or_else(|| refuse("is waiting to start - no logs yet".into()))?
    } else if let Some(t) = &state.terminated {
        t.container_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .or(last)
            .ok_or_else(|| refuse("is terminated".into()))?
    } else if last.is_some() {
        last.ok_or_else(|| refuse("is terminated".into()))?
    } else if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        return Err(refuse(match reason.as_str() {
            "ErrImagePull" => "is waiting to start: image can't be pulled".into(),
            "ImagePullBackOff" => "is waiting to start: trying and failing to pull image".into(),
            _ => format!("is waiting to start: {reason}"),
        }));
    } else {
        return Err(refuse("is waiting to start - no logs yet".into()));
    };
    Ok(runtime_id(id).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(statuses: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"containerStatuses": statuses},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn logs_come_from_the_running_or_last_terminated_instance() {
        let running = pod(
            json!([{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 1,
            "containerID": "containerd://abc", "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://old"}}}]),
        );
        assert_eq!(log_container(&running, "p", "c", false), Ok("abc".into()));
        assert_eq!(log_container(&running, "p", "c", true), Ok("old".into()));
        let waiting = pod(
            json!([{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}}]),
        );
        assert_eq!(
            log_container(&waiting, "p", "c", false).map_err(|r| r.message),
            Err("container \"c\" in pod \"p\" is waiting to start: ContainerCreating".into())
        );
        assert_eq!(
            log_container(&waiting, "p", "c", true).map_err(|r| r.message),
            Err("previous terminated container \"c\" in pod \"p\" not found".into())
        );
    }

    #[test]
    fn pods_elsewhere_and_unknown_containers_are_not_found() {
        let p = pod(json!([]));
        assert_eq!(
            bound_pod(Some(p.clone()), "p", "n2")
                .map(|_| ())
                .map_err(|r| r.code),
            Err(404)
        );
        assert!(bound_pod(Some(p.clone()), "p", "n1").is_ok());
        assert_eq!(in_spec(&p, "p", "x").map_err(|r| r.code), Err(404));
        assert_eq!(in_spec(&p, "p", "c"), Ok(()));
    }
}
