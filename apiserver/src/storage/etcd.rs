//! The etcd backend of [`Storage`], through `etcd-client`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use futures::StreamExt;

use super::{
    KeyValue, ListPage, Storage, StorageError, StorageResult, WatchEvent, WatchStream, prefix_end,
};

/// Largest etcd response accepted: a full list of a large resource is one
/// message (upstream's client allows up to 2 GiB too).
const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;

/// [`Storage`] over an etcd v3 cluster.
#[derive(Clone)]
pub struct EtcdStorage {
    client: Client,
}

impl EtcdStorage {
    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Connects to the given endpoints (`http://host:port`).
    pub async fn connect(endpoints: &[String]) -> StorageResult<Self> {
        let opts = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
        let client = Client::connect(endpoints, Some(opts))
            .await
            .map_err(map_err)?;
        Ok(EtcdStorage { client })
    }
}

/// Maps etcd's gRPC failures onto the storage error the store acts on.
fn map_err(e: etcd_client::Error) -> StorageError {
    let text = e.to_string();
    if text.contains("required revision has been compacted") {
        StorageError::Compacted {
            requested: 0,
            compacted: 0,
        }
    } else if text.contains("future revision") {
        StorageError::FutureRevision(0)
    } else {
        StorageError::Unavailable(text)
    }
}

fn to_kv(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        mod_revision: kv.mod_revision(),
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map(|h| h.revision()).unwrap_or(0)
}

#[async_trait]
impl Storage for EtcdStorage {
    async fn create(&self, key: &str, value: Bytes) -> StorageResult<i64> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let resp = self.kv().txn(txn).await.map_err(map_err)?;
        if !resp.succeeded() {
            return Err(StorageError::AlreadyExists);
        }
        Ok(header_revision(resp.header()))
    }

    async fn get(&self, key: &str) -> StorageResult<KeyValue> {
        let resp = self.kv().get(key, None).await.map_err(map_err)?;
        resp.kvs().first().map(to_kv).ok_or(StorageError::NotFound)
    }

    async fn list(
        &self,
        prefix: &str,
        start: &str,
        revision: i64,
        limit: i64,
    ) -> StorageResult<ListPage> {
        let from = if start.is_empty() { prefix } else { start };
        let mut opts = GetOptions::new().with_range(prefix_end(prefix));
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        if limit > 0 {
            opts = opts.with_limit(limit);
        }
        let resp = self
            .kv()
            .get(from, Some(opts))
            .await
            .map_err(|e| match map_err(e) {
                StorageError::Compacted { .. } => StorageError::Compacted {
                    requested: revision,
                    compacted: 0,
                },
                StorageError::FutureRevision(_) => StorageError::FutureRevision(revision),
                other => other,
            })?;
        Ok(ListPage {
            items: resp.kvs().iter().map(to_kv).collect(),
            revision: header_revision(resp.header()),
            more: resp.more(),
        })
    }

    async fn update(&self, key: &str, value: Bytes, expected: i64) -> StorageResult<i64> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value.to_vec(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.kv().txn(txn).await.map_err(map_err)?;
        if resp.succeeded() {
            return Ok(header_revision(resp.header()));
        }
        Err(conflict_or_missing(&resp.op_responses()))
    }

    async fn delete(&self, key: &str, expected: i64) -> StorageResult<i64> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(key, None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.kv().txn(txn).await.map_err(map_err)?;
        if resp.succeeded() {
            return Ok(header_revision(resp.header()));
        }
        Err(conflict_or_missing(&resp.op_responses()))
    }

    async fn watch(&self, prefix: &str, after: i64) -> StorageResult<WatchStream> {
        // No progress notifications: etcd 3.4 answers a progress request
        // with its current revision even before it has sent the events up
        // to it, which would let a reader skip events.
        let mut opts = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_prev_key();
        if after > 0 {
            opts = opts.with_start_revision(after + 1);
        }
        let stream = self
            .client
            .watch_client()
            .watch(prefix, Some(opts))
            .await
            .map_err(map_err)?;
        let (_sender, responses) = stream.split();
        let requested = after;
        let events = responses
            .map(move |msg| -> Vec<StorageResult<WatchEvent>> {
                let resp = match msg {
                    Ok(r) => r,
                    Err(e) => return vec![Err(map_err(e))],
                };
                if resp.canceled() {
                    let compacted = resp.compact_revision();
                    if compacted > 0 {
                        return vec![Err(StorageError::Compacted {
                            requested,
                            compacted,
                        })];
                    }
                    return vec![Err(StorageError::Unavailable(format!(
                        "watch cancelled: {}",
                        resp.cancel_reason()
                    )))];
                }
                resp.events()
                    .iter()
                    .filter_map(|ev| {
                        let kv = ev.kv()?;
                        Some(Ok(match ev.event_type() {
                            EventType::Put => WatchEvent::Put {
                                kv: to_kv(kv),
                                created: kv.create_revision() == kv.mod_revision(),
                            },
                            EventType::Delete => WatchEvent::Delete {
                                prev: ev.prev_kv().map(to_kv).unwrap_or_else(|| to_kv(kv)),
                                revision: kv.mod_revision(),
                            },
                        }))
                    })
                    .collect()
            })
            .flat_map(futures::stream::iter);
        Ok(Box::pin(events))
    }

    async fn current_revision(&self) -> StorageResult<i64> {
        let opts = GetOptions::new().with_count_only();
        let resp = self.kv().get("/", Some(opts)).await.map_err(map_err)?;
        Ok(header_revision(resp.header()))
    }

    async fn compact(&self, revision: i64) -> StorageResult<()> {
        match self.kv().compact(revision, None).await {
            Ok(_) => Ok(()),
            Err(e) => match map_err(e) {
                // Compacting to an already-compacted revision is a no-op.
                StorageError::Compacted { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

/// After a failed compare, tells a lost race from a missing key.
fn conflict_or_missing(ops: &[TxnOpResponse]) -> StorageError {
    match ops.first() {
        Some(TxnOpResponse::Get(get)) if get.kvs().is_empty() => StorageError::NotFound,
        _ => StorageError::Conflict,
    }
}
