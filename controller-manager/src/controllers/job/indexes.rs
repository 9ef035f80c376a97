//! Indexed completion mode (upstream's `indexed_job_utils.go`): each pod
//! carries its completion index in the `batch.kubernetes.io/job-completion-index`
//! annotation and label, and `status.completedIndexes` lists the finished
//! ones compressed into ranges ("0-2,4").

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

/// The annotation and label holding a pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// The completion index of `pod`, from its annotation (or label).
pub fn of(pod: &Pod) -> Option<i32> {
    let meta = &pod.metadata;
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(COMPLETION_INDEX))
        .or_else(|| meta.labels.as_ref().and_then(|l| l.get(COMPLETION_INDEX)))
        .and_then(|v| v.parse().ok())
        .filter(|i| *i >= 0)
}

/// Parses `completedIndexes` ("0-2,4"); malformed parts are skipped.
pub fn parse(text: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    out.insert(i);
                }
            }
        }
    }
    out
}

/// Renders indexes as upstream does: ascending, consecutive runs of more
/// than one as `a-b`, joined by commas.
pub fn render(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in indexes {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some(r) => {
                parts.push(range(r));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(r) = run {
        parts.push(range(r));
    }
    parts.join(",")
}

fn range((a, b): (i32, i32)) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

/// The lowest `n` indexes below `completions` that are neither completed
/// nor held by an active pod.
pub fn next_free(
    completions: i32,
    completed: &BTreeSet<i32>,
    active: &BTreeSet<i32>,
    n: usize,
) -> Vec<i32> {
    (0..completions)
        .filter(|i| !completed.contains(i) && !active.contains(i))
        .take(n)
        .collect()
}

/// Active pods that should not run (upstream removes them too): no valid
/// index, an index already completed, or a second pod of an index (the
/// oldest pod of an index is kept).
pub fn redundant(
    active: &[Arc<Pod>],
    completions: i32,
    completed: &BTreeSet<i32>,
) -> Vec<Arc<Pod>> {
    let mut by_age = active.to_vec();
    by_age.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let mut seen = BTreeSet::new();
    by_age
        .into_iter()
        .filter(|p| match of(p) {
            Some(i) if i < completions && !completed.contains(&i) => !seen.insert(i),
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, index: Option<i32>, created: &str) -> Arc<Pod> {
        let annotations = index.map(|i| json!({COMPLETION_INDEX: i.to_string()}));
        Arc::new(
            serde_json::from_value(json!({"metadata": {
                "name": name, "annotations": annotations, "creationTimestamp": created,
            }}))
            .unwrap(),
        )
    }

    #[test]
    fn duplicate_completed_and_out_of_range_indexes_are_redundant() {
        let active = vec![
            pod("dup-new", Some(1), "2024-01-01T00:00:05Z"),
            pod("one", Some(1), "2024-01-01T00:00:00Z"),
            pod("done", Some(0), "2024-01-01T00:00:00Z"),
            pod("far", Some(9), "2024-01-01T00:00:00Z"),
            pod("none", None, "2024-01-01T00:00:00Z"),
            pod("two", Some(2), "2024-01-01T00:00:00Z"),
        ];
        let names: BTreeSet<String> = redundant(&active, 3, &parse("0"))
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let want: BTreeSet<String> = ["dup-new", "done", "far", "none"].map(String::from).into();
        assert_eq!(names, want);
    }

    #[test]
    fn completed_indexes_read_and_print_like_upstream() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(render(&set), "0-2,4,6-7");
        assert_eq!(parse("0-2,4,6-7"), set);
        assert_eq!(render(&BTreeSet::new()), "");
        assert_eq!(
            next_free(5, &parse("0,2"), &[1].into_iter().collect(), 5),
            vec![3, 4]
        );
    }
}
