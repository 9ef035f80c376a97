//! The resource verbs over the generic store, for every kind.

use std::collections::HashMap;

use axum::extract::Request;
use axum::response::Response;
use http::{StatusCode, header};
use serde_json::{Value, json};

use super::{AppState, bytes_response, json_response, read_body};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::fieldmanager;
use crate::fieldvalidation::FieldValidation;
use crate::negotiation::{
    Format, content_essence, decode_body, decode_json, encode, response_format,
};
use crate::registry::ResourceInfo;
use crate::registry::store::{
    DeleteOptions, Deleted, ListOptions, ListResult, Part, Patch, Store, WriteOptions,
};
use crate::request_info::ResourceRequest;
use crate::selectors::{FieldSelector, Filter, LabelSelector};
use crate::table::{self, IncludeObject};

fn respond(
    info: &ResourceInfo,
    status: StatusCode,
    obj: &Value,
    format: Format,
    q: &HashMap<String, String>,
) -> ApiResult<Response> {
    if format == Format::Table {
        let t = table::build(
            info,
            std::iter::once(obj),
            IncludeObject::parse(q.get("includeObject").map(String::as_str)),
            None,
            None,
        );
        return Ok(json_response(status, &t));
    }
    let (body, content_type) = encode(obj, format)?;
    Ok(bytes_response(status, content_type, body))
}

/// Parses label and field selectors from the query.
pub(super) fn filter(info: &ResourceInfo, q: &HashMap<String, String>) -> ApiResult<Filter> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(
        q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        info.strategy.field_labels(),
    )
    .map_err(ApiError::bad_request)?;
    Ok(Filter { labels, fields })
}

fn write_options(q: &HashMap<String, String>) -> ApiResult<WriteOptions> {
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}: supported values: \"All\""
            )));
        }
    };
    let field_validation = FieldValidation::parse(q.get("fieldValidation").map(String::as_str))?;
    Ok(WriteOptions {
        dry_run,
        field_validation,
        ..Default::default()
    })
}

/// The field manager of a create, update or patch (`options_kind` is
/// `CreateOptions`, `UpdateOptions` or `PatchOptions`), checked as upstream
/// checks those options: an apply needs `fieldManager`, only an apply may
/// say `force`.
fn field_manager(
    q: &HashMap<String, String>,
    user_agent: Option<&str>,
    subresource: &str,
    options_kind: &str,
    apply: bool,
) -> ApiResult<fieldmanager::Options> {
    let given = q
        .get("fieldManager")
        .map(String::as_str)
        .unwrap_or_default();
    let mut errs = Vec::new();
    if options_kind == "PatchOptions" {
        if apply && given.is_empty() {
            errs.push(FieldError::required(
                "fieldManager",
                "is required for apply patch",
            ));
        }
        if !apply && q.contains_key("force") {
            errs.push(FieldError::forbidden(
                "force",
                "may not be specified for non-apply patch",
            ));
        }
    }
    errs.extend(fieldmanager::manager_errors(given));
    fieldmanager::options_invalid(options_kind, errs)?;
    Ok(fieldmanager::Options {
        manager: Some(fieldmanager::manager_name(Some(given), user_agent)),
        force: matches!(q.get("force").map(String::as_str), Some("true" | "1")),
        subresource: subresource.to_string(),
        ..Default::default()
    })
}

/// Adds one `Warning: 299 - "..."` header per warning the write collected.
fn with_warnings(mut resp: Response, opts: &WriteOptions) -> Response {
    let warnings = opts.warnings.lock().map(|w| w.clone()).unwrap_or_default();
    for w in warnings {
        let text = format!("299 - {:?}", w);
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn part_for(info: &ResourceInfo, sub: &str) -> ApiResult<Part> {
    match sub {
        "" => Ok(Part::Main),
        "status" if info.has_subresource("status") => Ok(Part::Status),
        "finalize" if info.has_subresource("finalize") => Ok(Part::Finalize),
        _ => Err(ApiError::path_not_found()),
    }
}

/// Handles one resource request.
pub(super) async fn handle(
    state: &AppState,
    r: &ResourceRequest,
    q: &HashMap<String, String>,
    req: Request,
) -> ApiResult<Response> {
    let served = state.served.get();
    let info = served
        .registry
        .lookup(&r.group, &r.version, &r.resource)
        .ok_or_else(ApiError::path_not_found)?;
    if !r.subresource.is_empty() && !info.has_subresource(&r.subresource) {
        return Err(ApiError::path_not_found());
    }
    if !info.namespaced && !r.namespace.is_empty() {
        return Err(ApiError::path_not_found());
    }
    if info.group.is_empty()
        && info.plural == "pods"
        && crate::kubeletproxy::SUBRESOURCES.contains(&r.subresource.as_str())
    {
        return crate::kubeletproxy::serve(state, r, q, req).await;
    }
    if info.namespaced && r.namespace.is_empty() {
        // Across all namespaces only list and watch exist, as upstream.
        match r.verb {
            "list" | "watch" if r.name.is_empty() => {}
            "create" | "deletecollection" => {
                return Err(ApiError::method_not_allowed(r.verb, &r.resource));
            }
            _ => return Err(ApiError::path_not_found()),
        }
    }
    let store = state.backend.store(info)?;
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let format = response_format(accept.as_deref())?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let manager = |kind: &str, apply: bool| {
        field_manager(q, user_agent.as_deref(), &r.subresource, kind, apply)
    };
    let ns = r.namespace.as_str();
    let name = r.name.as_str();
    match (r.verb, r.subresource.as_str()) {
        ("get", "scale") => {
            let scale = store.get_scale(ns, name).await?;
            respond(info, StatusCode::OK, &scale, format.without_table(), q)
        }
        ("update", "scale") => {
            let body = decode_body(content_type.as_deref(), &read_body(req.into_body()).await?)?;
            let mut opts = write_options(q)?;
            opts.field_manager = manager("UpdateOptions", false)?;
            let scale = store.update_scale(ns, name, body, &opts).await?;
            respond(info, StatusCode::OK, &scale, format.without_table(), q)
        }
        ("patch", "scale") => {
            let patch = read_patch(content_type.as_deref(), req).await?;
            let mut opts = write_options(q)?;
            opts.field_manager = manager("PatchOptions", matches!(patch, Patch::Apply(_)))?;
            let scale = store.patch_scale(ns, name, &patch, &opts).await?;
            respond(info, StatusCode::OK, &scale, format.without_table(), q)
        }
        ("get", sub) => {
            part_for(info, sub)?;
            let obj = store.get(ns, name).await?;
            respond(info, StatusCode::OK, &obj, format, q)
        }
        ("list", _) => list(&store, ns, q, format).await,
        ("watch", _) => super::watch::serve(&store, ns, name, q, format).await,
        ("create", "eviction") => {
            let body = decode_body(content_type.as_deref(), &read_body(req.into_body()).await?)?;
            let options = body
                .get("deleteOptions")
                .map(serde_json::to_vec)
                .transpose()
                .map_err(ApiError::internal)?;
            let evicted = body
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or(name);
            if evicted != name {
                return Err(ApiError::bad_request(format!(
                    "name in URL does not match name in Eviction object ({name} != {evicted})"
                )));
            }
            let mut delete = delete_options(q, options.as_deref().unwrap_or_default())?;
            delete.dry_run |= write_options(q)?.dry_run;
            let eviction = crate::registry::eviction::Eviction { delete };
            crate::registry::eviction::evict(&state.backend, &served.registry, ns, name, &eviction)
                .await?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        ("create", "binding") => {
            let body = decode_body(content_type.as_deref(), &read_body(req.into_body()).await?)?;
            let node = body
                .pointer("/target/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if node.is_empty() {
                return Err(ApiError::invalid(
                    "Binding",
                    crate::error::Subject::new("", "bindings", name),
                    vec![crate::error::FieldError::required("target.name", "")],
                ));
            }
            let uid = body
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty());
            store.bind(ns, name, &node, uid, &write_options(q)?).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        ("create", "") if name.is_empty() => {
            let body = decode_body(content_type.as_deref(), &read_body(req.into_body()).await?)?;
            let mut opts = write_options(q)?;
            opts.field_manager = manager("CreateOptions", false)?;
            let created = store.create(ns, body, &opts).await?;
            Ok(with_warnings(
                respond(info, StatusCode::CREATED, &created, format, q)?,
                &opts,
            ))
        }
        ("update", sub) => {
            let part = part_for(info, sub)?;
            let body = decode_body(content_type.as_deref(), &read_body(req.into_body()).await?)?;
            let mut opts = write_options(q)?;
            opts.field_manager = manager("UpdateOptions", false)?;
            let updated = store.update(ns, name, body, part, &opts).await?;
            Ok(with_warnings(
                respond(info, StatusCode::OK, &updated, format, q)?,
                &opts,
            ))
        }
        ("patch", sub) => {
            let part = part_for(info, sub)?;
            let patch = read_patch(content_type.as_deref(), req).await?;
            let mut opts = write_options(q)?;
            opts.field_manager = manager("PatchOptions", matches!(patch, Patch::Apply(_)))?;
            let patched = store.patch(ns, name, &patch, part, &opts).await?;
            Ok(with_warnings(
                respond(info, StatusCode::OK, &patched, format, q)?,
                &opts,
            ))
        }
        ("delete", "") => {
            let raw = read_body(req.into_body()).await?;
            let opts = delete_options(q, &raw)?;
            match store.delete(ns, name, &opts).await? {
                Deleted::Gone(obj) => respond(info, StatusCode::OK, &obj, format, q),
                Deleted::Pending(obj) => respond(info, StatusCode::OK, &obj, format, q),
            }
        }
        ("deletecollection", "") => {
            let raw = read_body(req.into_body()).await?;
            let opts = delete_options(q, &raw)?;
            let listing = store
                .list(
                    ns,
                    &ListOptions {
                        filter: filter(info, q)?,
                        ..Default::default()
                    },
                )
                .await?;
            let mut deleted = Vec::new();
            for obj in &listing.items {
                let obj_ns = crate::registry::meta::namespace(&obj.value);
                let obj_name = crate::registry::meta::name(&obj.value);
                match store.delete(obj_ns, obj_name, &opts).await {
                    Ok(Deleted::Gone(v)) | Ok(Deleted::Pending(v)) => deleted.push(v),
                    Err(e) if e.reason == "NotFound" => {}
                    Err(e) => return Err(e),
                }
            }
            let list = json!({"kind": info.list_kind, "apiVersion": info.api_version(), "metadata": {"resourceVersion": listing.revision.to_string()}, "items": deleted});
            respond(
                info,
                StatusCode::OK,
                &list,
                if format == Format::Table {
                    Format::Json
                } else {
                    format
                },
                q,
            )
        }
        (verb, _) => Err(ApiError::method_not_allowed(verb, &r.resource)),
    }
}

/// Reads a PATCH body by its media type.
async fn read_patch(content_type: Option<&str>, req: Request) -> ApiResult<Patch> {
    let raw = read_body(req.into_body()).await?;
    match content_essence(content_type).as_str() {
        "application/merge-patch+json" => Ok(Patch::Merge(decode_json(&raw)?)),
        "application/strategic-merge-patch+json" => Ok(Patch::Strategic(decode_json(&raw)?)),
        "application/json-patch+json" => {
            let v = decode_json(&raw)?;
            Ok(Patch::Json(serde_json::from_value(v).map_err(|e| {
                ApiError::bad_request(format!("invalid JSON patch: {e}"))
            })?))
        }
        "application/apply-patch+yaml" => Ok(Patch::Apply(
            decode_json(&raw).or_else(|_| crate::negotiation::decode_yaml(&raw))?,
        )),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// DeleteOptions from the body (if any) and the query.
fn delete_options(q: &HashMap<String, String>, raw: &[u8]) -> ApiResult<DeleteOptions> {
    let body: Value = if raw.is_empty() {
        json!({})
    } else {
        decode_json(raw)?
    };
    let grace = match q.get("gracePeriodSeconds") {
        Some(g) => Some(
            g.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds: {g:?}")))?,
        ),
        None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    let dry_run = q.get("dryRun").map(String::as_str) == Some("All")
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let mut propagation = q.get("propagationPolicy").cloned().or_else(|| {
        body.get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if propagation.is_none() && body.get("orphanDependents") == Some(&Value::Bool(true)) {
        propagation = Some("Orphan".into());
    }
    if let Some(p) = &propagation
        && !["Foreground", "Background", "Orphan"].contains(&p.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        )));
    }
    Ok(DeleteOptions {
        grace_period_seconds: grace,
        uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        propagation_policy: propagation,
        dry_run,
    })
}

async fn list(
    store: &Store<'_>,
    ns: &str,
    q: &HashMap<String, String>,
    format: Format,
) -> ApiResult<Response> {
    let info = store.info();
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?
            .max(0),
        None => 0,
    };
    let opts = ListOptions {
        filter: filter(info, q)?,
        limit,
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
        resource_version: q.get("resourceVersion").cloned(),
        resource_version_match: q
            .get("resourceVersionMatch")
            .filter(|m| !m.is_empty())
            .cloned(),
    };
    let result = store.list(ns, &opts).await?;
    match format {
        Format::Table => {
            let t = table::build(
                info,
                result.items.iter().map(|o| &o.value),
                IncludeObject::parse(q.get("includeObject").map(String::as_str)),
                Some(result.revision),
                result.continue_token.as_deref(),
            );
            Ok(json_response(StatusCode::OK, &t))
        }
        Format::Json => Ok(bytes_response(
            StatusCode::OK,
            "application/json",
            list_json(info, &result),
        )),
        Format::Yaml | Format::Protobuf => {
            let v: Value =
                serde_json::from_slice(&list_json(info, &result)).map_err(ApiError::internal)?;
            let (body, ct) = encode(&v, format)?;
            Ok(bytes_response(StatusCode::OK, ct, body))
        }
    }
}

/// Assembles a list body from the objects' shared encoded bytes, without
/// re-encoding any object.
fn list_json(info: &ResourceInfo, result: &ListResult) -> Vec<u8> {
    let mut metadata = json!({"resourceVersion": result.revision.to_string()});
    if let Some(c) = &result.continue_token {
        metadata["continue"] = json!(c);
    }
    let head =
        json!({"kind": info.list_kind, "apiVersion": info.api_version(), "metadata": metadata});
    let mut out = serde_json::to_vec(&head).unwrap_or_default();
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in result.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.bytes);
    }
    out.extend_from_slice(b"]}");
    out
}
