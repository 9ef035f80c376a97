//! A container's CRI config, as upstream's `generateContainerConfig`:
//! command and args with `$(VAR)` expanded, working directory, the
//! resolved environment, the log path `<name>/<attempt>.log` inside the
//! pod's log directory, labels and annotations that let a restarted
//! kubelet recognise it, cgroup resources from requests and limits, and
//! the security context.

use std::collections::HashMap;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod};

use capstan_component_helpers::quantity::parse_milli;

use super::env::expand;
use super::sandbox::namespace_options;
use crate::cri::labels;

/// The CFS period quotas are expressed in (upstream's 100 ms).
pub const QUOTA_PERIOD: i64 = 100_000;
/// The fewest CPU shares a container gets.
pub const MIN_SHARES: i64 = 2;
/// The smallest CFS quota.
pub const MIN_QUOTA: i64 = 1000;

fn quantity(c: &Container, list: &str, name: &str) -> Option<i128> {
    let r = c.resources.as_ref()?;
    let l = if list == "limits" {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    }?;
    parse_milli(&l.get(name)?.0)
}

/// Upstream's QoS class of a pod (Guaranteed, Burstable, BestEffort).
pub fn qos_class(pod: &Pod) -> &'static str {
    let spec = match pod.spec.as_ref() {
        Some(s) => s,
        None => return "BestEffort",
    };
    let all = || {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in all() {
        for name in ["cpu", "memory"] {
            let req = quantity(c, "requests", name);
            let lim = quantity(c, "limits", name);
            any |= req.is_some_and(|v| v > 0) || lim.is_some_and(|v| v > 0);
            if lim.is_none() || req.is_some_and(|r| Some(r) != lim) {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// cgroup settings from requests and limits: shares from the CPU request
/// (milli × 1024 / 1000, at least 2), a CFS quota from the CPU limit, the
/// memory limit, and upstream's QoS-based OOM score (never negative: root
/// may not lower it on these machines).
pub fn resources(pod: &Pod, c: &Container, node_memory: i64) -> cri::LinuxContainerResources {
    let cpu_request = quantity(c, "requests", "cpu").unwrap_or(0) as i64;
    let shares = (cpu_request * 1024 / 1000).max(MIN_SHARES);
    let (cpu_period, cpu_quota) = match quantity(c, "limits", "cpu") {
        Some(milli) => (
            QUOTA_PERIOD,
            ((milli as i64) * QUOTA_PERIOD / 1000).max(MIN_QUOTA),
        ),
        None => (0, 0),
    };
    let memory_limit = quantity(c, "limits", "memory")
        .map(|m| (m / 1000) as i64)
        .unwrap_or(0);
    let oom_score_adj = match qos_class(pod) {
        "Guaranteed" => 0,
        "BestEffort" => 1000,
        _ => {
            let req = quantity(c, "requests", "memory").unwrap_or(0) as i64 / 1000;
            let adj = if node_memory > 0 {
                1000 - (1000 * req) / node_memory
            } else {
                999
            };
            adj.clamp(2, 999)
        }
    };
    cri::LinuxContainerResources {
        cpu_period,
        cpu_quota,
        cpu_shares: shares,
        memory_limit_in_bytes: memory_limit,
        oom_score_adj,
        ..Default::default()
    }
}

/// The container's security context, the container's fields over the
/// pod's.
pub fn security_context(pod: &Pod, c: &Container) -> cri::LinuxContainerSecurityContext {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = c.security_context.as_ref();
    let run_as_user = csc
        .and_then(|s| s.run_as_user)
        .or_else(|| psc.and_then(|s| s.run_as_user));
    let run_as_group = csc
        .and_then(|s| s.run_as_group)
        .or_else(|| psc.and_then(|s| s.run_as_group));
    let caps = csc.and_then(|s| s.capabilities.as_ref());
    cri::LinuxContainerSecurityContext {
        capabilities: caps.map(|c| cri::Capability {
            add_capabilities: c.add.clone().unwrap_or_default(),
            drop_capabilities: c.drop.clone().unwrap_or_default(),
            ..Default::default()
        }),
        privileged: csc.and_then(|s| s.privileged).unwrap_or(false),
        namespace_options: Some(namespace_options(pod)),
        run_as_user: run_as_user.map(|value| cri::Int64Value { value }),
        run_as_group: run_as_group.map(|value| cri::Int64Value { value }),
        readonly_rootfs: csc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        supplemental_groups: psc
            .and_then(|s| s.supplemental_groups.clone())
            .unwrap_or_default(),
        no_new_privs: csc
            .and_then(|s| s.allow_privilege_escalation)
            .is_some_and(|allow| !allow),
        ..Default::default()
    }
}

/// A short, stable hash of the container spec (FNV-1a over its JSON), so
/// a kubelet can tell whether a running container matches its spec.
pub fn spec_hash(c: &Container) -> String {
    let text = serde_json::to_string(c).unwrap_or_default();
    let mut h: u32 = 2166136261;
    for b in text.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(16777619);
    }
    format!("{h:x}")
}

/// The CRI config of container `c` of `pod`, restart `attempt`, with its
/// resolved environment, volume mounts and the image reference to run.
pub fn config(
    pod: &Pod,
    c: &Container,
    attempt: u32,
    env: Vec<(String, String)>,
    mounts: Vec<cri::Mount>,
    image: &str,
    node_memory: i64,
) -> cri::ContainerConfig {
    let m = &pod.metadata;
    let name = m.name.clone().unwrap_or_default();
    let namespace = m.namespace.clone().unwrap_or_else(|| "default".into());
    let uid = m.uid.clone().unwrap_or_default();
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    let annotations = HashMap::from([
        (labels::CONTAINER_HASH.to_string(), spec_hash(c)),
        (labels::RESTART_COUNT.to_string(), attempt.to_string()),
        (
            labels::TERMINATION_GRACE_PERIOD.to_string(),
            grace.to_string(),
        ),
        (
            labels::TERMINATION_MESSAGE_PATH.to_string(),
            c.termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
        ),
    ]);
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: c
            .command
            .iter()
            .flatten()
            .map(|x| expand(x, &vars))
            .collect(),
        args: c.args.iter().flatten().map(|x| expand(x, &vars)).collect(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: env
            .into_iter()
            .map(|(key, value)| cri::KeyValue { key, value })
            .collect(),
        mounts,
        labels: labels::container(&name, &namespace, &uid, &c.name),
        annotations,
        log_path: format!("{}/{attempt}.log", c.name),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(resources(pod, c, node_memory)),
            security_context: Some(security_context(pod, c)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(resources: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "echo $(GREETING)"], "resources": resources,
                "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": true}}]}
        }))
        .unwrap()
    }

    #[test]
    fn requests_and_limits_become_cgroup_settings() {
        let p = pod(
            json!({"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}}),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let r = resources(&p, c, 1 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        assert_eq!(qos_class(&p), "Burstable");
        let none = pod(json!({}));
        let r = resources(&none, &none.spec.as_ref().unwrap().containers[0], 1 << 30);
        assert_eq!((r.cpu_shares, r.cpu_quota, r.oom_score_adj), (2, 0, 1000));
    }

    #[test]
    fn command_is_expanded_and_security_applied() {
        let p = pod(json!({}));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let cfg = config(
            &p,
            c,
            3,
            vec![("GREETING".into(), "hi".into())],
            Vec::new(),
            "busybox",
            0,
        );
        assert_eq!(cfg.command, vec!["sh", "-c", "echo hi"]);
        assert_eq!(cfg.log_path, "c/3.log");
        assert_eq!(cfg.annotations[labels::RESTART_COUNT], "3");
        let sc = cfg.linux.unwrap().security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert!(sc.readonly_rootfs);
    }
}
