//! API timestamps. `metav1.Time` travels with whole seconds, so every time
//! the kubelet writes is truncated to the second: a status computed twice
//! from the same facts is then equal to the one read back, and unchanged
//! statuses are never rewritten.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};

/// Now, to the second.
pub fn now() -> Time {
    from_unix_seconds(jiff::Timestamp::now().as_second())
}

/// Now with microseconds, as Leases carry it.
pub fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// A Unix time in seconds as an API time.
pub fn from_unix_seconds(secs: i64) -> Time {
    Time(jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// A CRI timestamp (Unix nanoseconds; 0 = never) as an API time.
pub fn from_cri_nanos(nanos: i64) -> Option<Time> {
    (nanos > 0).then(|| from_unix_seconds(nanos.div_euclid(1_000_000_000)))
}
