//! Upstream's name and label syntax rules, shared by every strategy, with
//! upstream's messages so `kubectl` users see familiar errors.

use serde_json::Value;

use crate::error::FieldError;
use crate::registry::strategy::NameRule;

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// RFC 1123 label: lowercase alphanumerics and '-', starting and ending
/// alphanumeric, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS1123_LABEL_MAX
        && s.chars().all(is_label_char)
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS1123_SUBDOMAIN_MAX
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(is_label_char)
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Upstream's message for an invalid subdomain name.
pub const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Upstream's message for an invalid label name.
pub const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Errors for an object name under a rule.
pub fn validate_name(field: &str, name: &str, rule: NameRule) -> Vec<FieldError> {
    let value = Value::String(name.to_string());
    match rule {
        NameRule::Subdomain if !is_dns1123_subdomain(name) => {
            vec![FieldError::invalid(field, &value, SUBDOMAIN_MSG)]
        }
        NameRule::Label if !is_dns1123_label(name) => {
            vec![FieldError::invalid(field, &value, LABEL_MSG)]
        }
        NameRule::Path if name == "." || name == ".." => {
            vec![FieldError::invalid(
                field,
                &value,
                &format!("may not be '{name}'"),
            )]
        }
        NameRule::Path if name.contains('/') || name.contains('%') => {
            vec![FieldError::invalid(
                field,
                &value,
                "may not contain '/' or '%'",
            )]
        }
        _ => Vec::new(),
    }
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS subdomain.
pub fn is_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(key),
    }
}

/// A label value: empty, or a qualified name part.
pub fn is_label_value(v: &str) -> bool {
    v.is_empty() || is_qualified_name_part(v)
}

const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Validates `metadata.labels` and the keys of `metadata.annotations`.
pub fn validate_labels_and_annotations(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = obj.get("metadata");
    if let Some(labels) = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    &Value::String(k.clone()),
                    QUALIFIED_NAME_MSG,
                ));
            }
            let value = v.as_str().unwrap_or_default();
            if !is_label_value(value) {
                errs.push(FieldError::invalid(
                    format!("metadata.labels[{k}]").as_str(),
                    v,
                    LABEL_VALUE_MSG,
                ));
            }
        }
    }
    if let Some(ann) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        for k in ann.keys() {
            if !is_qualified_name(&k.to_ascii_lowercase()) {
                errs.push(FieldError::invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    QUALIFIED_NAME_MSG,
                ));
            }
        }
    }
    errs
}

/// Validates a map of label keys to values at `field` (selectors, templates).
pub fn validate_label_map(field: &str, map: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(m) = map.and_then(Value::as_object) {
        for (k, v) in m {
            if !is_qualified_name(k) {
                errs.push(FieldError::invalid(
                    field,
                    &Value::String(k.clone()),
                    QUALIFIED_NAME_MSG,
                ));
            }
            if !is_label_value(v.as_str().unwrap_or_default()) {
                errs.push(FieldError::invalid(
                    format!("{field}[{k}]").as_str(),
                    v,
                    LABEL_VALUE_MSG,
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_and_labels_follow_rfc1123() {
        assert!(is_dns1123_subdomain("web-1.example"));
        assert!(!is_dns1123_subdomain("Web"));
        assert!(!is_dns1123_subdomain("-web"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(is_dns1123_label("kube-system"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }

    #[test]
    fn label_keys_may_carry_a_dns_prefix() {
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("App_1"));
        assert!(!is_qualified_name("bad key"));
        assert!(!is_qualified_name("Bad.Prefix/x"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-x"));
    }
}
