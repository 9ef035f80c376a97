//! Label and field selectors from list and watch query strings, parsed with
//! upstream's grammar and matched against JSON objects.

use std::collections::BTreeSet;

use kube_core::{Expression, Selector, SelectorExt};
use serde_json::Value;

use crate::registry::meta;

/// A parsed `labelSelector`.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Selector);

impl LabelSelector {
    /// Parses upstream's label selector syntax: comma-separated
    /// `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut selector = Selector::default();
        for term in split_terms(text)? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            selector.extend([parse_term(term)?]);
        }
        Ok(LabelSelector(selector))
    }

    /// Builds a selector from an API `LabelSelector` object
    /// (`matchLabels` and `matchExpressions`) or a ReplicationController's
    /// plain map of labels. An empty selector matches everything.
    pub fn from_json(selector: &Value) -> Result<Self, String> {
        let Some(sel) = selector.as_object() else {
            return Ok(LabelSelector::default());
        };
        let structured = sel.contains_key("matchLabels") || sel.contains_key("matchExpressions");
        let plain = if structured {
            sel.get("matchLabels").and_then(Value::as_object)
        } else {
            Some(sel)
        };
        let mut out = Selector::default();
        for (k, v) in plain.into_iter().flatten() {
            out.extend([Expression::Equal(
                k.clone(),
                v.as_str().unwrap_or_default().to_string(),
            )]);
        }
        for e in sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let values: BTreeSet<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            out.extend([
                match e
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                {
                    "In" => Expression::In(key, values),
                    "NotIn" => Expression::NotIn(key, values),
                    "Exists" => Expression::Exists(key),
                    "DoesNotExist" => Expression::DoesNotExist(key),
                    other => {
                        return Err(format!("{other:?} is not a valid label selector operator"));
                    }
                },
            ]);
        }
        Ok(LabelSelector(out))
    }

    /// Whether a plain label map matches.
    pub fn matches_labels(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.0.selects_all() || self.0.matches(labels)
    }

    /// Whether the object's labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.selects_all() || self.0.matches(&meta::labels(obj))
    }

    /// Whether the selector is empty.
    pub fn is_empty(&self) -> bool {
        self.0.selects_all()
    }
}

/// Splits on commas that are not inside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!(
                        "unable to parse requirement: unbalanced ')' in {text:?}"
                    ));
                }
            }
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!(
            "unable to parse requirement: unbalanced '(' in {text:?}"
        ));
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn check_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    if !crate::validation::is_qualified_name(key) {
        return Err(format!(
            "unable to parse requirement: invalid label key {key:?}"
        ));
    }
    Ok(key.to_string())
}

fn check_value(v: &str) -> Result<String, String> {
    let v = v.trim();
    if !crate::validation::is_label_value(v) {
        return Err(format!(
            "unable to parse requirement: invalid label value: {v:?}"
        ));
    }
    Ok(v.to_string())
}

fn parse_set(rest: &str) -> Result<BTreeSet<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!("unable to parse requirement: expected '(' and ')' around values in {rest:?}")
        })?;
    inner.split(',').map(check_value).collect()
}

fn parse_term(term: &str) -> Result<Expression, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(check_key(key)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Expression::NotEqual(check_key(k)?, check_value(v)?));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok(Expression::Equal(check_key(k)?, check_value(v)?));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok(Expression::Equal(check_key(k)?, check_value(v)?));
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let rest = words[1].trim_start();
        if let Some(set) = rest.strip_prefix("notin") {
            return Ok(Expression::NotIn(check_key(words[0])?, parse_set(set)?));
        }
        if let Some(set) = rest.strip_prefix("in") {
            return Ok(Expression::In(check_key(words[0])?, parse_set(set)?));
        }
        return Err(format!(
            "unable to parse requirement: unknown operator in {term:?}"
        ));
    }
    Ok(Expression::Exists(check_key(term)?))
}

/// One `fieldSelector` term.
#[derive(Debug, Clone, PartialEq)]
struct FieldTerm {
    pointer: String,
    value: String,
    equal: bool,
}

/// A parsed `fieldSelector`, resolved against the kind's field labels.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
    /// The `metadata.name` it requires, if any (lets a watch of one object
    /// skip everything else cheaply).
    pub name: Option<String>,
}

impl FieldSelector {
    /// Parses `a=b,c!=d` and maps each label through `labels` (plus
    /// `metadata.name` and `metadata.namespace`, which every kind has).
    pub fn parse(text: &str, labels: &[(&str, &str)]) -> Result<Self, String> {
        let mut out = FieldSelector::default();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            let pointer = match field {
                "metadata.name" => "/metadata/name",
                "metadata.namespace" => "/metadata/namespace",
                other => labels
                    .iter()
                    .find(|(l, _)| *l == other)
                    .map(|(_, p)| *p)
                    .ok_or_else(|| format!("field label not supported: {other}"))?,
            };
            if field == "metadata.name" && equal {
                out.name = Some(value.to_string());
            }
            out.terms.push(FieldTerm {
                pointer: pointer.to_string(),
                value: value.to_string(),
                equal,
            });
        }
        Ok(out)
    }

    /// Whether the object matches every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms
            .iter()
            .all(|t| (meta::pointer_string(obj, &t.pointer) == t.value) == t.equal)
    }

    /// Whether the selector is empty.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// Both selectors of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The label selector.
    pub labels: LabelSelector,
    /// The field selector.
    pub fields: FieldSelector,
}

impl Filter {
    /// Whether an object passes both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// Whether the filter passes everything.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn every_label_operator_matches_like_upstream() {
        let p = pod(json!({"app": "web", "tier": "front"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app notin (web,db)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=back", false),
            ("app in (db), tier", false),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).map(|s| s.matches(&p)),
                Ok(want),
                "{sel}"
            );
        }
    }

    #[test]
    fn api_label_selectors_match_like_their_string_form() {
        let p = pod(json!({"app": "web", "tier": "front"}));
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]});
        assert!(LabelSelector::from_json(&sel).is_ok_and(|s| s.matches(&p)));
        assert!(LabelSelector::from_json(&json!({"app": "db"})).is_ok_and(|s| !s.matches(&p)));
        assert!(LabelSelector::from_json(&json!({})).is_ok_and(|s| s.matches(&p)));
        assert!(
            LabelSelector::from_json(
                &json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})
            )
            .is_err()
        );
    }

    #[test]
    fn malformed_label_selectors_are_refused() {
        assert!(LabelSelector::parse("app in (web").is_err());
        assert!(LabelSelector::parse("bad key=x").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
    }

    #[test]
    fn field_selectors_use_the_kinds_labels() {
        let labels = [
            ("spec.nodeName", "/spec/nodeName"),
            ("status.phase", "/status/phase"),
        ];
        let p = pod(json!({}));
        let f = FieldSelector::parse("spec.nodeName=n1,status.phase!=Pending", &labels);
        assert!(f.as_ref().is_ok_and(|f| f.matches(&p)));
        let f = FieldSelector::parse("metadata.name=q", &labels);
        assert!(
            f.as_ref()
                .is_ok_and(|f| !f.matches(&p) && f.name.as_deref() == Some("q"))
        );
        assert_eq!(
            FieldSelector::parse("spec.foo=x", &labels).err(),
            Some("field label not supported: spec.foo".to_string())
        );
    }
}
