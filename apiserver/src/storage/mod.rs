//! The storage abstraction: the only place cluster state is read or written.
//!
//! Keys are upstream's layout (`<prefix>/<resource>/<namespace>/<name>`),
//! values are the object's JSON, and every write is a compare-and-swap on the
//! key's modification revision, which is also the object's
//! `resourceVersion`. Only the etcd backend exists today; the trait is what a
//! second (embedded) backend must satisfy, checked by one conformance suite.

pub mod etcd;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// One stored value with its revisions.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    /// Full key, prefix included.
    pub key: String,
    /// The object's JSON.
    pub value: Bytes,
    /// Revision of the last write to this key: the object's resourceVersion.
    pub mod_revision: i64,
}

/// A page of a range read, taken at one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// Values in key order.
    pub items: Vec<KeyValue>,
    /// The store revision the page was read at.
    pub revision: i64,
    /// Whether keys remain after the last item.
    pub more: bool,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// A key was created or changed.
    Put {
        /// The new value.
        kv: KeyValue,
        /// Whether this write created the key.
        created: bool,
    },
    /// A key was removed at `revision`; `prev` is its last value.
    Delete {
        /// The value before deletion.
        prev: KeyValue,
        /// The revision of the deletion.
        revision: i64,
    },
}

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StorageError {
    /// The key does not exist.
    #[error("key not found")]
    NotFound,
    /// Create found the key already present.
    #[error("key already exists")]
    AlreadyExists,
    /// A compare-and-swap lost: the key changed since `expected`.
    #[error("revision mismatch")]
    Conflict,
    /// The requested revision is older than the compacted revision.
    #[error("revision {requested} has been compacted (oldest retained {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The compaction point, when the store reported it.
        compacted: i64,
    },
    /// The requested revision is newer than the store has.
    #[error("revision {0} is in the future")]
    FutureRevision(i64),
    /// The backend could not be reached or failed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// Result of storage calls.
pub type StorageResult<T> = Result<T, StorageError>;

/// Stream of watch events; ends with an error on compaction or failure.
pub type WatchStream = BoxStream<'static, StorageResult<WatchEvent>>;

/// What the apiserver needs from a key-value store with revisions.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Writes `value` only if `key` is absent; returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> StorageResult<i64>;

    /// Reads one key at the latest revision.
    async fn get(&self, key: &str) -> StorageResult<KeyValue>;

    /// Reads keys under `prefix`, starting at `start` (inclusive; the prefix
    /// itself when empty), at `revision` (latest when 0), at most `limit`
    /// (all when 0).
    async fn list(
        &self,
        prefix: &str,
        start: &str,
        revision: i64,
        limit: i64,
    ) -> StorageResult<ListPage>;

    /// Replaces `key` only if its modification revision is still
    /// `expected`; returns the new revision.
    async fn update(&self, key: &str, value: Bytes, expected: i64) -> StorageResult<i64>;

    /// Removes `key` only if its modification revision is still
    /// `expected`; returns the deletion revision.
    async fn delete(&self, key: &str, expected: i64) -> StorageResult<i64>;

    /// Streams every change under `prefix` after revision `after` (the
    /// store's current revision when 0).
    async fn watch(&self, prefix: &str, after: i64) -> StorageResult<WatchStream>;

    /// The store's current revision.
    async fn current_revision(&self) -> StorageResult<i64>;

    /// Discards history before `revision`.
    async fn compact(&self, revision: i64) -> StorageResult<()>;
}

/// The first key after every key that starts with `prefix` (etcd's
/// `range_end` for a prefix read).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end("a"), b"b".to_vec());
    }
}
