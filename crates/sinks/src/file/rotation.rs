//! Rotation names and retention.
//!
//! A live file `app.log` is rotated by renaming it to
//! `app.log.20261130T140501.123Z` (the UTC time of rotation; `-1`, `-2`, …
//! is appended if that name is taken). The stamp has a fixed width, so the
//! names sort in time order, and retention reads a rotated file's age from
//! its name rather than from file times that copies and compression change.

use super::options::{Retention, Rotation};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Suffixes a rotated file may carry after compression.
const COMPRESSED: [&str; 2] = [".gz", ".zst"];

/// The interval slot `t` falls in: rotation by time happens when a file's
/// slot differs from the clock's.
pub fn slot(t: OffsetDateTime, interval: Duration) -> i64 {
    t.unix_timestamp()
        .div_euclid(interval.as_secs().max(1) as i64)
}

/// Whether a file of `size` bytes, started in `started` (its slot), must be
/// rotated before `incoming` more bytes are written at `now`.
pub fn due(
    rotation: &Rotation,
    size: u64,
    started: i64,
    incoming: u64,
    now: OffsetDateTime,
) -> bool {
    size > 0
        && (rotation.max_bytes.is_some_and(|max| size + incoming > max)
            || rotation.interval.is_some_and(|i| slot(now, i) != started))
}

/// `20261130T140501.123Z`.
fn stamp(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Rename `live` aside; returns the rotated file's path.
pub fn rotate(live: &Path, now: OffsetDateTime) -> io::Result<PathBuf> {
    let name = live
        .file_name()
        .ok_or_else(|| io::Error::other("a live file has a name"))?
        .to_string_lossy();
    let base = format!("{name}.{}", stamp(now));
    let taken = |candidate: &str| {
        std::iter::once("")
            .chain(COMPRESSED)
            .any(|suffix| live.with_file_name(format!("{candidate}{suffix}")).exists())
    };
    let mut candidate = base.clone();
    let mut n = 0;
    while taken(&candidate) {
        n += 1;
        candidate = format!("{base}-{n}");
    }
    let rotated = live.with_file_name(candidate);
    std::fs::rename(live, &rotated)?;
    Ok(rotated)
}

/// A rotated file of some live file, as found on disk.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rotated {
    stamp: String,
    seq: u32,
    path: PathBuf,
}

/// Parse `20261130T140501.123Z` back into a time.
fn parse_stamp(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 20 || b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let date = Date::from_calendar_date(
        num(0..4)? as i32,
        Month::try_from(num(4..6)? as u8).ok()?,
        num(6..8)? as u8,
    )
    .ok()?;
    let time = Time::from_hms_milli(
        num(9..11)? as u8,
        num(11..13)? as u8,
        num(13..15)? as u8,
        num(16..19)? as u16,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// The rotated files of `live`, oldest first.
fn rotated_files(live: &Path) -> io::Result<Vec<Rotated>> {
    let Some(name) = live.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(Vec::new());
    };
    let dir = match live.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!("{name}.");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let rest = COMPRESSED
            .iter()
            .find_map(|s| rest.strip_suffix(s))
            .unwrap_or(rest);
        let (stamp, seq) = match rest.split_once('-') {
            Some((stamp, seq)) => match seq.parse() {
                Ok(seq) => (stamp, seq),
                Err(_) => continue,
            },
            None => (rest, 0),
        };
        if parse_stamp(stamp).is_some() {
            found.push(Rotated {
                stamp: stamp.to_owned(),
                seq,
                path: entry.path(),
            });
        }
    }
    found.sort();
    Ok(found)
}

/// Delete the rotated files of `live` beyond `retention` at `now`; returns
/// the paths deleted.
pub fn apply_retention(
    live: &Path,
    retention: &Retention,
    now: OffsetDateTime,
) -> io::Result<Vec<PathBuf>> {
    if retention.max_files.is_none() && retention.max_age.is_none() {
        return Ok(Vec::new());
    }
    let files = rotated_files(live)?;
    let over = files
        .len()
        .saturating_sub(retention.max_files.unwrap_or(usize::MAX));
    let mut deleted = Vec::new();
    for (i, file) in files.into_iter().enumerate() {
        let too_old = retention
            .max_age
            .is_some_and(|age| parse_stamp(&file.stamp).is_some_and(|t| now - t > age));
        if i < over || too_old {
            match std::fs::remove_file(&file.path) {
                Ok(()) => deleted.push(file.path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_sort_in_time_order() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_796_047_501_123_000_000).unwrap();
        let s = stamp(t);
        assert_eq!(s.len(), 20);
        assert_eq!(parse_stamp(&s), Some(t));
        assert!(stamp(t + Duration::from_secs(1)) > s);
    }

    #[test]
    fn size_and_time_decide_rotation() {
        let now = OffsetDateTime::from_unix_timestamp(7200).unwrap();
        let r = Rotation {
            max_bytes: Some(100),
            interval: Some(Duration::from_secs(3600)),
        };
        assert!(!due(&r, 0, 0, 500, now), "an empty file is never rotated");
        assert!(!due(&r, 50, 2, 50, now));
        assert!(due(&r, 50, 2, 51, now));
        assert!(due(&r, 1, 1, 1, now), "a new hour rotates");
    }
}
