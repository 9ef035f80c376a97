//! Server-side apply through the generic store: the configuration is
//! checked against the URL, merged by the field manager, and the result
//! written like any other patch (defaults, admission, validation), or
//! created when the object does not exist yet.

use serde_json::{Value, json};

use super::meta;
use super::store::{Part, Store, WriteOptions};
use crate::error::{ApiError, ApiResult};
use crate::fieldmanager::{self, ApplyError, TypeSource};

impl Store<'_> {
    /// PATCH with `application/apply-patch+yaml`.
    pub(crate) async fn server_side_apply(
        &self,
        ns: &str,
        obj_name: &str,
        config: &Value,
        part: Part,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let config = self.check_apply_config(ns, obj_name, config)?;
        let pinned = meta::meta_str(&config, "resourceVersion").to_string();
        let types = TypeSource::of(self.info());
        let api_version = self.info().api_version();
        let scope = self.field_scope(part);
        let mut opts = opts.clone();
        loop {
            let current = match self.get_cached(ns, obj_name).await {
                Ok(c) => Some(c),
                // Apply creates, except through a subresource.
                Err(e)
                    if e.reason == "NotFound"
                        && part == Part::Main
                        && opts.field_manager.subresource.is_empty() =>
                {
                    None
                }
                Err(e) => return Err(e),
            };
            // A resourceVersion in the configuration is a precondition.
            if !pinned.is_empty()
                && current.as_ref().map(|c| c.revision.to_string()) != Some(pinned.clone())
            {
                return Err(ApiError::conflict(
                    self.subject(obj_name),
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            let live = current.as_ref().map(|c| &c.value);
            opts.field_manager.applied = false;
            let applied = fieldmanager::apply(
                live,
                &config,
                &opts.field_manager,
                scope,
                &api_version,
                &types,
            )
            .map_err(|e| self.apply_error(obj_name, e))?;
            opts.field_manager.applied = true;
            let Some(current) = current else {
                match self.create(ns, applied, &opts).await {
                    Err(e) if e.reason == "AlreadyExists" => continue,
                    other => return other,
                }
            };
            let new = self.decode(applied, &opts)?;
            if let Some(written) = self.write_update(current, new, part, &opts).await? {
                return Ok(written);
            }
        }
    }

    /// PATCH `.../scale` with `application/apply-patch+yaml`: the Scale's
    /// `spec.replicas` is the parent's, so the apply runs on the parent
    /// with ownership recorded under the `scale` subresource.
    pub(crate) async fn server_side_apply_scale(
        &self,
        ns: &str,
        obj_name: &str,
        config: &Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let kind = config
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let api_version = config
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if (kind, api_version) != ("Scale", "autoscaling/v1") {
            return Err(ApiError::bad_request(format!(
                "the apply configuration of a scale subresource must be an autoscaling/v1 Scale, got {api_version} {kind}"
            )));
        }
        let mut parent = json!({
            "apiVersion": self.info().api_version(),
            "kind": self.info().kind,
            "metadata": {"name": meta::name(config)},
        });
        if let Some(replicas) = config.pointer("/spec/replicas") {
            parent["spec"] = json!({"replicas": replicas});
        }
        let applied = self
            .server_side_apply(ns, obj_name, &parent, Part::Main, opts)
            .await?;
        Ok(super::scale::scale_of(&applied))
    }

    /// The configuration must name this kind and object (a missing name
    /// is the URL's) and may not carry `managedFields`.
    fn check_apply_config(&self, ns: &str, obj_name: &str, config: &Value) -> ApiResult<Value> {
        let Some(map) = config.as_object() else {
            return Err(ApiError::bad_request(
                "the body of an apply patch must be an object",
            ));
        };
        for field in ["apiVersion", "kind"] {
            if map
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .is_empty()
            {
                return Err(ApiError::bad_request(format!(
                    "Object '{}' is missing in '{config}'",
                    if field == "kind" { "Kind" } else { field }
                )));
            }
        }
        let mut config = config.clone();
        let body_name = meta::name(&config).to_string();
        if body_name.is_empty() {
            meta::set_meta(&mut config, "name", json!(obj_name));
        } else if body_name != obj_name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({obj_name})"
            )));
        }
        let body_ns = meta::namespace(&config);
        if self.info().namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if config
            .pointer("/metadata/managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        // Kind and version are checked when the result is decoded, as
        // every body is.
        Ok(config)
    }

    fn apply_error(&self, obj_name: &str, e: ApplyError) -> ApiError {
        match e {
            ApplyError::Conflicts(c) => fieldmanager::conflict_error(&c),
            ApplyError::Invalid(why) => ApiError::invalid(
                self.info().kind,
                self.subject(obj_name),
                vec![crate::error::FieldError {
                    reason: "FieldValueInvalid",
                    field: String::new(),
                    message: format!("failed to create typed patch object: {why}"),
                }],
            ),
        }
    }
}
