//! Defaulting and validation of a PodSpec, shared by Pods and every pod
//! template (Deployments, Jobs, ...), as upstream's `SetDefaults_PodSpec`.

use serde_json::{Value, json};

use crate::error::FieldError;
use crate::registry::meta::default_at;
use crate::validation::{LABEL_MSG, is_dns1123_label};

/// Upstream's pull policy default: `Always` for `:latest` or untagged
/// images, else `IfNotPresent`.
fn default_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    default_at(c, &["imagePullPolicy"], json!(default_pull_policy(&image)));
    default_at(
        c,
        &["terminationMessagePath"],
        json!("/dev/termination-log"),
    );
    default_at(c, &["terminationMessagePolicy"], json!("File"));
    default_at(c, &["resources"], json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default_at(p, &["protocol"], json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            default_at(p, &["timeoutSeconds"], json!(1));
            default_at(p, &["periodSeconds"], json!(10));
            default_at(p, &["successThreshold"], json!(1));
            default_at(p, &["failureThreshold"], json!(3));
            if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                default_at(h, &["path"], json!("/"));
                default_at(h, &["scheme"], json!("HTTP"));
            }
        }
    }
}

fn default_volume(v: &mut Value) {
    for (source, mode_field) in [
        ("configMap", "defaultMode"),
        ("secret", "defaultMode"),
        ("downwardAPI", "defaultMode"),
        ("projected", "defaultMode"),
    ] {
        if let Some(s) = v.get_mut(source).filter(|s| s.is_object()) {
            default_at(s, &[mode_field], json!(420));
        }
    }
    if let Some(h) = v.get_mut("hostPath").filter(|h| h.is_object()) {
        default_at(h, &["type"], json!(""));
    }
}

/// Applies upstream's PodSpec defaults in place.
pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_at(spec, &["restartPolicy"], json!("Always"));
    default_at(spec, &["terminationGracePeriodSeconds"], json!(30));
    default_at(spec, &["dnsPolicy"], json!("ClusterFirst"));
    default_at(spec, &["securityContext"], json!({}));
    default_at(spec, &["schedulerName"], json!("default-scheduler"));
    default_at(spec, &["enableServiceLinks"], json!(true));
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(default_container);
        }
    }
    if let Some(vs) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        vs.iter_mut().for_each(default_volume);
    }
}

/// Validates a PodSpec at `path` (e.g. `spec`, `spec.template.spec`).
pub fn validate_pod_spec(path: &str, spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => errs.push(FieldError::required(format!("{path}.containers"), "")),
        Some(cs) if cs.is_empty() => {
            errs.push(FieldError::required(format!("{path}.containers"), ""))
        }
        Some(_) => {}
    }
    let mut names = std::collections::BTreeSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{path}.{list}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                errs.push(FieldError::required(format!("{at}.name"), ""));
            } else if !is_dns1123_label(name) {
                errs.push(FieldError::invalid(
                    format!("{at}.name"),
                    &json!(name),
                    LABEL_MSG,
                ));
            } else if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(format!("{at}.name"), &json!(name)));
            }
            if c.get("image")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .is_empty()
            {
                errs.push(FieldError::required(format!("{at}.image"), ""));
            }
            let policy = c
                .get("imagePullPolicy")
                .and_then(Value::as_str)
                .unwrap_or("IfNotPresent");
            if !["Always", "IfNotPresent", "Never"].contains(&policy) {
                errs.push(FieldError::not_supported(
                    format!("{at}.imagePullPolicy"),
                    &json!(policy),
                    &["Always", "IfNotPresent", "Never"],
                ));
            }
            for (j, p) in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    errs.push(FieldError::invalid(
                        format!("{at}.ports[{j}].containerPort"),
                        &json!(port),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
    let restart = spec
        .get("restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always");
    if !["Always", "OnFailure", "Never"].contains(&restart) {
        errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            &json!(restart),
            &["Always", "OnFailure", "Never"],
        ));
    }
    let dns = spec
        .get("dnsPolicy")
        .and_then(Value::as_str)
        .unwrap_or("ClusterFirst");
    if !["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"].contains(&dns) {
        errs.push(FieldError::not_supported(
            format!("{path}.dnsPolicy"),
            &json!(dns),
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ));
    }
    let mut volumes = std::collections::BTreeSet::new();
    for (i, v) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        if !is_dns1123_label(name) {
            errs.push(FieldError::invalid(
                format!("{path}.volumes[{i}].name"),
                &json!(name),
                LABEL_MSG,
            ));
        } else if !volumes.insert(name.to_string()) {
            errs.push(FieldError::duplicate(
                format!("{path}.volumes[{i}].name"),
                &json!(name),
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults_follow_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/app"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/app:v1"), "IfNotPresent");
    }

    #[test]
    fn defaults_match_what_kubectl_get_shows_upstream() {
        let mut spec = json!({"containers": [{"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80}]}]});
        default_pod_spec(&mut spec);
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            spec["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn a_spec_without_image_or_with_duplicate_names_is_invalid() {
        let spec = json!({"containers": [{"name": "c"}, {"name": "c", "image": "x"}]});
        let fields: Vec<String> = validate_pod_spec("spec", &spec)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert!(fields.contains(&"spec.containers[0].image".to_string()));
        assert!(fields.contains(&"spec.containers[1].name".to_string()));
    }
}
