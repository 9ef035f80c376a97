//! The storage conformance suite, run against a real etcd: what the
//! generic store relies on from any `Storage` backend.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use capstan_apiserver::storage::etcd::EtcdStorage;
use capstan_apiserver::storage::{Storage, StorageError, WatchEvent};
use capstan_tests::fixture::Etcd;
use futures::StreamExt;

async fn etcd_storage() -> Result<(tempfile::TempDir, Etcd, Arc<dyn Storage>)> {
    let dir = tempfile::tempdir()?;
    let etcd = Etcd::start(dir.path()).await?;
    let storage = EtcdStorage::connect(std::slice::from_ref(&etcd.endpoint)).await?;
    Ok((dir, etcd, Arc::new(storage)))
}

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

#[tokio::test]
async fn create_is_exclusive_and_revisions_grow() -> Result<()> {
    let (_dir, _etcd, s) = etcd_storage().await?;
    let r1 = s.create("/t/a", b("1")).await?;
    assert_eq!(
        s.create("/t/a", b("2")).await,
        Err(StorageError::AlreadyExists)
    );
    let r2 = s.create("/t/b", b("1")).await?;
    assert!(r2 > r1);
    let got = s.get("/t/a").await?;
    assert_eq!((got.value, got.mod_revision), (b("1"), r1));
    assert_eq!(s.get("/t/missing").await, Err(StorageError::NotFound));
    Ok(())
}

#[tokio::test]
async fn updates_and_deletes_are_compare_and_swap() -> Result<()> {
    let (_dir, _etcd, s) = etcd_storage().await?;
    let r1 = s.create("/t/a", b("1")).await?;
    let r2 = s.update("/t/a", b("2"), r1).await?;
    assert_eq!(
        s.update("/t/a", b("stale"), r1).await,
        Err(StorageError::Conflict)
    );
    assert_eq!(s.get("/t/a").await?.value, b("2"));
    assert_eq!(s.delete("/t/a", r1).await, Err(StorageError::Conflict));
    s.delete("/t/a", r2).await?;
    assert_eq!(
        s.update("/t/a", b("3"), r2).await,
        Err(StorageError::NotFound)
    );
    assert_eq!(s.delete("/t/a", r2).await, Err(StorageError::NotFound));
    Ok(())
}

#[tokio::test]
async fn lists_page_at_one_revision_and_read_the_past() -> Result<()> {
    let (_dir, _etcd, s) = etcd_storage().await?;
    for i in 0..5 {
        s.create(&format!("/t/k{i}"), b("v1")).await?;
    }
    s.create("/u/outside", b("x")).await?;
    let first = s.list("/t/", "", 0, 2).await?;
    assert_eq!(
        first
            .items
            .iter()
            .map(|k| k.key.as_str())
            .collect::<Vec<_>>(),
        ["/t/k0", "/t/k1"]
    );
    assert!(first.more);
    let at = first.revision;
    let k0 = first.items[0].mod_revision;
    s.update("/t/k0", b("v2"), k0).await?;
    s.create("/t/k2a", b("new")).await?;
    // The rest at the first page's revision: no new key, old values.
    let rest = s.list("/t/", "/t/k1\0", at, 0).await?;
    assert_eq!(
        rest.items
            .iter()
            .map(|k| k.key.as_str())
            .collect::<Vec<_>>(),
        ["/t/k2", "/t/k3", "/t/k4"]
    );
    assert!(!rest.more);
    let past = s.list("/t/", "", at, 0).await?;
    assert_eq!(past.items[0].value, b("v1"));
    let now = s.list("/t/", "", 0, 0).await?;
    assert_eq!((now.items.len(), now.items[0].value.clone()), (6, b("v2")));
    assert!(matches!(
        s.list("/t/", "", now.revision + 1000, 0).await,
        Err(StorageError::FutureRevision(_))
    ));
    Ok(())
}

async fn next_event(w: &mut capstan_apiserver::storage::WatchStream) -> Result<WatchEvent> {
    let item = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .ok()
        .flatten()
        .context("no event within 10s")?;
    Ok(item?)
}

#[tokio::test]
async fn watch_replays_from_a_revision_and_follows() -> Result<()> {
    let (_dir, _etcd, s) = etcd_storage().await?;
    let r1 = s.create("/t/a", b("1")).await?;
    let r2 = s.update("/t/a", b("2"), r1).await?;
    s.create("/u/other", b("x")).await?;
    let mut w = s.watch("/t/", r1).await?;
    s.delete("/t/a", r2).await?;
    match next_event(&mut w).await? {
        WatchEvent::Put { kv, created } => {
            assert_eq!((kv.value, kv.mod_revision, created), (b("2"), r2, false))
        }
        other => anyhow::bail!("expected the update, got {other:?}"),
    }
    match next_event(&mut w).await? {
        WatchEvent::Delete { prev, .. } => assert_eq!(prev.value, b("2")),
        other => anyhow::bail!("expected the delete, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn compacted_history_is_expired() -> Result<()> {
    let (_dir, _etcd, s) = etcd_storage().await?;
    let r1 = s.create("/t/a", b("1")).await?;
    let r2 = s.update("/t/a", b("2"), r1).await?;
    s.update("/t/a", b("3"), r2).await?;
    s.compact(r2).await?;
    assert!(matches!(
        s.list("/t/", "", r1, 0).await,
        Err(StorageError::Compacted { .. })
    ));
    assert_eq!(s.list("/t/", "", r2, 0).await?.items[0].value, b("2"));
    let mut w = s.watch("/t/", r1 - 1).await?;
    let first = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await?
        .context("an answer")?;
    assert!(
        matches!(first, Err(StorageError::Compacted { .. })),
        "{first:?}"
    );
    Ok(())
}
