//! `dedupe`: drop a record when one with the same values at the given paths
//! passed within the window. Memory is bounded: at most `max_entries` keys
//! are remembered (the oldest are forgotten first).

use crate::path::{record, Path};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use switchyard_core::{Event, Transform, Verdict};

/// Drops repeats within a window.
pub struct Dedupe {
    paths: Vec<Path>,
    window: Duration,
    max_entries: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    last: HashMap<u64, Instant>,
    order: VecDeque<(u64, Instant)>,
}

impl Dedupe {
    /// Compare records by `paths` within `window`, remembering at most
    /// `max_entries` keys.
    pub fn new(paths: Vec<Path>, window: Duration, max_entries: usize) -> Result<Self, String> {
        if paths.is_empty() {
            return Err("fields: name at least one field to compare".into());
        }
        if max_entries == 0 {
            return Err("max_entries: must be greater than 0".into());
        }
        Ok(Self {
            paths,
            window,
            max_entries,
            seen: Mutex::default(),
        })
    }

    fn seen_recently(&self, key: u64, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let Seen { last, order } = &mut *seen;
        while order
            .front()
            .is_some_and(|(_, t)| now.duration_since(*t) >= self.window)
        {
            forget_oldest(last, order);
        }
        if last
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < self.window)
        {
            return true;
        }
        while order.len() >= self.max_entries {
            forget_oldest(last, order);
        }
        last.insert(key, now);
        order.push_back((key, now));
        false
    }
}

fn forget_oldest(last: &mut HashMap<u64, Instant>, order: &mut VecDeque<(u64, Instant)>) {
    if let Some((k, t)) = order.pop_front() {
        // A key seen again later has a newer entry; keep that one.
        if last.get(&k) == Some(&t) {
            last.remove(&k);
        }
    }
}

impl Transform for Dedupe {
    fn apply(&self, event: &mut Event) -> Verdict {
        let Some(rec) = record(event) else {
            return Verdict::Keep;
        };
        let mut h = DefaultHasher::new();
        for p in &self.paths {
            p.get(rec).map(|v| v.to_string()).hash(&mut h);
        }
        if self.seen_recently(h.finish(), Instant::now()) {
            Verdict::Filter
        } else {
            Verdict::Keep
        }
    }
}
