//! The one error type of the apiserver. Every failure a handler can meet is
//! an [`ApiError`], and every `ApiError` answers as a `metav1.Status` body
//! with upstream's code and reason, so clients (kubectl, kube-rs) can act on
//! it. Internal details are logged, never sent.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

/// One offending field, shown in `details.causes` of a 422.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Upstream's cause type, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub reason: &'static str,
    /// The path of the field, e.g. `metadata.name`.
    pub field: String,
    /// What is wrong, already including the field path as upstream does.
    pub message: String,
}

impl FieldError {
    /// A required field is missing.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let field = field.into();
        let message = if detail.is_empty() {
            format!("{field}: Required value")
        } else {
            format!("{field}: Required value: {detail}")
        };
        FieldError {
            reason: "FieldValueRequired",
            field,
            message,
        }
    }

    /// A field holds a value that is not allowed.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        let field = field.into();
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        FieldError {
            reason: "FieldValueInvalid",
            message: format!("{field}: Invalid value: {shown}: {detail}"),
            field,
        }
    }

    /// A field may not be set in this context.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        let field = field.into();
        FieldError {
            reason: "FieldValueForbidden",
            message: format!("{field}: Forbidden: {detail}"),
            field,
        }
    }

    /// A field value is not one of an enumerated set.
    pub fn not_supported(field: impl Into<String>, value: &Value, allowed: &[&str]) -> Self {
        let field = field.into();
        let list = allowed
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        FieldError {
            reason: "FieldValueNotSupported",
            message: format!("{field}: Unsupported value: {value}: supported values: {list}"),
            field,
        }
    }

    /// A list holds the same key twice.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        let field = field.into();
        FieldError {
            reason: "FieldValueDuplicate",
            message: format!("{field}: Duplicate value: {value}"),
            field,
        }
    }

    /// A field may not change after creation.
    pub fn immutable(field: impl Into<String>, value: &Value) -> Self {
        let mut e = Self::invalid(field, value, "field is immutable");
        e.reason = "FieldValueInvalid";
        e
    }
}

/// What the object the error is about is called, for `details`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subject {
    /// API group, empty for the core group.
    pub group: String,
    /// Resource name as in the URL, e.g. `pods` (upstream puts it in `kind`).
    pub resource: String,
    /// Object name.
    pub name: String,
}

impl Subject {
    /// Names an object of a resource.
    pub fn new(group: &str, resource: &str, name: &str) -> Self {
        Subject {
            group: group.into(),
            resource: resource.into(),
            name: name.into(),
        }
    }

    fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// A failed request, carrying everything its `Status` body needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: StatusCode,
    /// Upstream's `StatusReason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// Human-readable message, as upstream words it.
    pub message: String,
    /// Object the error is about, when there is one (boxed: keeps the
    /// error small on every `Result` path).
    pub subject: Option<Box<Subject>>,
    /// Field causes (422) or other causes.
    pub causes: Vec<FieldError>,
    /// Seconds a client should wait before retrying (429, 504).
    pub retry_after: Option<u32>,
}

/// Result type of every fallible apiserver operation.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            subject: None,
            causes: Vec::new(),
            retry_after: None,
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 401: no or invalid credentials.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// 403: the request is understood but refused.
    pub fn forbidden(subject: Subject, why: &str) -> Self {
        let message = format!(
            "{} \"{}\" is forbidden: {why}",
            subject.qualified_resource(),
            subject.name
        );
        let mut e = Self::new(StatusCode::FORBIDDEN, "Forbidden", message);
        e.subject = Some(Box::new(subject));
        e
    }

    /// 404 for an object.
    pub fn not_found(subject: Subject) -> Self {
        let message = format!(
            "{} \"{}\" not found",
            subject.qualified_resource(),
            subject.name
        );
        let mut e = Self::new(StatusCode::NOT_FOUND, "NotFound", message);
        e.subject = Some(Box::new(subject));
        e
    }

    /// 404 for a path the server does not serve.
    pub fn path_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 405: the resource exists but not this verb.
    pub fn method_not_allowed(verb: &str, resource: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({verb} {resource})"
            ),
        )
    }

    /// 405 with the server's reason, for a verb refused for now rather
    /// than never (creating custom objects while their CRD is deleted).
    pub fn method_not_allowed_because(why: &str) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", why)
    }

    /// 409 AlreadyExists on create.
    pub fn already_exists(subject: Subject) -> Self {
        let message = format!(
            "{} \"{}\" already exists",
            subject.qualified_resource(),
            subject.name
        );
        let mut e = Self::new(StatusCode::CONFLICT, "AlreadyExists", message);
        e.subject = Some(Box::new(subject));
        e
    }

    /// 409 Conflict: a compare-and-swap lost against a newer write.
    pub fn conflict(subject: Subject, why: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{}\": {why}",
            subject.qualified_resource(),
            subject.name
        );
        let mut e = Self::new(StatusCode::CONFLICT, "Conflict", message);
        e.subject = Some(Box::new(subject));
        e
    }

    /// 409 of a server-side apply that would change fields other managers
    /// own: one `FieldManagerConflict` cause per field, no object details.
    pub fn apply_conflict(message: impl Into<String>, causes: Vec<FieldError>) -> Self {
        let mut e = Self::new(StatusCode::CONFLICT, "Conflict", message);
        e.causes = causes;
        e
    }

    /// 410: the requested resourceVersion has been compacted away.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 410 for a watch or list from a version older than retained history.
    pub fn too_old_resource_version(requested: i64, oldest: i64) -> Self {
        Self::gone(format!("too old resource version: {requested} ({oldest})"))
    }

    /// 429: the request is refused for now (e.g. an eviction that would
    /// break a PodDisruptionBudget).
    pub fn too_many_requests(message: impl Into<String>, causes: Vec<FieldError>) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message);
        e.causes = causes;
        e
    }

    /// 413: the body is larger than the server accepts.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 415: a body in a media type the endpoint does not take.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"
            ),
        )
    }

    /// 406: no representation the client accepts.
    pub fn not_acceptable(accept: &str) -> Self {
        Self::not_acceptable_of(
            accept,
            &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ],
        )
    }

    /// 406 from an endpoint that offers only `offered` (e.g. `/openapi/v2`).
    pub fn not_acceptable_of(accept: &str, offered: &[&str]) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: {} (asked for {accept:?})",
                offered.join(", ")
            ),
        )
    }

    /// 422 with field causes.
    pub fn invalid(kind: &str, subject: Subject, causes: Vec<FieldError>) -> Self {
        let summary = causes.iter().map(|c| c.message.clone()).collect::<Vec<_>>();
        let joined = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        // Upstream names the kind qualified by its group (`Deployment.apps`).
        let qualified = if subject.group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{}", subject.group)
        };
        let message = format!("{qualified} \"{}\" is invalid: {joined}", subject.name);
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message);
        e.subject = Some(Box::new(Subject {
            resource: kind.to_string(),
            ..subject
        }));
        e.causes = causes;
        e
    }

    /// 500 whose reason the client may read, as upstream's "range is
    /// full" allocation failures.
    pub fn internal_visible(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {detail}"),
        )
    }

    /// 500: something failed inside; the detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "Internal error occurred: the server could not complete the request",
        )
    }

    /// 503: storage is not reachable.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "storage unavailable");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        );
        e.retry_after = Some(1);
        e
    }

    /// 504: a wait (for a resourceVersion) ran out.
    pub fn timeout(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", message);
        e.retry_after = Some(1);
        e
    }

    /// An error a backend (a node's kubelet) answered with, relayed as
    /// upstream's `NewGenericServerResponse`: the backend's code, the
    /// reason that code implies, and its body as the message.
    pub fn from_backend(code: StatusCode, message: impl Into<String>, subject: Subject) -> Self {
        let reason = match code.as_u16() {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        let mut message = message.into();
        if message.trim().is_empty() {
            message = format!(
                "the server responded with the status code {} but did not return more information",
                code.as_u16()
            );
        }
        let mut e = Self::new(code, reason, message.trim_end().to_string());
        e.subject = Some(Box::new(subject));
        e
    }

    /// The `metav1.Status` JSON body.
    pub fn status_body(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(s) = &self.subject {
            if !s.name.is_empty() {
                details.insert("name".into(), json!(s.name));
            }
            if !s.group.is_empty() {
                details.insert("group".into(), json!(s.group));
            }
            if !s.resource.is_empty() {
                details.insert("kind".into(), json!(s.resource));
            }
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(r) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if !details.is_empty() {
            body["details"] = Value::Object(details);
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.as_u16(),
            self.reason,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.status_body()).unwrap_or_default();
        let mut resp = (self.code, body).into_response();
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if let Some(r) = self.retry_after
            && let Ok(v) = http::HeaderValue::from_str(&r.to_string())
        {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_group_and_resource_like_upstream() {
        let e = ApiError::not_found(Subject::new("apps", "deployments", "web"));
        let body = e.status_body();
        assert_eq!(body["code"], 404);
        assert_eq!(body["reason"], "NotFound");
        assert_eq!(body["message"], "deployments.apps \"web\" not found");
        assert_eq!(body["details"]["kind"], "deployments");
    }

    #[test]
    fn invalid_lists_each_cause_with_its_field() {
        let e = ApiError::invalid(
            "Pod",
            Subject::new("", "pods", "Bad_Name"),
            vec![FieldError::invalid(
                "metadata.name",
                &json!("Bad_Name"),
                "a lowercase RFC 1123 subdomain",
            )],
        );
        let body = e.status_body();
        assert_eq!(body["code"], 422);
        assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("Pod \"Bad_Name\" is invalid: metadata.name: Invalid value")
        );
    }
}
