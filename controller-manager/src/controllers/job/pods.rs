//! The Job's pods: which belong to it, which are active or finished, and
//! the pod its template describes (with the job-tracking finalizer, so a
//! finished pod is not gone before the controller has counted it).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::indexes::COMPLETION_INDEX;

/// The finalizer that keeps a Job's finished pod until it is counted
/// (upstream's `batch.kubernetes.io/job-tracking`).
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// `Succeeded`, `Failed`, or neither (still running as far as we know).
pub fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Ended: succeeded, failed, or being deleted before it succeeded (which
/// upstream counts as a failure).
pub fn finished(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Succeeded" | "Failed")) || pod.metadata.deletion_timestamp.is_some()
}

/// Ended successfully.
pub fn succeeded(pod: &Pod) -> bool {
    phase(pod) == Some("Succeeded")
}

/// Carries the job-tracking finalizer.
pub fn tracked(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// The pod's uid (empty when the apiserver has not given one).
pub fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The controller reference a Job puts on its pods.
fn controller_ref(job: &Job) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone()?,
        uid: job.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The pod `job`'s template describes, for completion `index` when the
/// Job is Indexed: named `<job>-` (`<job>-<index>-`) by the apiserver,
/// labelled as upstream, controlled by the Job and tracked by its
/// finalizer.
pub fn from_template(job: &Job, index: Option<i32>) -> Option<Pod> {
    let name = job.metadata.name.as_deref()?;
    let template = job.spec.as_ref()?.template.clone();
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    let uid = job.metadata.uid.clone()?;
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid.as_str()),
        ("batch.kubernetes.io/job-name", name),
        ("controller-uid", uid.as_str()),
        ("job-name", name),
    ] {
        labels.entry(k.to_string()).or_insert_with(|| v.to_string());
    }
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut finalizers = tmeta.finalizers.unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.to_string());
    let mut spec = template.spec?;
    let generate_name = match index {
        Some(i) => {
            labels.insert(COMPLETION_INDEX.into(), i.to_string());
            annotations.insert(COMPLETION_INDEX.into(), i.to_string());
            if spec.hostname.is_none() {
                spec.hostname = Some(format!("{name}-{i}"));
            }
            for c in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                c.env.get_or_insert_with(Vec::new).push(index_env());
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Some(Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![controller_ref(job)?]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// `JOB_COMPLETION_INDEX`, read from the pod's annotation as upstream.
fn index_env() -> EnvVar {
    EnvVar {
        name: "JOB_COMPLETION_INDEX".into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
            }),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indexed_pods_carry_their_index_everywhere_upstream_puts_it() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "work", "namespace": "ns", "uid": "u1"},
            "spec": {"completionMode": "Indexed", "template": {
                "metadata": {"labels": {"app": "w"}},
                "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"},
            }},
        }))
        .unwrap();
        let pod = from_template(&job, Some(2)).unwrap();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(COMPLETION_INDEX).map(String::as_str), Some("2"));
        assert_eq!(labels.get("job-name").map(String::as_str), Some("work"));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("work-2-"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("work-2"));
        assert_eq!(
            spec.containers[0].env.as_ref().unwrap()[0].name,
            "JOB_COMPLETION_INDEX"
        );
        assert!(
            pod.metadata
                .finalizers
                .unwrap()
                .contains(&TRACKING_FINALIZER.to_string())
        );
    }
}
