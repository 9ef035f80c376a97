//! Where a pod subresource request goes: which of the pod's containers it
//! names, at which address its node's kubelet listens, and the log options
//! checked as upstream checks `PodLogOptions`. Pure functions over the
//! stored objects.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{ApiError, ApiResult, FieldError, Subject};

fn container_names<'a>(pod: &'a Value, list: &str) -> Vec<&'a str> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect()
}

/// The container a `log`, `exec` or `attach` request is for: the one it
/// names (any app, init or ephemeral container), else the pod's only
/// container; with several and none named, upstream's 400 listing them.
pub fn container(pod: &Value, pod_name: &str, requested: Option<&str>) -> ApiResult<String> {
    let app = container_names(pod, "containers");
    let init = container_names(pod, "initContainers");
    match requested.filter(|c| !c.is_empty()) {
        Some(name) => {
            let ephemeral = container_names(pod, "ephemeralContainers");
            if app.contains(&name) || init.contains(&name) || ephemeral.contains(&name) {
                Ok(name.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {name} is not valid for pod {pod_name}"
                )))
            }
        }
        None => match app.as_slice() {
            [only] => Ok((*only).to_string()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}"
            ))),
            many => {
                let mut message = format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    many.join(" ")
                );
                if !init.is_empty() {
                    message.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(ApiError::bad_request(message))
            }
        },
    }
}

/// The kubelet of a node: its address of the first preferred type the node
/// reports, and the port it reports (else `default_port`).
pub fn kubelet_address(
    node: &Value,
    preferred: &[String],
    default_port: u16,
) -> Option<(String, u16)> {
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)?;
    let host = preferred.iter().find_map(|kind| {
        addresses
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(kind.as_str()))
            .and_then(|a| a.get("address").and_then(Value::as_str))
            .filter(|a| !a.is_empty())
    })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(default_port);
    Some((host.to_string(), port))
}

fn integer(q: &HashMap<String, String>, key: &str) -> ApiResult<Option<i64>> {
    q.get(key)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "couldn't parse {key} {v:?}: strconv.ParseInt: parsing {v:?}: invalid syntax"
                ))
            })
        })
        .transpose()
}

fn boolean(q: &HashMap<String, String>, key: &str) -> ApiResult<bool> {
    match q.get(key).map(String::as_str) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "couldn't parse {key} {v:?}: strconv.ParseBool: parsing {v:?}: invalid syntax"
        ))),
    }
}

/// The kubelet's `containerLogs` query for a `log` request, after
/// upstream's `PodLogOptions` checks (422 naming the field).
pub fn log_query(q: &HashMap<String, String>, pod_name: &str) -> ApiResult<String> {
    let tail = integer(q, "tailLines")?;
    let limit = integer(q, "limitBytes")?;
    let since_seconds = integer(q, "sinceSeconds")?;
    let since_time = q.get("sinceTime").filter(|t| !t.is_empty());
    let mut errs = Vec::new();
    if let Some(t) = tail.filter(|t| *t < 0) {
        errs.push(FieldError::invalid(
            "tailLines",
            &Value::from(t),
            "must be greater than or equal to 0",
        ));
    }
    if let Some(l) = limit.filter(|l| *l < 1) {
        errs.push(FieldError::invalid(
            "limitBytes",
            &Value::from(l),
            "must be greater than 0",
        ));
    }
    match (since_seconds, since_time) {
        (Some(_), Some(_)) => errs.push(FieldError::forbidden(
            "",
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        )),
        (Some(s), None) if s < 1 => errs.push(FieldError::invalid(
            "sinceSeconds",
            &Value::from(s),
            "must be greater than 0",
        )),
        _ => {}
    }
    if let Some(t) = since_time.filter(|t| t.parse::<jiff::Timestamp>().is_err()) {
        return Err(ApiError::bad_request(format!(
            "parsing time {t:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse"
        )));
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(
            "PodLogOptions",
            Subject::new("", "pods", pod_name),
            errs,
        ));
    }
    Ok(form_urlencoded(&[
        ("follow", boolean(q, "follow")?.then(|| "true".to_string())),
        (
            "previous",
            boolean(q, "previous")?.then(|| "true".to_string()),
        ),
        (
            "timestamps",
            boolean(q, "timestamps")?.then(|| "true".to_string()),
        ),
        ("tailLines", tail.map(|t| t.to_string())),
        ("limitBytes", limit.map(|l| l.to_string())),
        ("sinceSeconds", since_seconds.map(|s| s.to_string())),
        ("sinceTime", since_time.cloned()),
    ]))
}

fn form_urlencoded(pairs: &[(&str, Option<String>)]) -> String {
    let present: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .collect();
    serde_urlencoded::to_string(present).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"spec": {
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "web"}, {"name": "sidecar"}],
        }})
    }

    #[test]
    fn a_pod_with_several_containers_needs_one_named() {
        let e = container(&pod(), "p", None).err().map(|e| e.message);
        assert_eq!(
            e.as_deref(),
            Some(
                "a container name must be specified for pod p, choose one of: [web sidecar] or one of the init containers: [setup]"
            )
        );
        assert_eq!(
            container(&pod(), "p", Some("setup")).ok().as_deref(),
            Some("setup")
        );
        let e = container(&pod(), "p", Some("nope"))
            .err()
            .map(|e| e.message);
        assert_eq!(e.as_deref(), Some("container nope is not valid for pod p"));
        let single = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(container(&single, "p", None).ok().as_deref(), Some("only"));
    }

    #[test]
    fn the_kubelet_is_reached_at_the_preferred_address_and_reported_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10350}},
        }});
        let preferred = vec!["InternalIP".to_string(), "Hostname".to_string()];
        assert_eq!(
            kubelet_address(&node, &preferred, 10250),
            Some(("10.0.0.5".to_string(), 10350))
        );
        let bare = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(
            kubelet_address(&bare, &preferred, 10250),
            Some(("n1".to_string(), 10250))
        );
        assert_eq!(kubelet_address(&json!({}), &preferred, 10250), None);
    }

    #[test]
    fn log_options_are_checked_and_passed_on() {
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            log_query(
                &q(&[("follow", "true"), ("tailLines", "10"), ("container", "x")]),
                "p"
            )
            .ok(),
            Some("follow=true&tailLines=10".to_string())
        );
        let e = log_query(&q(&[("tailLines", "-1")]), "p").err();
        assert_eq!(e.as_ref().map(|e| e.code.as_u16()), Some(422));
        assert_eq!(
            e.and_then(|e| e.causes.first().map(|c| c.field.clone()))
                .as_deref(),
            Some("tailLines")
        );
        let both = log_query(
            &q(&[("sinceSeconds", "5"), ("sinceTime", "2026-01-01T00:00:00Z")]),
            "p",
        );
        assert_eq!(both.err().map(|e| e.code.as_u16()), Some(422));
        let bad = log_query(&q(&[("limitBytes", "x")]), "p");
        assert_eq!(bad.err().map(|e| e.code.as_u16()), Some(400));
    }
}
