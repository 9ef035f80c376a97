//! Container logs as `kubectl logs` shows them, read from the CRI log file
//! the runtime writes (`<RFC3339Nano> <stdout|stderr> <P|F> <text>` a
//! line; `P` marks a partial line continued by the next): the text alone,
//! or prefixed with its timestamp; from the last `tailLines` lines, from
//! `sinceTime`, up to `limitBytes`; and, with `follow`, new lines as they
//! are written until the container stops — upstream's `ReadLogs`.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

/// What a `containerLogs` request asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    /// Keep streaming new lines until the container stops.
    pub follow: bool,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: bool,
    /// Only the last this many lines.
    pub tail_lines: Option<u64>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
    /// Only lines written at or after this time.
    pub since: Option<Timestamp>,
}

/// One parsed line of a CRI log file.
#[derive(Debug, PartialEq)]
pub struct Entry<'a> {
    /// When the runtime read it.
    pub timestamp: &'a str,
    /// Whether the line continues in the next entry.
    pub partial: bool,
    /// The text, without the newline.
    pub text: &'a [u8],
}

/// Parses one line of a CRI log file (without its newline); `None` for a
/// line that is not in the format (skipped, as upstream skips them).
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let timestamp = std::str::from_utf8(parts.next()?).ok()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or_default();
    let partial = match tag {
        b"P" => true,
        b"F" => false,
        // Old runtimes wrote no tag: the third field is text.
        _ => return None,
    };
    Some(Entry {
        timestamp,
        partial,
        text,
    })
}

/// Renders entries one at a time, keeping what spans lines (a partial
/// line's prefix, the byte budget).
pub struct Renderer {
    opts: LogOptions,
    /// The previous entry was partial: this one continues its line.
    continuing: bool,
    /// Bytes still allowed by `limitBytes`.
    budget: Option<u64>,
}

impl Renderer {
    /// A renderer for one request.
    pub fn new(opts: LogOptions) -> Self {
        let budget = opts.limit_bytes;
        Renderer {
            opts,
            continuing: false,
            budget,
        }
    }

    /// Whether `limitBytes` is spent.
    pub fn done(&self) -> bool {
        self.budget == Some(0)
    }

    /// The bytes one file line contributes to the output.
    pub fn render(&mut self, line: &[u8]) -> Vec<u8> {
        let Some(entry) = parse(line) else {
            return Vec::new();
        };
        if let Some(since) = self.opts.since {
            match entry.timestamp.parse::<Timestamp>() {
                Ok(t) if t < since => return Vec::new(),
                Ok(_) => {}
                Err(_) => return Vec::new(),
            }
        }
        let mut out = Vec::with_capacity(entry.text.len() + 32);
        if self.opts.timestamps && !self.continuing {
            out.extend_from_slice(entry.timestamp.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(entry.text);
        if !entry.partial {
            out.push(b'\n');
        }
        self.continuing = entry.partial;
        if let Some(budget) = self.budget.as_mut() {
            let keep = (*budget).min(out.len() as u64);
            out.truncate(keep as usize);
            *budget -= keep;
        }
        out
    }
}

/// Byte offset of the start of the last `n` lines of `data` (a file's
/// tail), or `None` when the tail holds fewer than `n` line starts.
fn tail_start(data: &[u8], n: u64) -> Option<usize> {
    // A final newline ends the last line; it does not start a new one.
    let end = data.len() - usize::from(data.last() == Some(&b'\n'));
    let mut seen = 0;
    for (i, b) in data[..end].iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Where reading starts for `tailLines`: scans back from the end in
/// blocks until it has seen enough line starts.
async fn tail_offset(file: &mut tokio::fs::File, n: u64) -> std::io::Result<u64> {
    const BLOCK: u64 = 64 * 1024;
    let len = file.seek(SeekFrom::End(0)).await?;
    if n == 0 {
        return Ok(len);
    }
    let mut start = len;
    loop {
        start = start.saturating_sub(BLOCK);
        file.seek(SeekFrom::Start(start)).await?;
        let mut buf = vec![0; (len - start) as usize];
        file.read_exact(&mut buf).await?;
        if let Some(i) = tail_start(&buf, n) {
            return Ok(start + i as u64);
        }
        if start == 0 {
            return Ok(0);
        }
    }
}

/// How often a followed log is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Streams the rendered log of the file at `path` into `tx`. With
/// `follow`, it keeps reading until `running()` says the container has
/// stopped and the file holds nothing more, or the client goes away.
pub async fn stream<F, Fut>(
    path: PathBuf,
    opts: LogOptions,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    running: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let follow = opts.follow;
    let tail = opts.tail_lines;
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    let start = match tail {
        Some(n) => tail_offset(&mut file, n).await,
        None => Ok(0),
    };
    if let Err(e) = async {
        file.seek(SeekFrom::Start(start?)).await?;
        Ok::<_, std::io::Error>(())
    }
    .await
    {
        let _ = tx.send(Err(e)).await;
        return;
    }
    let mut reader = BufReader::new(file);
    let mut renderer = Renderer::new(opts);
    let mut line = Vec::new();
    loop {
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => {
                if !follow || tx.is_closed() {
                    return;
                }
                // Nothing new: the log ends once the container has
                // stopped (and everything it wrote has been read).
                if !running().await {
                    match reader.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                } else {
                    tokio::time::sleep(FOLLOW_POLL).await;
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
        if line.last() != Some(&b'\n') {
            // A line still being written: wait for its end.
            continue;
        }
        let out = renderer.render(&line[..line.len() - 1]);
        line.clear();
        if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
            return;
        }
        if renderer.done() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-12-06T10:00:00.000000001Z stdout F one\n\
2026-12-06T10:00:01.000000001Z stderr P par\n\
2026-12-06T10:00:01.500000001Z stderr F tial\n\
2026-12-06T10:00:02.000000001Z stdout F \n\
2026-12-06T10:00:03.000000001Z stdout F three\n";

    fn render_all(opts: LogOptions, text: &str) -> String {
        let mut r = Renderer::new(opts);
        let mut out = Vec::new();
        for line in text.lines() {
            out.extend(r.render(line.as_bytes()));
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn partial_lines_join_and_timestamps_prefix_whole_lines() {
        assert_eq!(
            render_all(LogOptions::default(), LOG),
            "one\npartial\n\nthree\n"
        );
        let stamped = render_all(
            LogOptions {
                timestamps: true,
                ..Default::default()
            },
            LOG,
        );
        assert_eq!(
            stamped.lines().nth(1),
            Some("2026-12-06T10:00:01.000000001Z partial")
        );
    }

    #[test]
    fn since_and_limit_cut_the_output() {
        let since = render_all(
            LogOptions {
                since: "2026-12-06T10:00:02Z".parse().ok(),
                ..Default::default()
            },
            LOG,
        );
        assert_eq!(since, "\nthree\n");
        let limited = render_all(
            LogOptions {
                limit_bytes: Some(6),
                ..Default::default()
            },
            LOG,
        );
        assert_eq!(limited, "one\npa");
    }

    #[test]
    fn the_tail_starts_at_the_nth_line_from_the_end() {
        let data = LOG.as_bytes();
        let start = tail_start(data, 2).unwrap_or(0);
        assert!(LOG[start..].starts_with("2026-12-06T10:00:02"));
        assert_eq!(tail_start(data, 5), None);
        assert_eq!(tail_start(b"a\nb\n", 1), Some(2));
    }

    #[tokio::test]
    async fn a_file_streams_with_its_tail() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("0.log");
        std::fs::write(&path, LOG)?;
        let (tx, mut rx) = mpsc::channel(8);
        let opts = LogOptions {
            tail_lines: Some(1),
            ..Default::default()
        };
        stream(path, opts, tx, || async { false }).await;
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend_from_slice(&chunk?);
        }
        assert_eq!(String::from_utf8_lossy(&out), "three\n");
        Ok(())
    }
}
