//! Upstream's `ControllerExpectations`: after a controller asks for pods
//! to be created or deleted it waits until its informer has seen those
//! changes before deciding again, so watch lag never makes it create or
//! delete twice. An expectation expires after five minutes, in case an
//! event was missed.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long an unmet expectation holds a controller back (upstream's
/// `ExpectationsTimeout`).
const TIMEOUT: Duration = Duration::from_secs(5 * 60);

struct Expected {
    adds: i64,
    /// Keys of pods whose deletion has not been observed yet (upstream's
    /// UID-tracking expectations, so a pod counts once).
    deletes: HashSet<String>,
    set_at: Instant,
}

/// Expectations of every controller object, by its key.
#[derive(Default)]
pub struct Expectations {
    map: Mutex<HashMap<String, Expected>>,
}

impl Expectations {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Expected>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when the controller may act: nothing outstanding, or the
    /// expectation timed out.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(e) => (e.adds <= 0 && e.deletes.is_empty()) || e.set_at.elapsed() > TIMEOUT,
        }
    }

    /// About to create `n` pods.
    pub fn expect_creations(&self, key: &str, n: usize) {
        self.expect(key, n, []);
    }

    /// About to delete these pods.
    pub fn expect_deletions(&self, key: &str, pods: impl IntoIterator<Item = String>) {
        self.expect(key, 0, pods);
    }

    /// About to create `n` pods and delete `pods` in one step (upstream's
    /// `SetExpectations`).
    pub fn expect(&self, key: &str, n: usize, pods: impl IntoIterator<Item = String>) {
        self.lock().insert(
            key.to_string(),
            Expected {
                adds: n as i64,
                deletes: pods.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    /// Adds `adds` creations and `deletes` deletions to what is already
    /// expected (upstream's `RaiseExpectations`), for controllers that
    /// create and delete in one sync.
    pub fn raise(&self, key: &str, adds: usize, deletes: impl IntoIterator<Item = String>) {
        let mut map = self.lock();
        let e = map.entry(key.to_string()).or_insert_with(|| Expected {
            adds: 0,
            deletes: HashSet::new(),
            set_at: Instant::now(),
        });
        e.adds = e.adds.max(0) + adds as i64;
        e.deletes.extend(deletes);
        e.set_at = Instant::now();
    }

    /// `n` expected creations happened or will never happen.
    pub fn creations_observed(&self, key: &str, n: usize) {
        if let Some(e) = self.lock().get_mut(key) {
            e.adds -= n as i64;
        }
    }

    /// The deletion of `pod` happened or will never happen.
    pub fn deletion_observed(&self, key: &str, pod: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.deletes.remove(pod);
        }
    }

    /// Forgets a controller object that is gone.
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_controller_waits_until_its_changes_are_seen() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"), "no record: act");
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creations_observed("ns/rs", 1);
        assert!(!e.satisfied("ns/rs"));
        e.creations_observed("ns/rs", 1);
        assert!(e.satisfied("ns/rs"));
        e.expect_deletions("ns/rs", ["ns/a".to_string(), "ns/b".to_string()]);
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/a");
        assert!(!e.satisfied("ns/rs"), "the same pod counts once");
        e.deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));
        // Raised expectations add up.
        e.raise("ns/ss", 1, ["ns/ss-0".to_string()]);
        e.raise("ns/ss", 1, []);
        e.creations_observed("ns/ss", 1);
        e.deletion_observed("ns/ss", "ns/ss-0");
        assert!(!e.satisfied("ns/ss"));
        e.creations_observed("ns/ss", 1);
        assert!(e.satisfied("ns/ss"));
    }
}
