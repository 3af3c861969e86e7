//! `dedupe`: drop a record when one with the same values at the given paths
//! passed within the window. Memory is bounded: at most `max_entries` keys
//! and [`MAX_KEY_BYTES`] of them are remembered (the oldest are forgotten
//! first).
//!
//! Records are compared by their values themselves, not by a hash of them:
//! two distinct records whose hashes collide must both pass.

use crate::error::TransformError;
use crate::path::{record, Path};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_core::{Event, Transform, Verdict};

/// Drops repeats within a window.
pub struct Dedupe {
    paths: Vec<Path>,
    window: Duration,
    max_entries: usize,
    seen: Mutex<Seen>,
}

/// The most bytes of keys remembered at once; older keys are forgotten
/// first beyond it, as beyond `max_entries`.
pub const MAX_KEY_BYTES: usize = 16 * 1024 * 1024;

type Key = Arc<str>;

#[derive(Default)]
struct Seen {
    last: HashMap<Key, Instant>,
    order: VecDeque<(Key, Instant)>,
    bytes: usize,
}

impl Dedupe {
    /// Compare records by `paths` within `window`, remembering at most
    /// `max_entries` keys.
    pub fn new(
        paths: Vec<Path>,
        window: Duration,
        max_entries: usize,
    ) -> Result<Self, TransformError> {
        if paths.is_empty() {
            return Err(TransformError::config(
                "fields",
                "name at least one field to compare",
            ));
        }
        if max_entries == 0 {
            return Err(TransformError::config(
                "max_entries",
                "must be greater than 0",
            ));
        }
        Ok(Self {
            paths,
            window,
            max_entries,
            seen: Mutex::default(),
        })
    }

    fn seen_recently(&self, key: String, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while seen
            .order
            .front()
            .is_some_and(|(_, t)| now.duration_since(*t) >= self.window)
        {
            seen.forget_oldest();
        }
        if seen
            .last
            .get(key.as_str())
            .is_some_and(|t| now.duration_since(*t) < self.window)
        {
            return true;
        }
        while !seen.order.is_empty()
            && (seen.order.len() >= self.max_entries || seen.bytes + key.len() > MAX_KEY_BYTES)
        {
            seen.forget_oldest();
        }
        let key: Key = key.into();
        seen.bytes += key.len();
        seen.last.insert(key.clone(), now);
        seen.order.push_back((key, now));
        false
    }
}

impl Seen {
    fn forget_oldest(&mut self) {
        if let Some((k, t)) = self.order.pop_front() {
            self.bytes -= k.len();
            // A key seen again later has a newer entry; keep that one.
            if self.last.get(&k) == Some(&t) {
                self.last.remove(&k);
            }
        }
    }
}

/// The values at `paths`, as one string that two records share only when
/// every value is equal: each value as JSON text (self-delimiting), a
/// missing one as `-` (never JSON on its own).
fn key(paths: &[Path], rec: &switchyard_core::LogRecord) -> String {
    let mut key = String::new();
    for p in paths {
        match p.get(rec) {
            // Writing into a String cannot fail.
            Some(v) => {
                let _ = write!(key, "{v},");
            }
            None => key.push_str("-,"),
        }
    }
    key
}

impl Transform for Dedupe {
    fn apply(&self, event: &mut Event) -> Verdict {
        let Some(rec) = record(event) else {
            return Verdict::Keep;
        };
        if self.seen_recently(key(&self.paths, rec), Instant::now()) {
            Verdict::Filter
        } else {
            Verdict::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{LogRecord, Payload};

    fn event(message: &str) -> Event {
        Event::new(Payload::Log(LogRecord::new(message)))
    }

    /// Keys used to be 64-bit hashes: two distinct records whose hashes
    /// collided were taken for one, and the second was dropped. Keys are
    /// now the values: distinct values never compare equal, whatever their
    /// hash. (A collision cannot be found on demand, so this pins the
    /// comparison itself: every distinct message of a large set passes.)
    #[test]
    fn distinct_records_are_never_taken_for_duplicates() {
        let d = Dedupe::new(vec![Path::Message], Duration::from_secs(60), 1 << 20).unwrap();
        for i in 0..50_000 {
            assert!(matches!(
                d.apply(&mut event(&format!("m{i}"))),
                Verdict::Keep
            ));
        }
        assert!(matches!(d.apply(&mut event("m7")), Verdict::Filter));
    }

    #[test]
    fn a_missing_value_differs_from_every_present_one() {
        let paths = vec![Path::Message, Path::Level];
        let mut a = LogRecord::new("x");
        a.level = Some("-".into());
        let b = LogRecord::new("x");
        assert_ne!(key(&paths, &a), key(&paths, &b));
        let mut c = LogRecord::new("x,\"y");
        c.level = None;
        let mut d = LogRecord::new("x");
        d.level = Some("y".into());
        assert_ne!(key(&paths, &c), key(&paths, &d));
    }

    #[test]
    fn remembered_key_bytes_are_bounded() {
        let d = Dedupe::new(vec![Path::Message], Duration::from_secs(60), usize::MAX).unwrap();
        let big = "x".repeat(1024 * 1024);
        for i in 0..40 {
            let _ = d.apply(&mut event(&format!("{i}{big}")));
        }
        let seen = d.seen.lock().unwrap();
        assert!(seen.bytes <= MAX_KEY_BYTES, "{}", seen.bytes);
        assert_eq!(
            seen.bytes,
            seen.order.iter().map(|(k, _)| k.len()).sum::<usize>()
        );
    }
}
