//! A CronJob's schedule: standard 5-field cron syntax and the `@hourly`
//! style macros (parsed by the `croner` crate, with Vixie cron's rule
//! that a restricted day-of-month and day-of-week match either), read in
//! `spec.timeZone` (the local zone of the controller when unset, as
//! upstream), and which start times were missed up to now (upstream's
//! `mostRecentScheduleTime`).

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// Upstream gives up counting missed start times past this many.
pub const TOO_MANY_MISSED: usize = 100;

/// A parsed schedule in its time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    tz: TimeZone,
}

/// Why a schedule cannot be used (the Event reason and message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// `UnparseableSchedule` or `UnknownTimeZone`, upstream's reasons.
    pub reason: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Schedule {
    /// Parses `spec.schedule` in `spec.timeZone`. `TZ=`/`CRON_TZ=`
    /// prefixes are refused, as upstream's validation does: the zone
    /// belongs in `spec.timeZone`.
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Self, Invalid> {
        let trimmed = schedule.trim();
        if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
            return Err(Invalid {
                reason: "UnparseableSchedule",
                message: "cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into(),
            });
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| Invalid {
                reason: "UnparseableSchedule",
                message: format!("unparseable schedule: {schedule:?} : {e}"),
            })?;
        let tz = match time_zone {
            None => TimeZone::try_system().unwrap_or(TimeZone::UTC),
            Some(name) => TimeZone::get(name).map_err(|e| Invalid {
                reason: "UnknownTimeZone",
                message: format!("invalid timeZone: {name:?}: {e}"),
            })?,
        };
        Ok(Schedule { cron, tz })
    }

    /// The first start time strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let z = Zoned::new(t, self.tz.clone());
        self.cron
            .find_next_occurrence(&z, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The start times after `earliest` up to and including `now`: how
    /// many (counting stops past [`TOO_MANY_MISSED`]) and the latest.
    pub fn missed(&self, earliest: Timestamp, now: Timestamp) -> (usize, Option<Timestamp>) {
        let mut count = 0;
        let mut latest = None;
        let mut t = earliest;
        while let Some(next) = self.next_after(t).filter(|n| *n <= now) {
            count += 1;
            latest = Some(next);
            t = next;
            if count > TOO_MANY_MISSED {
                // Jump to the last one before `now` without walking
                // every minute of a long outage.
                latest = self.latest_at_or_before(now).or(latest);
                break;
            }
        }
        (count, latest)
    }

    fn latest_at_or_before(&self, now: Timestamp) -> Option<Timestamp> {
        let z = Zoned::new(now, self.tz.clone());
        self.cron
            .find_previous_occurrence(&z, true)
            .ok()
            .map(|z| z.timestamp())
    }

    /// `t` in the schedule's zone, as RFC 3339 (the
    /// `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation).
    pub fn render(&self, t: Timestamp) -> String {
        let z = Zoned::new(t, self.tz.clone());
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn standard_syntax_macros_and_prefixes() {
        let s = Schedule::parse("*/15 * * * *", Some("UTC")).unwrap();
        assert_eq!(
            s.next_after(at("2024-01-01T00:07:00Z")),
            Some(at("2024-01-01T00:15:00Z"))
        );
        let hourly = Schedule::parse("@hourly", Some("UTC")).unwrap();
        assert_eq!(
            hourly.next_after(at("2024-01-01T00:00:00Z")),
            Some(at("2024-01-01T01:00:00Z"))
        );
        assert_eq!(
            Schedule::parse("CRON_TZ=UTC * * * * *", None)
                .err()
                .map(|e| e.reason),
            Some("UnparseableSchedule")
        );
        assert_eq!(
            Schedule::parse("TZ=UTC * * * * *", None)
                .err()
                .map(|e| e.reason),
            Some("UnparseableSchedule")
        );
        assert!(
            Schedule::parse("0 0 * * * *", Some("UTC")).is_err(),
            "six fields"
        );
        assert_eq!(
            Schedule::parse("* * * * *", Some("Mars/Olympus"))
                .err()
                .map(|e| e.reason),
            Some("UnknownTimeZone")
        );
        // Vixie cron: restricted day-of-month OR day-of-week.
        let either = Schedule::parse("0 0 13 * 5", Some("UTC")).unwrap();
        // 2024-01-05 is a Friday, before the 13th.
        assert_eq!(
            either.next_after(at("2024-01-01T00:00:00Z")),
            Some(at("2024-01-05T00:00:00Z"))
        );
    }

    #[test]
    fn the_time_zone_moves_the_start_times() {
        let s = Schedule::parse("0 9 * * *", Some("America/New_York")).unwrap();
        // 09:00 EST is 14:00 UTC in winter, 13:00 UTC in summer.
        assert_eq!(
            s.next_after(at("2024-01-10T00:00:00Z")),
            Some(at("2024-01-10T14:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2024-07-10T00:00:00Z")),
            Some(at("2024-07-10T13:00:00Z"))
        );
        assert_eq!(
            s.render(at("2024-01-10T14:00:00Z")),
            "2024-01-10T09:00:00-05:00"
        );
    }

    #[test]
    fn missed_start_times_are_counted_up_to_the_limit() {
        let s = Schedule::parse("* * * * *", Some("UTC")).unwrap();
        let (n, latest) = s.missed(at("2024-01-01T00:00:00Z"), at("2024-01-01T00:03:30Z"));
        assert_eq!((n, latest), (3, Some(at("2024-01-01T00:03:00Z"))));
        let (n, latest) = s.missed(at("2024-01-01T00:00:00Z"), at("2024-01-02T00:00:30Z"));
        assert!(n > TOO_MANY_MISSED);
        assert_eq!(latest, Some(at("2024-01-02T00:00:00Z")));
        assert_eq!(
            s.missed(at("2024-01-01T00:00:00Z"), at("2024-01-01T00:00:59Z"))
                .0,
            0
        );
    }
}
