//! Reading what `kubectl get` prints.

/// kubectl's table output as rows of cells, cut at the header's column
/// offsets (kubectl left-aligns every cell under its header), after
/// checking the header is exactly `headers`. AGE cells must read like an
/// age and come back as `<age>`.
pub fn printed_table(out: &str, headers: &[&str]) -> Vec<Vec<String>> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    let mut offsets = Vec::new();
    let mut pos = 0;
    for h in headers {
        let found = header[pos..].find(h).map(|i| i + pos);
        let Some(at) = found.filter(|at| header[pos..*at].trim().is_empty()) else {
            panic!("header {header:?} is not {headers:?}");
        };
        offsets.push(at);
        pos = at + h.len();
    }
    assert!(
        header[pos..].trim().is_empty(),
        "header {header:?} is not {headers:?}"
    );
    lines
        .map(|line| {
            (0..offsets.len())
                .map(|i| {
                    let end = offsets.get(i + 1).copied().unwrap_or(line.len());
                    let cell = line
                        .get(offsets[i]..end.min(line.len()))
                        .unwrap_or("")
                        .trim();
                    if headers[i] != "AGE" {
                        return cell.to_string();
                    }
                    let unit = cell.trim_start_matches(|c: char| c.is_ascii_digit());
                    assert!(
                        unit.len() < cell.len() && ["s", "m", "h"].contains(&unit),
                        "{cell:?} is not an age in {line:?}"
                    );
                    "<age>".to_string()
                })
                .collect()
        })
        .collect()
}
