//! The `scale` subresource (autoscaling/v1 Scale) of every kind with
//! `spec.replicas` and a selector: a view of the object that `kubectl
//! scale` and autoscalers read and write. Written once for all such kinds.

use serde_json::{Value, json};

use super::meta;
use super::store::{Part, Patch, Store, WriteOptions};
use crate::error::{ApiError, ApiResult, FieldError, Subject};
use crate::watchcache::stamp_resource_version;

/// Renders a label selector (`matchLabels`/`matchExpressions`, or a
/// ReplicationController's plain map) in the string form of
/// `status.selector`.
pub fn selector_string(selector: Option<&Value>) -> String {
    let Some(sel) = selector.and_then(Value::as_object) else {
        return String::new();
    };
    let plain = sel
        .get("matchLabels")
        .or(if sel.contains_key("matchExpressions") {
            None
        } else {
            selector
        });
    let mut terms: Vec<String> = plain
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        terms.push(
            match e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            },
        );
    }
    // Upstream's selector String() orders requirements by key.
    terms.sort_by(|a, b| term_key(a).cmp(term_key(b)));
    terms.join(",")
}

/// The key a rendered requirement is about (`!k`, `k=v`, `k in (..)`).
fn term_key(term: &str) -> &str {
    let t = term.trim_start_matches('!');
    t.split(['=', ' ']).next().unwrap_or(t)
}

/// The Scale view of an object.
pub fn scale_of(obj: &Value) -> Value {
    let mut metadata = serde_json::Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj.pointer(&format!("/metadata/{f}")) {
            metadata.insert(f.into(), v.clone());
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": meta::int_at(obj, "/spec/replicas")},
        "status": {
            "replicas": meta::int_at(obj, "/status/replicas"),
            "selector": selector_string(obj.pointer("/spec/selector")),
        },
    })
}

impl Store<'_> {
    /// GET `.../scale`.
    pub async fn get_scale(&self, ns: &str, name: &str) -> ApiResult<Value> {
        self.scale_view(&self.get(ns, name).await?)
    }

    fn scale_view(&self, obj: &Value) -> ApiResult<Value> {
        self.info()
            .strategy
            .scale_view(obj)
            .ok_or_else(ApiError::path_not_found)
    }

    /// PUT `.../scale`: sets `spec.replicas` from a Scale.
    pub async fn update_scale(
        &self,
        ns: &str,
        name: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        // Any resourceVersion in a PUT body is a precondition.
        let pinned = !meta::meta_str(&body, "resourceVersion").is_empty();
        self.write_scale(ns, name, opts, |_| Ok((body.clone(), pinned)))
            .await
    }

    /// PATCH `.../scale`: patches the Scale view, then writes its replicas.
    pub async fn patch_scale(
        &self,
        ns: &str,
        name: &str,
        patch: &Patch,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        if let Patch::Apply(config) = patch {
            return self.server_side_apply_scale(ns, name, config, opts).await;
        }
        // A patch pins the version only if it changes the one it was given.
        self.write_scale(ns, name, opts, |view| {
            let patched = self.apply_patch(view, patch, None)?;
            let pinned = meta::meta_str(&patched, "resourceVersion")
                != meta::meta_str(view, "resourceVersion");
            Ok((patched, pinned))
        })
        .await
    }

    async fn write_scale(
        &self,
        ns: &str,
        name: &str,
        opts: &WriteOptions,
        desired: impl Fn(&Value) -> ApiResult<(Value, bool)>,
    ) -> ApiResult<Value> {
        loop {
            let current = self.get_cached(ns, name).await?;
            let (scale, pinned) = desired(&self.scale_view(&current.value)?)?;
            // The Scale's own type refuses wrong types and out-of-range
            // numbers (replicas is an int32), as upstream's decoding does.
            let typed: k8s_openapi::api::autoscaling::v1::Scale =
                serde_json::from_value(scale.clone()).map_err(|e| {
                    ApiError::bad_request(format!("error decoding Scale body: {e}"))
                })?;
            let subject = Subject::new("autoscaling", "scale", name);
            if meta::name(&scale) != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta::name(&scale)
                )));
            }
            if pinned && meta::meta_str(&scale, "resourceVersion") != current.revision.to_string() {
                return Err(ApiError::conflict(
                    Subject::new(self.info().group, self.info().plural, name),
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            let replicas = i64::from(typed.spec.and_then(|s| s.replicas).unwrap_or(0));
            if replicas < 0 {
                return Err(ApiError::invalid(
                    "Scale",
                    subject,
                    vec![FieldError::invalid(
                        "spec.replicas",
                        &json!(replicas),
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let mut new = current.value.clone();
            self.info().strategy.set_replicas(&mut new, replicas);
            let revision = current.revision;
            match self.write_update(current, new, Part::Main, opts).await? {
                Some(mut written) => {
                    if meta::meta_str(&written, "resourceVersion").is_empty() {
                        stamp_resource_version(&mut written, revision);
                    }
                    return self.scale_view(&written);
                }
                None if !pinned => continue,
                None => {
                    return Err(ApiError::conflict(
                        Subject::new(self.info().group, self.info().plural, name),
                        "the object has been modified; please apply your changes to the latest version and try again",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_render_like_upstream() {
        assert_eq!(
            selector_string(Some(&json!({"matchLabels": {"app": "web"}}))),
            "app=web"
        );
        assert_eq!(selector_string(Some(&json!({"app": "web"}))), "app=web");
        let both = json!({"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "t", "operator": "In", "values": ["x", "y"]}]});
        assert_eq!(selector_string(Some(&both)), "a=b,t in (x,y)");
    }

    #[test]
    fn scale_view_carries_replicas_and_selector() {
        let d = json!({"metadata": {"name": "web", "namespace": "d", "resourceVersion": "7"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(
            (
                s["spec"]["replicas"].clone(),
                s["status"]["replicas"].clone(),
                s["status"]["selector"].clone()
            ),
            (json!(3), json!(2), json!("app=web"))
        );
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }
}
