//! Upstream's `failedPodsBackoff`: a node whose daemon pod keeps failing
//! (often a kubelet rejecting it) gets its replacement later each time, 1 s
//! doubling to 15 min, so the controller and the kubelet do not fight in
//! a hot loop. Forgotten after twice the longest delay without failures.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const INITIAL: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(15 * 60);

/// Back-off per `DaemonSet key + node`.
#[derive(Default)]
pub struct FailedPods {
    entries: Mutex<HashMap<String, (Instant, Duration)>>,
}

impl FailedPods {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Instant, Duration)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long a failed pod on `node` must still wait before it is
    /// replaced; `None` when it may be replaced now.
    pub fn remaining(&self, key: &str, node: &str) -> Option<Duration> {
        let (at, delay) = *self.lock().get(&entry(key, node))?;
        delay.checked_sub(at.elapsed()).filter(|d| !d.is_zero())
    }

    /// A failed pod on `node` is being replaced now: the next one waits
    /// twice as long.
    pub fn replaced(&self, key: &str, node: &str) {
        let mut entries = self.lock();
        let now = Instant::now();
        let next = match entries.get(&entry(key, node)) {
            Some((at, delay)) if at.elapsed() <= MAX * 2 => (*delay * 2).min(MAX),
            _ => INITIAL,
        };
        entries.insert(entry(key, node), (now, next));
    }

    /// Forgets a DaemonSet that is gone.
    pub fn forget(&self, key: &str) {
        let prefix = format!("{key}/");
        self.lock().retain(|k, _| !k.starts_with(&prefix));
    }
}

fn entry(key: &str, node: &str) -> String {
    format!("{key}/{node}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_replacement_waits_longer() {
        let b = FailedPods::default();
        assert_eq!(b.remaining("ns/ds", "n1"), None);
        b.replaced("ns/ds", "n1");
        assert!(b.remaining("ns/ds", "n1").is_some_and(|d| d <= INITIAL));
        b.replaced("ns/ds", "n1");
        assert!(b.remaining("ns/ds", "n1").is_some_and(|d| d > INITIAL));
        assert_eq!(b.remaining("ns/ds", "n2"), None);
        b.forget("ns/ds");
        assert_eq!(b.remaining("ns/ds", "n1"), None);
    }
}
