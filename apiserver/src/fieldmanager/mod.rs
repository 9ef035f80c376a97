//! Field ownership (`metadata.managedFields`) and server-side apply, after
//! upstream's `fieldmanager` and structured-merge-diff.
//!
//! Every write records which fields its manager set ([`update`]); an apply
//! (`application/apply-patch+yaml`) makes the manager own exactly the
//! fields of its configuration, merges it into the object, removes what
//! the manager stopped applying and nobody else owns, and refuses to
//! change fields other managers own unless forced ([`apply`]).
//!
//! - `fieldset.rs`: sets of field paths and their FieldsV1 JSON.
//! - `schema.rs`: list and map semantics of a kind (built-in or OpenAPI).
//! - `walk.rs`: field sets of objects and their comparison.
//! - `merge.rs`: merging a configuration into an object, removing paths.
//! - `managed.rs`: the `managedFields` entries in upstream's encoding.
//! - `lastapplied.rs`: kubectl's last-applied annotation kept in step.

pub mod apply;
pub mod fieldset;
pub mod lastapplied;
pub mod managed;
pub mod merge;
pub mod schema;
pub mod update;
pub mod walk;

#[cfg(test)]
mod tests;

use crate::error::{ApiError, ApiResult, FieldError, Subject};
use crate::registry::store::Part;
use fieldset::FieldSet;

pub use apply::{ApplyError, Conflict, apply};
pub use schema::TypeSource;
pub use update::track;

/// Longest field manager name upstream accepts, in bytes.
pub const MAX_MANAGER_LENGTH: usize = 128;

/// Who is writing, as far as ownership is concerned; part of every
/// write's options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The field manager of a client's request (possibly empty, as
    /// upstream records a request without name or User-Agent); `None` for
    /// the server's own writes, which are not attributed, though fields
    /// they remove still leave every entry.
    pub manager: Option<String>,
    /// `force=true` on an apply: take conflicting fields over.
    pub force: bool,
    /// The subresource written (`status`, `scale`), recorded in entries.
    pub subresource: String,
    /// Set by the store for an apply, whose entries are already decided.
    pub(crate) applied: bool,
}

/// Which part of the object a write covers and how it is served: what a
/// manager can come to own through it.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// The part written.
    pub part: Part,
    /// Whether the kind has a status subresource (then the main resource
    /// does not write status).
    pub has_status: bool,
}

impl Scope {
    /// Restricts a set to what this write may own, without the fields
    /// upstream never tracks (identity and server-set metadata).
    pub(crate) fn restrict(&self, set: &FieldSet) -> FieldSet {
        let path = |p: &[&str]| -> Vec<String> { p.iter().map(|f| fieldset::field(f)).collect() };
        let mut out = match self.part {
            Part::Main => {
                let mut s = set.clone();
                if self.has_status {
                    s.remove_subtree(&path(&["status"]));
                }
                s
            }
            Part::Status => set.only(&path(&["status"])),
            Part::Finalize => set.only(&path(&["spec", "finalizers"])),
        };
        for p in [
            &["apiVersion"][..],
            &["kind"],
            &["metadata"],
            &["metadata", "name"],
            &["metadata", "namespace"],
            &["metadata", "uid"],
            &["metadata", "resourceVersion"],
            &["metadata", "generation"],
            &["metadata", "creationTimestamp"],
            &["metadata", "deletionTimestamp"],
            &["metadata", "deletionGracePeriodSeconds"],
            &["metadata", "selfLink"],
        ] {
            out.remove(&path(p));
        }
        out.remove_subtree(&path(&["metadata", "managedFields"]));
        out
    }
}

/// The manager of a write: the `fieldManager` parameter, else what the
/// User-Agent names before its first `/` (printable characters, at most
/// 128 bytes), as upstream's `prefixFromUserAgent`.
pub fn manager_name(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let prefix = user_agent
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|c| is_printable(*c)) {
        if out.len() + c.len_utf8() > MAX_MANAGER_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// Go's `unicode.IsPrint` for the characters a manager name may hold.
fn is_printable(c: char) -> bool {
    c == ' ' || !(c.is_control() || c.is_whitespace())
}

/// What is wrong with a `fieldManager` parameter: too long or holding
/// unprintable characters (upstream's `ValidateFieldManager`).
pub fn manager_errors(manager: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if manager.len() > MAX_MANAGER_LENGTH {
        errs.push(FieldError {
            reason: "FieldValueTooLong",
            field: "fieldManager".into(),
            message: format!(
                "fieldManager: Too long: may not be more than {MAX_MANAGER_LENGTH} bytes"
            ),
        });
    }
    for (i, c) in manager.char_indices() {
        if !is_printable(c) {
            errs.push(FieldError::invalid(
                "fieldManager",
                &serde_json::json!(manager),
                &format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errs
}

/// A 422 about the request's options (`CreateOptions`, `PatchOptions`,
/// ...), as upstream words it.
pub fn options_invalid(kind: &str, errs: Vec<FieldError>) -> ApiResult<()> {
    if errs.is_empty() {
        return Ok(());
    }
    // Named with its group (`PatchOptions.meta.k8s.io`), as upstream.
    Err(ApiError::invalid(
        kind,
        Subject::new("meta.k8s.io", "", ""),
        errs,
    ))
}

/// The 409 of an apply that would change fields other managers own.
pub fn conflict_error(conflicts: &[Conflict]) -> ApiError {
    let causes = conflicts
        .iter()
        .map(|c| FieldError {
            reason: "FieldManagerConflict",
            message: format!("conflict with {}", c.manager),
            field: fieldset::path_string(&c.path),
        })
        .collect();
    let message = if let [only] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager,
            fieldset::path_string(&only.path)
        )
    } else {
        let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for c in conflicts.iter().filter(|c| c.manager == m) {
                lines.push(format!("- {}", fieldset::path_string(&c.path)));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::apply_conflict(message, causes)
}
