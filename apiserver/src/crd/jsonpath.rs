//! The JSONPath subset CRDs use in `additionalPrinterColumns[].jsonPath`
//! and the scale subresource's paths: `.a.b`, `.a[0]`, `.a[*].b` and
//! filters `.a[?(@.type=="Ready")].status`, with or without the `{}`
//! kubectl templates wrap them in.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.<field>=="<value>")]`.
    Filter(Vec<String>, Value),
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath(Vec<Step>);

impl JsonPath {
    /// Parses `path`; the error says what is wrong with it.
    pub fn parse(path: &str) -> Result<Self, String> {
        let p = path.trim();
        let p = p
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .unwrap_or(p);
        let p = p.strip_prefix('$').unwrap_or(p);
        if !p.starts_with('.') && !p.starts_with('[') {
            return Err("must be a simple JSON path starting with \".\"".into());
        }
        let mut steps = Vec::new();
        let mut rest = p;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let field = &r[..end];
                if field.is_empty() {
                    return Err(format!("empty field name in {path:?}"));
                }
                steps.push(Step::Field(field.to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r
                    .find(']')
                    .ok_or_else(|| format!("unclosed [ in {path:?}"))?;
                let inner = r[..end].trim();
                steps.push(
                    parse_bracket(inner)
                        .ok_or_else(|| format!("unsupported expression [{inner}] in {path:?}"))?,
                );
                rest = &r[end + 1..];
            } else {
                return Err(format!("unexpected {rest:?} in {path:?}"));
            }
        }
        Ok(JsonPath(steps))
    }

    /// Every value the path selects in `obj`.
    pub fn find<'a>(&self, obj: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![obj];
        for step in &self.0 {
            let mut next = Vec::new();
            for v in current {
                match step {
                    Step::Field(f) => next.extend(v.get(f.as_str())),
                    Step::Index(i) => next.extend(v.get(*i)),
                    Step::All => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Step::Filter(fields, want) => {
                        for item in v.as_array().into_iter().flatten() {
                            let got = fields.iter().try_fold(item, |at, f| at.get(f.as_str()));
                            if got == Some(want) {
                                next.push(item);
                            }
                        }
                    }
                }
            }
            current = next;
        }
        current
    }

    /// The path as a chain of plain fields (`.spec.replicas` → `["spec",
    /// "replicas"]`), for paths a write may set; `None` for paths with
    /// indexes or filters.
    pub fn fields(&self) -> Option<Vec<&str>> {
        self.0
            .iter()
            .map(|s| match s {
                Step::Field(f) => Some(f.as_str()),
                _ => None,
            })
            .collect()
    }
}

fn parse_bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(i) = inner.parse::<usize>() {
        return Some(Step::Index(i));
    }
    if let Some(quoted) = inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
    {
        return Some(Step::Field(quoted.to_string()));
    }
    let expr = inner.strip_prefix("?(")?.strip_suffix(')')?;
    let (lhs, rhs) = expr.split_once("==")?;
    let fields: Vec<String> = lhs
        .trim()
        .strip_prefix("@.")?
        .split('.')
        .map(str::to_string)
        .collect();
    let rhs = rhs.trim();
    let value = rhs
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| rhs.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .map(|s| Value::String(s.to_string()))
        .or_else(|| serde_json::from_str(rhs).ok())?;
    Some(Step::Filter(fields, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_indexes_wildcards_and_filters() {
        let obj = json!({"spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 443}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]}});
        let find = |p: &str| -> Vec<Value> {
            JsonPath::parse(p)
                .map(|j| j.find(&obj).into_iter().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(find(".spec.replicas"), vec![json!(3)]);
        assert_eq!(find("{.spec.ports[1].port}"), vec![json!(443)]);
        assert_eq!(find(".spec.ports[*].port"), vec![json!(80), json!(443)]);
        assert_eq!(
            find(".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert!(find(".spec.missing").is_empty());
        assert!(JsonPath::parse("spec").is_err());
        assert_eq!(
            JsonPath::parse(".spec.replicas")
                .ok()
                .and_then(|p| p.fields().map(|f| f.join("/"))),
            Some("spec/replicas".to_string())
        );
    }
}
