//! Whether a CronJob starts a Job now (pure, with the clock passed in;
//! upstream's `syncCronJob` decisions): the most recent missed start
//! time since `lastScheduleTime` (or creation), bounded by
//! `startingDeadlineSeconds`, then `concurrencyPolicy`.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::CronJob;

use super::schedule::{Schedule, TOO_MANY_MISSED};

/// An Event the decision asks for: (warning?, reason, message).
pub type Note = (bool, &'static str, String);

/// What to do now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Start the Job scheduled at this time.
    pub start: Option<Timestamp>,
    /// Delete the active Jobs first (`Replace`).
    pub replace_active: bool,
    /// Events to record.
    pub notes: Vec<Note>,
    /// Look again after this long (the next start time).
    pub requeue: Option<Duration>,
}

/// The decision for `cj` at `now` with `active` Jobs running.
pub fn decide(cj: &CronJob, schedule: &Schedule, active: usize, now: Timestamp) -> Decision {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut d = Decision {
        requeue: schedule.next_after(now).map(|next| {
            Duration::try_from(next.duration_since(now)).unwrap_or_default()
                + Duration::from_millis(100)
        }),
        ..Default::default()
    };
    let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map_or(created, |t| t.0);
    if let Some(sds) = spec.starting_deadline_seconds {
        earliest = earliest.max(now - SignedDuration::from_secs(sds));
    }
    let (missed, latest) = schedule.missed(earliest, now);
    if missed > TOO_MANY_MISSED {
        d.notes.push((
            true,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
        ));
    }
    let Some(scheduled) = latest else {
        return d;
    };
    if let Some(sds) = spec.starting_deadline_seconds
        && scheduled + SignedDuration::from_secs(sds) < now
    {
        d.notes.push((
            true,
            "MissSchedule",
            format!("Missed scheduled time to start a job: {scheduled}"),
        ));
        return d;
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if active > 0 => {
            d.notes.push((
                false,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return d;
        }
        Some("Replace") if active > 0 => d.replace_active = true,
        _ => {}
    }
    d.start = Some(scheduled);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    fn cronjob(extra: serde_json::Value, last: Option<&str>) -> CronJob {
        let mut spec =
            json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {}}}});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(json!({
            "metadata": {"name": "c", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": spec,
            "status": {"lastScheduleTime": last},
        }))
        .unwrap()
    }

    fn schedule() -> Schedule {
        Schedule::parse("*/5 * * * *", Some("UTC")).unwrap()
    }

    #[test]
    fn the_latest_missed_time_starts_and_the_next_one_is_awaited() {
        let cj = cronjob(json!({}), None);
        let d = decide(&cj, &schedule(), 0, at("2024-01-01T00:12:00Z"));
        assert_eq!(d.start, Some(at("2024-01-01T00:10:00Z")));
        assert_eq!(
            d.requeue,
            Some(Duration::from_secs(180) + Duration::from_millis(100))
        );
        let done = cronjob(json!({}), Some("2024-01-01T00:10:00Z"));
        assert_eq!(
            decide(&done, &schedule(), 0, at("2024-01-01T00:12:00Z")).start,
            None
        );
    }

    #[test]
    fn concurrency_policy_forbids_or_replaces() {
        let now = at("2024-01-01T00:05:01Z");
        let forbid = cronjob(json!({"concurrencyPolicy": "Forbid"}), None);
        let d = decide(&forbid, &schedule(), 1, now);
        assert_eq!((d.start, d.notes[0].1), (None, "JobAlreadyActive"));
        let replace = cronjob(json!({"concurrencyPolicy": "Replace"}), None);
        let d = decide(&replace, &schedule(), 1, now);
        assert!(d.replace_active && d.start.is_some());
        let allow = cronjob(json!({}), None);
        assert!(!decide(&allow, &schedule(), 3, now).replace_active);
    }

    #[test]
    fn starting_deadline_bounds_how_far_back_a_start_may_be() {
        let cj = cronjob(json!({"startingDeadlineSeconds": 60}), None);
        assert_eq!(
            decide(&cj, &schedule(), 0, at("2024-01-01T00:07:00Z")).start,
            None
        );
        assert_eq!(
            decide(&cj, &schedule(), 0, at("2024-01-01T00:05:30Z")).start,
            Some(at("2024-01-01T00:05:00Z"))
        );
        // A month without a controller: too many missed, the latest still runs.
        let long = cronjob(json!({}), None);
        let d = decide(&long, &schedule(), 0, at("2024-02-01T00:01:00Z"));
        assert_eq!(d.notes[0].1, "TooManyMissedTimes");
        assert_eq!(d.start, Some(at("2024-02-01T00:00:00Z")));
    }
}
