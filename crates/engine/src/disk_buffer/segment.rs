//! The files of a disk buffer directory: numbered segment files, written in
//! order and deleted once every record in them is acknowledged, and the
//! acknowledgement pointer.
//!
//! The pointer is replaced atomically (write a temporary file, rename it over
//! the old one) and carries its own checksum. It is not synced to disk: a
//! process crash keeps it (the page cache survives), and if a power loss takes
//! the newest one, the older pointer only means some acknowledged events are
//! delivered again — never that one is skipped.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// A byte in the buffer: segment number, then offset in that segment. Ordered
/// like the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// Segment number.
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: u64,
}

const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".log";
const ACK_FILE: &str = "ack";
const ACK_TMP: &str = "ack.tmp";
const ACK_MAGIC: [u8; 4] = *b"SYa1";

/// Path of segment `n` in `dir`; zero-padded so names sort like numbers.
pub(crate) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{n:020}{SEGMENT_SUFFIX}"))
}

/// The segment numbers in `dir`, ascending. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|s| s.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|s| s.parse::<u64>().ok())
        {
            ids.push(n);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Make a file creation or deletion in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Read the acknowledgement pointer. `Ok(None)` when there is none yet;
/// `Err` when it exists but is damaged (the caller starts from the oldest
/// segment: duplicates, not losses).
pub(crate) fn read_ack(dir: &Path) -> io::Result<Option<Position>> {
    let bytes = match fs::read(dir.join(ACK_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "damaged acknowledgement file");
    if bytes.len() != 24 || bytes[..4] != ACK_MAGIC {
        return Err(bad());
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..20]) != crc {
        return Err(bad());
    }
    Ok(Some(Position {
        segment: word(4),
        offset: word(12),
    }))
}

/// Replace the acknowledgement pointer atomically.
pub(crate) fn write_ack(dir: &Path, pos: Position) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(&ACK_MAGIC);
    bytes.extend_from_slice(&pos.segment.to_le_bytes());
    bytes.extend_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(ACK_TMP);
    fs::write(&tmp, &bytes)?;
    fs::rename(&tmp, dir.join(ACK_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_pointer_round_trips_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_ack(dir.path()).unwrap(), None);
        let pos = Position {
            segment: 3,
            offset: 4096,
        };
        write_ack(dir.path(), pos).unwrap();
        assert_eq!(read_ack(dir.path()).unwrap(), Some(pos));
        let path = dir.path().join(ACK_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(read_ack(dir.path()).is_err());
    }

    #[test]
    fn segments_list_in_numeric_order_ignoring_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for n in [10, 2, 1] {
            fs::write(segment_path(dir.path(), n), b"").unwrap();
        }
        fs::write(dir.path().join("notes.txt"), b"").unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), vec![1, 2, 10]);
    }
}
