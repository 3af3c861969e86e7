//! Where the file sink reads the time: `{date}`/`{hour}` in paths, rotation
//! slots and rotated-file stamps. Behind a trait so tests can move time by
//! hand instead of sleeping through an interval.

use time::OffsetDateTime;

/// A source of the current time (UTC).
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// `YYYY-MM-DD` of `t` (UTC), for `{date}`.
pub fn date(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// `HH` of `t` (UTC), for `{hour}`.
pub fn hour(t: OffsetDateTime) -> String {
    format!("{:02}", t.hour())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_and_hour_are_zero_padded_utc() {
        let t = OffsetDateTime::from_unix_timestamp(1_767_233_100).unwrap(); // 2026-01-01 02:05 UTC
        assert_eq!(date(t), "2026-01-01");
        assert_eq!(hour(t), "02");
    }
}
