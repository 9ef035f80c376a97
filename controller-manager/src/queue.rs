//! A deduplicating, rate-limited work queue of object keys, as client-go's
//! `workqueue`: a key waits at most once, a key being worked on is never
//! handed to a second worker (an add meanwhile is kept and handed out once
//! the first worker is done), and failing keys come back after an
//! exponentially growing delay.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use tokio::sync::Notify;

/// First retry delay of a failing key (client-go's 5 ms).
const BASE_DELAY: Duration = Duration::from_millis(5);
/// Longest retry delay of a failing key.
const MAX_DELAY: Duration = Duration::from_secs(300);

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    /// Keys that need work: waiting in `queue`, or added again while
    /// being processed.
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
}

/// The queue of one controller.
pub struct WorkQueue {
    state: Mutex<State>,
    ready: Notify,
    depth: IntGauge,
    adds: IntCounter,
    retries: IntCounter,
}

impl WorkQueue {
    /// An empty queue reporting to the given metrics.
    pub fn new(depth: IntGauge, adds: IntCounter, retries: IntCounter) -> Arc<Self> {
        Arc::new(WorkQueue {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            depth,
            adds,
            retries,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the sets stay
        // consistent because every update is a single insert or remove.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `key` as needing work.
    pub fn add(&self, key: String) {
        self.adds.inc();
        let mut s = self.lock();
        if !s.dirty.insert(key.clone()) || s.processing.contains(&key) {
            return;
        }
        s.queue.push_back(key);
        self.depth.set(s.queue.len() as i64);
        drop(s);
        self.ready.notify_one();
    }

    /// Adds `key` once `delay` has passed.
    pub fn add_after(self: &Arc<Self>, key: String, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// Adds `key` again after its next back-off delay.
    pub fn add_rate_limited(self: &Arc<Self>, key: String) {
        self.retries.inc();
        let delay = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            let delay = BASE_DELAY
                .saturating_mul(2u32.saturating_pow((*n).min(31)))
                .min(MAX_DELAY);
            *n += 1;
            delay
        };
        self.add_after(key, delay);
    }

    /// Clears the back-off of `key` after it succeeded.
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// Waits for the next key to work on; the caller calls [`done`]
    /// with it afterwards.
    ///
    /// [`done`]: WorkQueue::done
    pub async fn get(&self) -> String {
        loop {
            let notified = self.ready.notified();
            {
                let mut s = self.lock();
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    self.depth.set(s.queue.len() as i64);
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Ends work on `key`; if it was added meanwhile it waits again.
    pub fn done(&self, key: &str) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.to_string());
            self.depth.set(s.queue.len() as i64);
            drop(s);
            self.ready.notify_one();
        }
    }

    /// Keys waiting (not counting those being worked on).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// True when no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Arc<WorkQueue> {
        WorkQueue::new(
            IntGauge::new("d", "d").unwrap(),
            IntCounter::new("a", "a").unwrap(),
            IntCounter::new("r", "r").unwrap(),
        )
    }

    #[tokio::test]
    async fn a_key_waits_once_and_is_never_worked_on_twice_at_once() {
        let q = queue();
        q.add("ns/a".into());
        q.add("ns/a".into());
        q.add("ns/b".into());
        assert_eq!(q.len(), 2, "duplicates collapse");
        let first = q.get().await;
        assert_eq!(first, "ns/a");
        // Added while being processed: held back until done.
        q.add("ns/a".into());
        assert_eq!(q.get().await, "ns/b");
        assert!(q.is_empty());
        q.done("ns/a");
        assert_eq!(q.get().await, "ns/a");
        q.done("ns/a");
        q.done("ns/b");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn failing_keys_come_back() {
        let q = queue();
        q.add_rate_limited("ns/a".into());
        let key = tokio::time::timeout(Duration::from_secs(5), q.get()).await;
        assert_eq!(key.ok().as_deref(), Some("ns/a"));
        assert_eq!(q.retries.get(), 1);
    }
}
