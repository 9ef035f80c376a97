//! The delay before a Job replaces a failed pod (upstream's pod failure
//! back-off: 10 s, doubling with each counted failure, at most 6 min).
//! Approximation: the time of the last failure is remembered in memory
//! when this controller counts it, so after a controller restart the
//! first replacement is immediate.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The first delay.
const BASE: Duration = Duration::from_secs(10);
/// The longest delay.
const MAX: Duration = Duration::from_secs(6 * 60);

/// The delay after `failures` counted failures.
pub fn delay(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    BASE.saturating_mul(2u32.saturating_pow((failures - 1).min(16) as u32))
        .min(MAX)
}

/// When each Job last had a failure counted.
#[derive(Default)]
pub struct Backoff {
    last: Mutex<HashMap<String, Instant>>,
}

impl Backoff {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A failure of the Job `key` was just counted.
    pub fn failed(&self, key: &str) {
        self.lock().insert(key.to_string(), Instant::now());
    }

    /// How long the Job `key`, with `failures` counted, must still wait
    /// before creating pods.
    pub fn remaining(&self, key: &str, failures: i32) -> Duration {
        match self.lock().get(key) {
            Some(at) => delay(failures).saturating_sub(at.elapsed()),
            None => Duration::ZERO,
        }
    }

    /// Forgets a Job that is gone or finished.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_six_minutes() {
        assert_eq!(delay(0), Duration::ZERO);
        assert_eq!(delay(1), Duration::from_secs(10));
        assert_eq!(delay(3), Duration::from_secs(40));
        assert_eq!(delay(20), Duration::from_secs(360));
        let b = Backoff::default();
        assert_eq!(b.remaining("ns/j", 1), Duration::ZERO);
        b.failed("ns/j");
        assert!(b.remaining("ns/j", 1) > Duration::from_secs(9));
    }
}
