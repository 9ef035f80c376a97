//! A pod's status as upstream's kubelet shapes it
//! (`generateAPIPodStatus`, `convertToAPIContainerStatuses`, `getPhase`):
//! per-container state (waiting with a reason, running, terminated with
//! exit code, reason and times), `lastState`, `restartCount`, image and
//! ids; the phase; the conditions PodReadyToStartContainers, Initialized,
//! ContainersReady, Ready and PodScheduled; host and pod IPs; startTime.
//! Pure: computed from the Pod, what the runtime has ([`PodView`]) and
//! why containers wait, so it can be compared with what the API has and
//! written only when it changed.

use std::collections::HashMap;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};

use crate::pods::probes::Outcome;
use crate::pods::view::{self, PodView};
use crate::time::from_cri_nanos;

/// Why a container is waiting: (reason, message).
pub type Waiting = HashMap<String, (String, String)>;

/// Whether a regular init container or sidecar (restartPolicy Always).
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// What the status is computed from besides the pod.
pub struct Inputs<'a> {
    /// The runtime's view of the pod.
    pub view: &'a PodView,
    /// Waiting reasons the worker recorded (CrashLoopBackOff, ErrImagePull,
    /// CreateContainerConfigError...), by container name.
    pub waiting: &'a Waiting,
    /// The node's IP.
    pub node_ip: &'a str,
    /// The runtime's name for container ids (`containerd`).
    pub runtime: &'a str,
    /// Probe verdicts of running containers with probes, by name.
    pub probes: &'a HashMap<String, Outcome>,
}

/// An image reference as the runtime names it (`busybox` →
/// `docker.io/library/busybox:latest`). The spec's image is reported, not
/// the runtime's name for the image id, which may be another tag of the
/// same image.
pub fn normalize_image(image: &str) -> String {
    if image.is_empty() || image.starts_with("sha256:") {
        return image.to_string();
    }
    let named = match image.split_once('/') {
        None => format!("docker.io/library/{image}"),
        Some((host, _)) if host.contains(['.', ':']) || host == "localhost" => image.to_string(),
        Some(_) => format!("docker.io/{image}"),
    };
    let last = named.rsplit('/').next().unwrap_or_default();
    if last.contains(':') || named.contains('@') {
        named
    } else {
        format!("{named}:latest")
    }
}

fn terminated(s: &cri::ContainerStatus, runtime: &str) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: s.exit_code,
        reason: Some(if s.reason.is_empty() {
            if s.exit_code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            }
        } else {
            s.reason.clone()
        }),
        message: (!s.message.is_empty()).then(|| s.message.clone()),
        started_at: from_cri_nanos(s.started_at),
        finished_at: from_cri_nanos(s.finished_at),
        container_id: Some(format!("{runtime}://{}", s.id)),
        signal: None,
    }
}

fn waiting(reason: &str, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }),
        ..Default::default()
    }
}

/// One container's status; `default_reason` is why it waits when it never
/// ran and nothing else is known (ContainerCreating or PodInitializing).
fn container_status(c: &Container, inputs: &Inputs, default_reason: &str) -> ContainerStatus {
    let latest = inputs.view.latest(&c.name);
    let recorded = inputs.waiting.get(&c.name);
    let runtime = inputs.runtime;
    let mut st = ContainerStatus {
        name: c.name.clone(),
        image: normalize_image(c.image.as_deref().unwrap_or_default()),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        last_state: Some(ContainerState::default()),
        state: Some(match recorded {
            Some((r, m)) => waiting(r, Some(m)),
            None => waiting(default_reason, None),
        }),
        ..Default::default()
    };
    let Some(s) = latest else { return st };
    st.container_id = Some(format!("{runtime}://{}", s.id));
    st.image_id = s.image_ref.clone();
    st.restart_count = view::attempt(s) as i32;
    let previous = inputs.view.previous(&c.name);
    match view::state(s) {
        cri::ContainerState::ContainerRunning => {
            st.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: from_cri_nanos(s.started_at),
                }),
                ..Default::default()
            });
            let probed = inputs.probes.get(&c.name);
            st.ready = probed.is_none_or(|o| o.ready);
            st.started = Some(probed.is_none_or(|o| o.started));
            st.last_state = previous
                .filter(|p| view::state(p) == cri::ContainerState::ContainerExited)
                .map(|p| ContainerState {
                    terminated: Some(terminated(p, runtime)),
                    ..Default::default()
                });
        }
        cri::ContainerState::ContainerExited => {
            let term = ContainerState {
                terminated: Some(terminated(s, runtime)),
                ..Default::default()
            };
            match recorded {
                // Waiting to be restarted: the exit is the last state.
                Some((r, m)) => {
                    st.state = Some(waiting(r, Some(m)));
                    st.last_state = Some(term);
                }
                None => {
                    st.state = Some(term);
                    st.last_state = previous
                        .filter(|p| view::state(p) == cri::ContainerState::ContainerExited)
                        .map(|p| ContainerState {
                            terminated: Some(terminated(p, runtime)),
                            ..Default::default()
                        });
                }
            }
        }
        _ => {
            st.last_state = previous
                .filter(|p| view::state(p) == cri::ContainerState::ContainerExited)
                .map(|p| ContainerState {
                    terminated: Some(terminated(p, runtime)),
                    ..Default::default()
                });
        }
    }
    st.last_state.get_or_insert_with(Default::default);
    st
}

fn is_terminated_ok(s: &ContainerStatus) -> bool {
    s.state
        .as_ref()
        .and_then(|x| x.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}

fn is_running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|x| x.running.is_some())
}

/// Upstream's `getPhase`.
pub fn phase(pod: &Pod, init: &[(bool, ContainerStatus)], app: &[ContainerStatus]) -> &'static str {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let mut pending_init = false;
    let mut failed_init = false;
    for (sidecar, s) in init {
        if *sidecar {
            if !is_running(s) {
                pending_init = true;
            }
            continue;
        }
        if is_terminated_ok(s) {
            continue;
        }
        let state = s.state.as_ref();
        let failed_now = state
            .and_then(|x| x.terminated.as_ref())
            .is_some_and(|t| t.exit_code != 0);
        let failed_before = state.is_some_and(|x| x.waiting.is_some())
            && s.last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0);
        if failed_now || failed_before {
            failed_init = true;
        } else {
            pending_init = true;
        }
    }
    if failed_init && policy == "Never" {
        return "Failed";
    }
    if pending_init || failed_init {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in app {
        let state = s.state.as_ref();
        if state.is_some_and(|x| x.running.is_some()) {
            running += 1;
        } else if let Some(t) = state.and_then(|x| x.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .is_some_and(|l| l.terminated.is_some())
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    old: Option<&PodStatus>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let transition = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(crate::time::now);
    PodCondition {
        type_: kind.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(transition),
        last_probe_time: None,
        observed_generation: None,
    }
}

/// The pod's status now, starting from the status the API has (fields
/// the kubelet does not own are kept).
pub fn pod_status(pod: &Pod, inputs: &Inputs) -> PodStatus {
    let old = pod.status.as_ref();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut init: Vec<(bool, ContainerStatus)> = Vec::new();
    let mut initialized = true;
    let mut pending_init: Vec<String> = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let s = container_status(c, inputs, "PodInitializing");
        let sidecar = is_sidecar(c);
        let done = if sidecar {
            is_running(&s)
        } else {
            is_terminated_ok(&s)
        };
        // A regular init container is ready once it succeeded (upstream's
        // prober manager); it never counts as started after it exited.
        let mut s = s;
        if !sidecar {
            s.ready = done;
        }
        if !done {
            initialized = false;
            pending_init.push(c.name.clone());
        }
        init.push((sidecar, s));
    }
    let default_reason = if initialized {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let app: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, inputs, default_reason))
        .collect();
    let phase = phase(pod, &init, &app);
    let mut unready: Vec<String> = app
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.clone())
        .collect();
    // Sidecars count towards readiness too.
    unready.extend(
        init.iter()
            .filter(|(sidecar, s)| *sidecar && !s.ready)
            .map(|(_, s)| s.name.clone()),
    );
    let sandbox_ready = inputs.view.sandbox.as_ref().is_some_and(|s| s.ready);
    let host_network = spec.host_network.unwrap_or(false);
    let pod_ips: Vec<String> = if host_network {
        vec![inputs.node_ip.to_string()]
    } else {
        inputs
            .view
            .sandbox
            .as_ref()
            .filter(|s| s.ready)
            .map(|s| s.ips.clone())
            .unwrap_or_default()
    };
    let completed = phase == "Succeeded" || phase == "Failed";
    let (ready_reason, ready_msg) = if completed {
        (Some("PodCompleted"), None)
    } else if unready.is_empty() {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let all_ready = unready.is_empty() && !completed;
    let (init_reason, init_msg) = if initialized {
        (
            if completed && !pending_init.is_empty() {
                Some("PodCompleted")
            } else {
                None
            },
            None,
        )
    } else {
        (
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                pending_init.join(" ")
            )),
        )
    };
    let mut conditions = vec![
        condition("PodReadyToStartContainers", sandbox_ready, None, None, old),
        condition("Initialized", initialized, init_reason, init_msg, old),
        condition("Ready", all_ready, ready_reason, ready_msg.clone(), old),
        condition("ContainersReady", all_ready, ready_reason, ready_msg, old),
    ];
    let scheduled = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled").cloned())
        .unwrap_or_else(|| condition("PodScheduled", true, None, None, old));
    conditions.push(scheduled);
    // Conditions others own (DisruptionTarget, readiness gates) stay.
    let owned = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    for c in old
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        if !owned.contains(&c.type_.as_str()) {
            conditions.push(c.clone());
        }
    }
    let mut status = old.cloned().unwrap_or_default();
    status.phase = Some(phase.into());
    status.conditions = Some(conditions);
    status.host_ip = Some(inputs.node_ip.to_string());
    status.host_ips = Some(vec![HostIP {
        ip: inputs.node_ip.to_string(),
    }]);
    if !pod_ips.is_empty() {
        status.pod_ip = pod_ips.first().cloned();
        status.pod_ips = Some(pod_ips.into_iter().map(|ip| PodIP { ip }).collect());
    }
    status.start_time = status.start_time.or_else(|| Some(crate::time::now()));
    status.init_container_statuses =
        (!init.is_empty()).then(|| init.into_iter().map(|(_, s)| s).collect());
    status.container_statuses = Some(app);
    if status.qos_class.is_none() {
        status.qos_class = Some(crate::pods::container::qos_class(pod).into());
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "a"}, {"name": "b"}]}
        }))
        .unwrap()
    }

    fn st(v: serde_json::Value) -> ContainerStatus {
        serde_json::from_value(v).unwrap()
    }

    fn running() -> ContainerStatus {
        st(
            json!({"name": "x", "image": "", "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {}}}),
        )
    }

    fn exited(code: i32) -> ContainerStatus {
        st(
            json!({"name": "x", "image": "", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code}}}),
        )
    }

    fn crash_looping() -> ContainerStatus {
        st(
            json!({"name": "x", "image": "", "imageID": "", "ready": false, "restartCount": 1,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1}}}),
        )
    }

    fn creating() -> ContainerStatus {
        st(
            json!({"name": "x", "image": "", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}}),
        )
    }

    #[test]
    fn images_are_reported_normalized() {
        assert_eq!(
            normalize_image("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_image("me/app:1"), "docker.io/me/app:1");
        assert_eq!(
            normalize_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalize_image("localhost/capstan/busybox:1.35"),
            "localhost/capstan/busybox:1.35"
        );
    }

    #[test]
    fn phase_follows_upstream_get_phase() {
        assert_eq!(
            phase(&pod("Always"), &[], &[running(), creating()]),
            "Pending"
        );
        assert_eq!(
            phase(&pod("Always"), &[], &[running(), crash_looping()]),
            "Running"
        );
        assert_eq!(
            phase(&pod("Always"), &[], &[exited(0), exited(0)]),
            "Running"
        );
        assert_eq!(
            phase(&pod("OnFailure"), &[], &[exited(0), exited(0)]),
            "Succeeded"
        );
        assert_eq!(phase(&pod("Never"), &[], &[exited(0), exited(1)]), "Failed");
        assert_eq!(
            phase(&pod("OnFailure"), &[], &[exited(0), crash_looping()]),
            "Running"
        );
        // Init containers: pending until they succeed; a failed one fails a
        // Never pod and keeps others Pending.
        assert_eq!(
            phase(&pod("Always"), &[(false, running())], &[creating()]),
            "Pending"
        );
        assert_eq!(
            phase(&pod("Never"), &[(false, exited(1))], &[creating()]),
            "Failed"
        );
        assert_eq!(
            phase(&pod("Always"), &[(false, crash_looping())], &[creating()]),
            "Pending"
        );
        assert_eq!(
            phase(&pod("Always"), &[(true, running())], &[running()]),
            "Running"
        );
    }
}
