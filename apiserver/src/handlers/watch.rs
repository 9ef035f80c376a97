//! Watch responses: served from the resource's watch cache, one encoded
//! event shared by every watcher, with selector transitions (an object that
//! stops matching is reported DELETED), bookmarks, `sendInitialEvents`, and
//! a 410 ERROR event once the requested history is gone.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::resource::filter;
use crate::error::{ApiError, ApiResult};
use crate::negotiation::Format;
use crate::registry::ResourceInfo;
use crate::registry::conversion::Conversion;
use crate::registry::store::Store;
use crate::selectors::Filter;
use crate::storage::StorageError;
use crate::table::{self, IncludeObject};
use crate::watchcache::{CacheEvent, CachedObject, EventType, WatchCache, WatchStart};

/// Longest a watch stays open, as upstream's `--min-request-timeout`.
const MAX_WATCH: Duration = Duration::from_secs(1800);
/// How often an idle watch with `allowWatchBookmarks` gets a bookmark.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// How a watcher wants events rendered.
struct Render {
    info_kind: &'static str,
    api_version: String,
    table: Option<(Arc<ResourceInfo>, IncludeObject)>,
    /// The served shape when the cache holds another version's shape.
    conversion: Option<Conversion>,
}

impl Render {
    /// A cache event as this watcher's resource serves it.
    fn present(&self, ev: &Arc<CacheEvent>) -> Arc<CacheEvent> {
        let Some(c) = &self.conversion else {
            return ev.clone();
        };
        let convert = |o: &Arc<CachedObject>| {
            Arc::new(CachedObject::new(
                o.key.clone(),
                (c.from_storage)(o.value.clone()),
                o.revision,
            ))
        };
        Arc::new(CacheEvent {
            kind: ev.kind,
            revision: ev.revision,
            object: convert(&ev.object),
            prev: ev.prev.as_ref().map(convert),
        })
    }

    fn event(&self, kind: &str, ev_obj: &crate::watchcache::CachedObject) -> Bytes {
        if let Some((info, include)) = &self.table {
            let t = table::build(info, std::iter::once(&ev_obj.value), *include, None, None);
            let line = json!({"type": kind, "object": t});
            let mut b = serde_json::to_vec(&line).unwrap_or_default();
            b.push(b'\n');
            return Bytes::from(b);
        }
        let mut out = Vec::with_capacity(ev_obj.bytes.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        out.extend_from_slice(&ev_obj.bytes);
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    fn bookmark(&self, revision: i64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let line = json!({"type": "BOOKMARK", "object": {"kind": self.info_kind, "apiVersion": self.api_version, "metadata": metadata}});
        let mut b = serde_json::to_vec(&line).unwrap_or_default();
        b.push(b'\n');
        Bytes::from(b)
    }
}

fn error_line(err: &ApiError) -> Bytes {
    let mut b = serde_json::to_vec(&json!({"type": "ERROR", "object": err.status_body()}))
        .unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// What a watcher sees of one change: the event type after selector
/// transitions, or nothing.
fn visible(ev: &CacheEvent, prefix: &str, filter: &Filter) -> Option<&'static str> {
    if !ev.object.key.starts_with(prefix) {
        return None;
    }
    let now = filter.matches(&ev.object.value);
    let before = ev.prev.as_ref().is_some_and(|p| filter.matches(&p.value));
    match ev.kind {
        EventType::Added => now.then_some("ADDED"),
        EventType::Deleted => (before || now).then_some("DELETED"),
        EventType::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }
}

/// Starts a watch and streams it as the response body.
pub(super) async fn serve(
    store: &Store<'_>,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
    format: Format,
) -> ApiResult<Response> {
    let info = store.info();
    let mut filter = filter(info, q)?;
    if !name.is_empty() {
        // A watch on a named path is a watch with metadata.name=<name>.
        let named = crate::selectors::FieldSelector::parse(&format!("metadata.name={name}"), &[])
            .map_err(ApiError::bad_request)?;
        filter.fields = named;
    }
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let send_initial = q.get("sendInitialEvents").map(String::as_str) == Some("true");
    let from = match rv {
        "" | "0" => 0,
        other => other
            .parse::<i64>()
            .ok()
            .filter(|r| *r > 0)
            .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {other:?}")))?,
    };
    let from = if send_initial { 0 } else { from };
    let bookmarks = q.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs)
        .unwrap_or(MAX_WATCH)
        .min(MAX_WATCH);
    let table = (format == Format::Table).then(|| {
        (
            store.info_arc(),
            IncludeObject::parse(q.get("includeObject").map(String::as_str)),
        )
    });
    let render = Render {
        info_kind: info.kind,
        api_version: info.api_version(),
        table,
        conversion: info.conversion.clone(),
    };
    let prefix = store.list_prefix(ns);
    let cache = store.cache().clone();
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    tokio::spawn(async move {
        let run = stream_events(
            cache,
            from,
            prefix,
            filter,
            render,
            bookmarks,
            send_initial,
            tx,
        );
        let _ = tokio::time::timeout(timeout, run).await;
    });
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    *resp.status_mut() = StatusCode::OK;
    let content_type = if format == Format::Table {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    } else {
        "application/json"
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}

#[allow(clippy::too_many_arguments)]
async fn stream_events(
    cache: Arc<WatchCache>,
    from: i64,
    prefix: String,
    filter: Filter,
    render: Render,
    bookmarks: bool,
    send_initial: bool,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let send = |b: Bytes| {
        let tx = tx.clone();
        async move { tx.send(Ok(b)).await.is_ok() }
    };
    // Find where to start: the cache, or a storage replay then the cache.
    let mut replayed: Vec<Arc<CacheEvent>> = Vec::new();
    let mut start = from;
    let (initial, mut revision, mut rx) = loop {
        match cache.watch(start).await {
            Ok(ok) => break ok,
            Err(WatchStart::Replay { until }) => {
                match cache.replay_from_storage(start, until).await {
                    Ok(events) => {
                        replayed.extend(events);
                        start = until;
                    }
                    Err(StorageError::Compacted { .. }) => {
                        let oldest = cache.oldest().await;
                        let _ = send(error_line(&ApiError::too_old_resource_version(
                            from, oldest,
                        )))
                        .await;
                        return;
                    }
                    Err(e) => {
                        let _ = send(error_line(&ApiError::unavailable(e))).await;
                        return;
                    }
                }
            }
        }
    };
    // A client may already hold a newer revision than the cache (from a
    // consistent list): nothing at or below it is sent again.
    revision = revision.max(from);
    // Everything at or below this was in the initial events; the
    // subscription only carries later changes, which are all sent (several
    // may share a revision, e.g. deletions found by a re-list).
    let threshold = revision;
    for ev in replayed.iter().chain(initial.iter()) {
        let ev = &render.present(ev);
        let kind = if from == 0 {
            Some("ADDED")
                .filter(|_| ev.object.key.starts_with(&prefix) && filter.matches(&ev.object.value))
        } else {
            visible(ev, &prefix, &filter)
        };
        if let Some(kind) = kind
            && !send(render.event(kind, &ev.object)).await
        {
            return;
        }
        revision = revision.max(ev.revision);
    }
    if send_initial && !send(render.bookmark(revision, true)).await {
        return;
    }
    let mut bookmark =
        tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Ok(ev) => {
                    if ev.revision <= threshold {
                        continue;
                    }
                    let ev = render.present(&ev);
                    revision = revision.max(ev.revision);
                    if let Some(kind) = visible(&ev, &prefix, &filter)
                        && !send(render.event(kind, &ev.object)).await {
                            return;
                        }
                }
                // Too slow a reader: end the stream; the client resumes from
                // its last resourceVersion, served from the cache's history.
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // The client went away: stop now, not at the next event.
            _ = tx.closed() => return,
            _ = bookmark.tick() => {
                if bookmarks && !send(render.bookmark(revision, false)).await {
                    return;
                }
            }
        }
    }
}
