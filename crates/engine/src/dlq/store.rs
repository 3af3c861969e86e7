//! [`Dlq`]: the segment files and the in-memory index of live records.

use super::config::DlqConfig;
use super::record::{self, parse_time, DlqRecord, Entry};
use crate::delivery::settle::{Failure, FailureKind};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use switchyard_core::Event;
use time::OffsetDateTime;
use tracing::warn;

/// A segment grows to about this size before the next one starts.
const SEGMENT_BYTES: u64 = 8 << 20;

/// A dead-letter queue failure.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// A file could not be read or written.
    #[error("dead-letter queue: cannot {what} `{path}`: {source} — check --dlq-dir")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A record could not be encoded.
    #[error("dead-letter queue: cannot encode a record: {0}")]
    Encode(#[from] serde_json::Error),
    /// A live record's line no longer reads back.
    #[error("dead-letter queue: record {0} is damaged on disk")]
    Damaged(u64),
}

/// What `list` shows of a record, kept in memory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Record id.
    pub id: u64,
    /// Sink it failed on.
    pub sink: String,
    /// Failure class.
    pub error_kind: FailureKind,
    /// Last error message.
    pub error: String,
    /// Attempts so far.
    pub attempts: u32,
    /// First failure (RFC 3339).
    pub first_failure: String,
    /// Last failure (RFC 3339).
    pub last_failure: String,
}

#[derive(Debug, Clone)]
struct Located {
    summary: Summary,
    segment: u64,
    offset: u64,
    len: usize,
}

struct Inner {
    live: BTreeMap<u64, Located>,
    next_id: u64,
    /// Opened on the first write, so an unused queue leaves no directory.
    active: Option<File>,
    active_seq: u64,
    active_len: u64,
    segments: Vec<u64>,
}

/// An open dead-letter queue.
pub struct Dlq {
    config: DlqConfig,
    inner: Mutex<Inner>,
    skipped_lines: u64,
    /// Records removed because they outlived the retention period.
    expired: AtomicU64,
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DlqError + 'a {
    move |source| DlqError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

impl Dlq {
    /// Open the queue in `config.dir`, read every segment, and purge
    /// expired records. A missing directory is an empty queue; it is created
    /// with the first record.
    pub fn open(config: DlqConfig) -> Result<Self, DlqError> {
        let dir = config.dir.clone();
        let mut segments = Vec::new();
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => Some(listing),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("read directory", &dir)(e)),
        };
        for entry in listing.into_iter().flatten() {
            let entry = entry.map_err(io_err("read directory", &dir))?;
            if let Some(seq) = segment_seq(&entry.file_name().to_string_lossy()) {
                segments.push(seq);
            }
        }
        segments.sort_unstable();
        let mut live = BTreeMap::new();
        let mut next_id = 1;
        let mut skipped_lines = 0;
        let mut last_ends_clean = true;
        for &seq in &segments {
            let path = segment_path(&dir, seq);
            let (skipped, clean) = scan(&path, seq, &mut live, &mut next_id)?;
            skipped_lines += skipped;
            last_ends_clean = clean;
        }
        if skipped_lines > 0 {
            warn!(dir = %dir.display(), lines = skipped_lines, "dead-letter queue: skipped damaged lines (a write torn by a crash?)");
        }
        // Append to the newest segment unless its last line is torn: a new
        // line must not be glued to a broken one.
        let active_seq = match segments.last() {
            Some(&last) if last_ends_clean => last,
            Some(&last) => last + 1,
            None => 1,
        };
        let active_len = match segments.last() {
            Some(&last) if last == active_seq => {
                let path = segment_path(&dir, last);
                fs::metadata(&path).map_err(io_err("stat", &path))?.len()
            }
            _ => 0,
        };
        let dlq = Self {
            config,
            inner: Mutex::new(Inner {
                live,
                next_id,
                active: None,
                active_seq,
                active_len,
                segments,
            }),
            skipped_lines,
            expired: AtomicU64::new(0),
        };
        // Discarding failed events is worth a line: whoever looks for them
        // later learns where they went.
        let expired = dlq.expire(OffsetDateTime::now_utc())?;
        if expired > 0 {
            warn!(dir = %dlq.config.dir.display(), records = expired, retention = %humantime::format_duration(dlq.config.retention_period), "dead-letter queue: records older than the retention period discarded");
        }
        Ok(dlq)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change under the lock leaves the index consistent with what
        // was synced to disk, so a poisoned lock holds a usable state.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings it was opened with.
    pub fn config(&self) -> &DlqConfig {
        &self.config
    }

    /// Damaged lines skipped when it was opened.
    pub fn skipped_lines(&self) -> u64 {
        self.skipped_lines
    }

    /// Records discarded so far because they outlived the retention period
    /// (at open and at each auto-retry round).
    pub fn expired(&self) -> u64 {
        self.expired.load(Relaxed)
    }

    /// Live records.
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// No live record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Summaries of the live records, oldest first.
    pub fn list(&self) -> Vec<Summary> {
        self.lock()
            .live
            .values()
            .map(|l| l.summary.clone())
            .collect()
    }

    /// Add one record per event, as many as there is room for (the first
    /// ones), synced to disk. Returns the new ids; fewer than `events` means
    /// the queue is full.
    pub fn append(
        &self,
        sink: &str,
        events: &[Event],
        failure: &Failure,
    ) -> Result<Vec<u64>, DlqError> {
        let mut inner = self.lock();
        let room = self.config.max_size.saturating_sub(inner.live.len());
        let mut ids = Vec::new();
        let mut lines = Vec::new();
        for event in events.iter().take(room) {
            let rec = DlqRecord::new(inner.next_id + ids.len() as u64, sink, event, failure)?;
            ids.push(rec.id);
            lines.push(Entry::Put(rec));
        }
        self.write(&mut inner, lines)?;
        Ok(ids)
    }

    /// Store a changed record (more attempts after a failed replay).
    pub fn update(&self, record: DlqRecord) -> Result<(), DlqError> {
        let mut inner = self.lock();
        if inner.live.contains_key(&record.id) {
            self.write(&mut inner, vec![Entry::Put(record)])?;
        }
        Ok(())
    }

    /// Read a live record in full.
    pub fn get(&self, id: u64) -> Result<Option<DlqRecord>, DlqError> {
        let located = match self.lock().live.get(&id) {
            Some(l) => l.clone(),
            None => return Ok(None),
        };
        let path = segment_path(&self.config.dir, located.segment);
        let mut file = File::open(&path).map_err(io_err("open", &path))?;
        file.seek(SeekFrom::Start(located.offset))
            .map_err(io_err("seek in", &path))?;
        let mut line = vec![0; located.len];
        file.read_exact(&mut line).map_err(io_err("read", &path))?;
        match record::decode(&line) {
            Some(Entry::Put(rec)) if rec.id == id => Ok(Some(rec)),
            _ => Err(DlqError::Damaged(id)),
        }
    }

    /// Remove records; returns how many were live.
    pub fn remove(&self, ids: &[u64]) -> Result<usize, DlqError> {
        let mut inner = self.lock();
        let present: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| inner.live.contains_key(id))
            .collect();
        if present.is_empty() {
            return Ok(0);
        }
        let n = present.len();
        self.write(&mut inner, vec![Entry::Del(present)])?;
        self.compact(&mut inner);
        Ok(n)
    }

    /// Remove records whose first failure is older than the retention
    /// period, as of `now`; returns how many.
    pub fn expire(&self, now: OffsetDateTime) -> Result<usize, DlqError> {
        let n = match cutoff(now, self.config.retention_period) {
            Some(cutoff) => self.remove_older_than(cutoff)?,
            None => 0, // a retention longer than the calendar: nothing expires
        };
        self.expired.fetch_add(n as u64, Relaxed);
        Ok(n)
    }

    /// Remove records whose first failure is before `cutoff`.
    pub fn remove_older_than(&self, cutoff: OffsetDateTime) -> Result<usize, DlqError> {
        let old: Vec<u64> = self
            .lock()
            .live
            .values()
            .filter(|l| parse_time(&l.summary.first_failure).is_none_or(|t| t < cutoff))
            .map(|l| l.summary.id)
            .collect();
        self.remove(&old)
    }

    /// Append `entries`, sync, and apply them to the index.
    fn write(&self, inner: &mut Inner, entries: Vec<Entry>) -> Result<(), DlqError> {
        if entries.is_empty() {
            return Ok(());
        }
        if inner.active.is_none() || inner.active_len >= SEGMENT_BYTES {
            self.rotate(inner)?;
        }
        let mut buf = Vec::new();
        let mut spans = Vec::with_capacity(entries.len());
        for entry in &entries {
            let line = record::encode(entry)?;
            spans.push((inner.active_len + buf.len() as u64, line.len() - 1));
            buf.extend_from_slice(&line);
        }
        let path = segment_path(&self.config.dir, inner.active_seq);
        // `rotate` above opened it if it was not open.
        let file = inner.active.as_mut().expect("the active segment is open");
        file.write_all(&buf).map_err(io_err("append to", &path))?;
        file.sync_data().map_err(io_err("sync", &path))?;
        inner.active_len += buf.len() as u64;
        let seq = inner.active_seq;
        for (entry, (offset, len)) in entries.into_iter().zip(spans) {
            apply(&mut inner.live, &mut inner.next_id, entry, seq, offset, len);
        }
        Ok(())
    }

    /// Open the segment to append to: the current one on the first write
    /// (unless it is full), else the next one.
    fn rotate(&self, inner: &mut Inner) -> Result<(), DlqError> {
        let dir = &self.config.dir;
        let seq = if inner.active.is_none() && inner.active_len < SEGMENT_BYTES {
            inner.active_seq
        } else {
            inner.active_seq + 1
        };
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let path = segment_path(dir, seq);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        if seq != inner.active_seq {
            inner.active_len = 0;
        }
        inner.active = Some(file);
        inner.active_seq = seq;
        if inner.segments.last() != Some(&seq) {
            inner.segments.push(seq);
        }
        Ok(())
    }

    /// Delete the oldest segments while they hold no live record. Tombstones
    /// only name records of their own or older segments, so deleting a
    /// prefix never brings a removed record back.
    fn compact(&self, inner: &mut Inner) {
        while inner.segments.len() > 1 {
            let oldest = inner.segments[0];
            if inner.live.values().any(|l| l.segment == oldest) {
                break;
            }
            let path = segment_path(&self.config.dir, oldest);
            if let Err(error) = fs::remove_file(&path) {
                warn!(path = %path.display(), %error, "dead-letter queue: cannot delete an empty segment");
                break;
            }
            inner.segments.remove(0);
        }
    }
}

fn apply(
    live: &mut BTreeMap<u64, Located>,
    next_id: &mut u64,
    entry: Entry,
    segment: u64,
    offset: u64,
    len: usize,
) {
    match entry {
        Entry::Put(rec) => {
            *next_id = (*next_id).max(rec.id + 1);
            let summary = Summary {
                id: rec.id,
                sink: rec.sink,
                error_kind: rec.error_kind,
                error: rec.error,
                attempts: rec.attempts,
                first_failure: rec.first_failure,
                last_failure: rec.last_failure,
            };
            live.insert(
                summary.id,
                Located {
                    summary,
                    segment,
                    offset,
                    len,
                },
            );
        }
        Entry::Del(ids) => {
            for id in ids {
                live.remove(&id);
            }
        }
    }
}

/// Read one segment into the index; returns damaged lines skipped and
/// whether the file ends with a complete line.
fn scan(
    path: &Path,
    seq: u64,
    live: &mut BTreeMap<u64, Located>,
    next_id: &mut u64,
) -> Result<(u64, bool), DlqError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut reader = BufReader::new(file);
    let (mut offset, mut skipped, mut clean) = (0u64, 0u64, true);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        clean = line.last() == Some(&b'\n');
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        match record::decode(body) {
            Some(entry) if clean => apply(live, next_id, entry, seq, offset, body.len()),
            _ => skipped += 1,
        }
        offset += n as u64;
    }
    Ok((skipped, clean))
}

/// `now - age`, or `None` when that is before the earliest representable time.
pub fn cutoff(now: OffsetDateTime, age: std::time::Duration) -> Option<OffsetDateTime> {
    now.checked_sub(time::Duration::try_from(age).ok()?)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("segment-{seq:08}.log"))
}

fn segment_seq(name: &str) -> Option<u64> {
    name.strip_prefix("segment-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use switchyard_core::LogRecord;

    fn config(dir: &Path, max_size: usize) -> DlqConfig {
        DlqConfig {
            dir: dir.to_path_buf(),
            max_size,
            ..DlqConfig::default()
        }
    }

    fn failure(at: OffsetDateTime) -> Failure {
        Failure {
            kind: FailureKind::Permanent,
            message: "http answered HTTP 400".into(),
            attempts: 1,
            first_failure: at,
            last_failure: at,
        }
    }

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| LogRecord::new(format!("e{i}")).into())
            .collect()
    }

    #[test]
    fn an_unused_queue_leaves_no_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq");
        let dlq = Dlq::open(config(&path, 10)).unwrap();
        assert!(dlq.is_empty());
        assert!(!path.exists());
        dlq.append("http", &events(1), &failure(OffsetDateTime::now_utc()))
            .unwrap();
        assert!(segment_path(&path, 1).exists());
    }

    #[test]
    fn records_survive_reopening_and_removals_are_tombstoned() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let dlq = Dlq::open(config(dir.path(), 10)).unwrap();
        assert_eq!(
            dlq.append("http", &events(3), &failure(now)).unwrap(),
            [1, 2, 3]
        );
        assert_eq!(dlq.remove(&[2, 99]).unwrap(), 1);
        drop(dlq);

        let dlq = Dlq::open(config(dir.path(), 10)).unwrap();
        let ids: Vec<u64> = dlq.list().iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 3]);
        let rec = dlq.get(3).unwrap().unwrap();
        assert_eq!(rec.sink, "http");
        assert!(rec.event.get().contains("\"e2\""), "{}", rec.event.get());
        assert_eq!(
            dlq.append("http", &events(1), &failure(now)).unwrap(),
            [4],
            "ids keep rising"
        );
    }

    #[test]
    fn a_full_queue_takes_what_fits_and_old_records_expire() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let dlq = Dlq::open(config(dir.path(), 3)).unwrap();
        let old = now - Duration::from_secs(48 * 3600);
        assert_eq!(
            dlq.append("http", &events(2), &failure(old)).unwrap().len(),
            2
        );
        assert_eq!(
            dlq.append("http", &events(2), &failure(now)).unwrap().len(),
            1,
            "room for one"
        );
        assert_eq!(dlq.expire(now).unwrap(), 2, "24h retention");
        assert_eq!(dlq.len(), 1);
        assert_eq!(dlq.expired(), 2);
    }

    #[test]
    fn records_expired_at_open_are_counted_not_silently_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let old = OffsetDateTime::now_utc() - Duration::from_secs(48 * 3600);
        let dlq = Dlq::open(config(dir.path(), 10)).unwrap();
        dlq.append("http", &events(3), &failure(old)).unwrap();
        drop(dlq);
        let dlq = Dlq::open(config(dir.path(), 10)).unwrap();
        assert!(dlq.is_empty(), "24h retention");
        assert_eq!(dlq.expired(), 3);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_not_written_after() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let dlq = Dlq::open(config(dir.path(), 10)).unwrap();
        dlq.append("http", &events(2), &failure(now)).unwrap();
        drop(dlq);
        let seg = segment_path(dir.path(), 1);
        let text = fs::read(&seg).unwrap();
        fs::write(&seg, &text[..text.len() - 10]).unwrap(); // crash mid-line

        let dlq = Dlq::open(config(dir.path(), 10)).unwrap();
        assert_eq!(dlq.skipped_lines(), 1);
        assert_eq!(dlq.len(), 1);
        assert_eq!(dlq.append("http", &events(1), &failure(now)).unwrap(), [2]);
        drop(dlq);
        let dlq = Dlq::open(config(dir.path(), 10)).unwrap();
        assert_eq!(dlq.list().iter().map(|s| s.id).collect::<Vec<_>>(), [1, 2]);
        assert!(dlq.get(2).unwrap().is_some());
    }

    #[test]
    fn emptied_segments_are_deleted_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let dlq = Dlq::open(config(dir.path(), 10)).unwrap();
        dlq.append("http", &events(2), &failure(now)).unwrap();
        dlq.rotate(&mut dlq.lock()).unwrap(); // a full segment would do this
        dlq.append("http", &events(1), &failure(now)).unwrap();
        dlq.remove(&[1, 2]).unwrap();
        assert!(!segment_path(dir.path(), 1).exists());
        assert!(segment_path(dir.path(), 2).exists());
        drop(dlq);
        let dlq = Dlq::open(config(dir.path(), 10)).unwrap();
        assert_eq!(dlq.list().iter().map(|s| s.id).collect::<Vec<_>>(), [3]);
    }
}
