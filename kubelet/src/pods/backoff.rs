//! Upstream's container restart back-off (`flowcontrol.Backoff` as the
//! kubelet uses it): the first restart is immediate, each later one waits
//! 10 s doubling to 5 min, counted from when the container last finished;
//! an entry not bumped for twice the maximum (10 min) starts over.

use std::collections::HashMap;
use std::time::Duration;

/// The first delay.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    /// The event time (container finish, Unix seconds) of the last bump.
    last_update: i64,
}

/// Back-off per key (a container name within one pod worker).
#[derive(Debug, Default)]
pub struct Backoff {
    entries: HashMap<String, Entry>,
}

fn expired(event: i64, last_update: i64) -> bool {
    event - last_update > 2 * MAX.as_secs() as i64
}

impl Backoff {
    /// While `key` is backing off from an event (the container's finish
    /// time) at `event`, with `now` the current time (both Unix seconds):
    /// the delay in force.
    pub fn in_backoff_since(&self, key: &str, event: i64, now: i64) -> Option<Duration> {
        let e = self.entries.get(key)?;
        if expired(event, e.last_update) {
            return None;
        }
        (now - event < e.delay.as_secs() as i64).then_some(e.delay)
    }

    /// Records a restart after the event at `event`: the first (or the
    /// first after a quiet 10 min) sets the initial delay, others double it.
    pub fn next(&mut self, key: &str, event: i64) {
        let entry = match self.entries.get(key) {
            Some(e) if !expired(event, e.last_update) => Entry {
                delay: (e.delay * 2).min(MAX),
                last_update: event,
            },
            _ => Entry {
                delay: INITIAL,
                last_update: event,
            },
        };
        self.entries.insert(key.to_string(), entry);
    }

    /// When the back-off of `key` from `event` ends (Unix seconds).
    pub fn ends_at(&self, key: &str, event: i64) -> Option<i64> {
        self.entries
            .get(key)
            .map(|e| event + e.delay.as_secs() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_10s_doubling_to_5m_and_reset_after_10m() {
        let mut b = Backoff::default();
        // First crash: no back-off, restart at once.
        assert_eq!(b.in_backoff_since("c", 100, 100), None);
        b.next("c", 100);
        // Second crash at 105: 10 s from its finish.
        assert_eq!(b.in_backoff_since("c", 105, 110), Some(INITIAL));
        assert_eq!(b.in_backoff_since("c", 105, 115), None);
        b.next("c", 105);
        assert_eq!(
            b.in_backoff_since("c", 130, 140),
            Some(Duration::from_secs(20))
        );
        for t in 0..10 {
            b.next("c", 200 + t);
        }
        assert_eq!(b.in_backoff_since("c", 300, 301), Some(MAX));
        // Ran fine for more than 10 min: starts over.
        assert_eq!(b.in_backoff_since("c", 1000, 1001), None);
        b.next("c", 1000);
        assert_eq!(b.in_backoff_since("c", 1002, 1003), Some(INITIAL));
    }
}
